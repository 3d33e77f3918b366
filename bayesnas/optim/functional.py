"""Pure functional core of the natural-gradient optimizers."""

from __future__ import annotations

import math

import torch


def bernoulli_natural_gradient(theta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """F(θ)⁻¹ ∇ = θ(1−θ) ⊙ ∇ for independent Bernoulli θ (saito2018 §3)."""
    return theta * (1 - theta) * grad


def categorical_natural_gradient(theta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """F(θ)⁻¹ ∇ = θ ⊙ g − θ (θ·g) row-wise (pdas2019 app. A eq. 7, in the full θ)."""
    return theta * grad - theta * (theta * grad).sum(-1, keepdim=True)


def project_bernoulli(theta: torch.Tensor, low: float) -> torch.Tensor:
    """Clip θ into [low, 1 − low]; the papers' low = 1/d (shirakawa2018 §2; saito2018
    "Implementation Remark")."""
    return theta.clamp_(low, 1.0 - low)


def project_categorical(theta: torch.Tensor, theta_min: float) -> torch.Tensor:
    """pdas2019 app. B: eq. (11) θ ← max(θ, θmin), then eq. (12) renormalise keeping θ ≥ θmin."""
    theta.clamp_(min=theta_min)
    excess = (theta - theta_min).sum(-1, keepdim=True)
    deficit = 1.0 - theta.sum(-1, keepdim=True)
    theta.add_(deficit / excess.clamp_min(1e-30) * (theta - theta_min))
    return theta


def fisher_sqrt_image(theta: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """v with ‖v‖² = Δθ̄ᵀ F(θ̄) Δθ̄ on the reduced parameters (pdas2019 app. C eq. 14).

    θ has shape ``(..., K)``; the reduced parameter is θ̄ = θ[..., :K−1], θ_K = θ[..., K−1]:
    v = Δθ̄ / √θ̄ + √θ̄ (ΣΔθ̄) / (θ_K + √θ_K).
    """
    tb, db = theta[..., :-1], delta[..., :-1]
    tk = theta[..., -1:]
    return db / tb.sqrt() + tb.sqrt() * db.sum(-1, keepdim=True) / (tk + tk.sqrt())


def adaptive_lr_update(
    *, lr: float, gamma: float, s_norm_sq: float, alpha: float, lr_min: float, lr_max: float
) -> tuple[float, float]:
    """γ and η updates of pdas2019 app. C eq. (13); returns (new η, new γ).

    γ ← (1−η)²γ + η(2−η);  η ← ηmin ∨ η exp(η(‖s‖²/α − γ)) ∧ ηmax.
    """
    beta = min(max(lr, 0.0), 2.0)  # η(2−η) < 0 for η > 2 would give NaN: guarded
    gamma = (1 - beta) ** 2 * gamma + beta * (2 - beta)
    new_lr = beta * math.exp(min(beta * (s_norm_sq / alpha - gamma), 50.0))
    return min(lr_max, max(lr_min, new_lr)), gamma
