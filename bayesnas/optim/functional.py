"""Pure functional core of the natural-gradient optimizers of :mod:`bayesnas.optim`.

θ are *expectation parameters*: Bernoulli θ ∈ [0, 1] elementwise (a rate shared by U units is
one θ); categorical θ of shape ``(..., K)`` whose rows lie on the simplex; the mean μ (and
variance σ²) of a Gaussian. For an exponential family in expectation parameters the natural
gradient of ``log p_θ(M)`` is ``T(M) − θ``, so a natural-gradient step is the Euclidean
gradient of the score-function surrogate preconditioned by the closed-form inverse Fisher (see
the "key identity" of the design notes).

Every function here returns new tensors (or numbers) and leaves its inputs alone; the optimizer
classes of :mod:`bayesnas.optim` validate options, keep state and write the results back.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "adaptive_lr_update",
    "bernoulli_fisher_sqrt_image",
    "bernoulli_natural_gradient",
    "categorical_fisher_sqrt_image",
    "categorical_natural_gradient",
    "evolution_path_update",
    "fisher_trace",
    "gaussian_natural_gradient",
    "gaussian_variance_natural_gradient",
    "project_bernoulli",
    "project_box",
    "project_categorical",
    "shared_bernoulli_fisher_sqrt_image",
    "shared_bernoulli_natural_gradient",
]


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den, and 0 where den == 0 (there num = 0 too: Δθ vanishes with θ(1−θ))."""
    zero = den == 0
    safe = torch.where(zero, torch.ones_like(den), den)
    return torch.where(zero, torch.zeros_like(num), num / safe)


# -- inverse Fisher ------------------------------------------------------------------------------


def bernoulli_natural_gradient(theta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """F(θ)⁻¹ ∇ = θ(1−θ) ⊙ ∇ for independent Bernoulli θ (saito2018 eq. (5)/(7)).

    With ``grad`` the gradient of ``−(1/λ) Σ uᵢ log p_θ(Mᵢ) + ε Σ cⱼθⱼ`` this is
    ``−(1/λ) Σ uᵢ (Mᵢ − θ) + ε c θ(1−θ)``: minus the update direction of saito2018 eq. (7).
    """
    return theta * (1 - theta) * grad


def categorical_natural_gradient(theta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Row-wise F(θ)⁻¹ ∇ = θ ⊙ g − θ (θ·g) (pdas2019 app. A eq. (7): diag(θ) − θθᵀ).

    ``theta`` and ``grad`` have shape ``(..., K)``. Written in the full θ the inverse Fisher
    of eq. (7) annihilates the direction 1 (θ's row sum), so any gradient component that only
    changes Σθ — e.g. from the normalisation inside ``Categorical(probs=θ)`` — drops out, and
    the rows of the result sum to ``(θ·g)(1 − Σθ) = 0`` on the simplex. For the surrogate
    ``−(1/λ) Σ uᵢ log p_θ(hᵢ)`` it equals ``−(1/λ) Σ uᵢ (onehot(hᵢ) − θ)`` (app. A eq. (8)).
    """
    return theta * grad - theta * (theta * grad).sum(-1, keepdim=True)


def shared_bernoulli_natural_gradient(
    theta: torch.Tensor, grad: torch.Tensor, group_size: int
) -> torch.Tensor:
    """F(θ)⁻¹ ∇ = θ(1 − θ)/U ⊙ ∇ for rates θ each shared by U i.i.d. bits (shirakawa2018 §III).

    The U bits m_1..m_U of a group drawn from one Bernoulli(θ) form an exponential family with
    sufficient statistic T(M) = (1/U) Σⱼ mⱼ and Fisher information F(θ) = U/(θ(1 − θ)). With
    ``grad`` the gradient of ``−(1/λ) Σᵢ uᵢ log p_θ(Mᵢ) + ε Σ cθ`` (log p summed over the U
    units of every group) this is ``−(1/λ) Σᵢ uᵢ ((1/U) Σⱼ mᵢⱼ − θ) + ε c θ(1 − θ)/U``;
    U = 1 gives :func:`bernoulli_natural_gradient` (saito2018 eq. (7)).
    """
    return bernoulli_natural_gradient(theta, grad) / group_size


def gaussian_natural_gradient(
    grad: torch.Tensor, sigma: float | None = None, *, variance: torch.Tensor | None = None
) -> torch.Tensor:
    """F(μ)⁻¹ ∇ = σ² ∇ for the mean of N(μ, σ²) (its Fisher information is 1/σ²).

    Give ``sigma``, one σ for every entry (nes2019), or ``variance``, a σ² per entry (a guide
    that learns σ², :func:`gaussian_variance_natural_gradient`). With ``grad`` the gradient of
    the surrogate ``−(1/λ) Σᵢ uᵢ log N(xᵢ; μ, σ²)`` this is ``−(1/λ) Σᵢ uᵢ (xᵢ − μ) =
    −(1/λ) Σᵢ uᵢ nᵢ``; with the baseline-difference utility ``uᵢ = −ΔLᵢ/σ``
    (:func:`bayesnas.infer.utility.baseline_difference_utility`) it is the NES gradient
    ``G = (1/(σM)) Σᵢ ΔLᵢ nᵢ`` of nes2019 eq. (7), and ``μ − α G`` is its update eq. (9).
    """
    if (sigma is None) == (variance is None):
        raise ValueError(
            "Give exactly one of `sigma` and `variance`, but got "
            f"(sigma={sigma!r}, variance={'None' if variance is None else 'a tensor'})."
        )
    if variance is not None:
        return grad * variance
    return grad * (sigma * sigma)


def gaussian_variance_natural_gradient(grad: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """F(σ²)⁻¹ ∇ = 2σ⁴ ∇ for the variance of N(μ, σ²) (its Fisher information is 1/(2σ⁴)).

    For the surrogate ``−(1/M) Σᵢ uᵢ log N(xᵢ; μ, σ²)`` this is ``−(1/M) Σᵢ uᵢ ((xᵢ − μ)² − σ²)``:
    the variance moves toward the spread of the better samples, as in the natural evolution
    strategies of Wierstra et al. (2014) and the Gaussian part of the mixed-variable ASNG.
    """
    return grad * (2.0 * variance * variance)


# -- projections -----------------------------------------------------------------------------------


def project_bernoulli(theta: torch.Tensor, theta_min: float) -> torch.Tensor:
    """Clip θ into [θmin, 1 − θmin]; the papers use θmin = 1/d, d the number of bits
    (shirakawa2018 §2 "we restrict the range of θ within [1/d, 1 − 1/d]"; saito2018 eq. (7)
    and its "Implementation Remark")."""
    return theta.clamp(theta_min, 1.0 - theta_min)


def project_categorical(theta: torch.Tensor, theta_min: float) -> torch.Tensor:
    """Project rows of θ ``(..., K)`` onto {θ ≥ θmin, Σθ = 1} as in pdas2019 app. B.

    Eq. (11) θᵢⱼ ← max(θᵢⱼ, θmin); eq. (12) θᵢⱼ ← θᵢⱼ + (1 − Σₖθᵢₖ)/(Σₖ(θᵢₖ − θmin)) (θᵢⱼ − θmin).
    Eq. (12) is evaluated in the algebraically identical form
    θᵢⱼ ← θmin + (1 − K θmin) (θᵢⱼ − θmin) / Σₖ(θᵢₖ − θmin), whose rows sum to 1 up to rounding
    even after a huge step (the literal form cancels catastrophically there). The paper's
    θmin = 1/(D(K−1)) with D the number of variables; the set is non-empty iff K θmin ≤ 1. A row
    with every entry at θmin (only possible when K θmin = 1, or through rounding) becomes
    uniform.
    """
    k = theta.shape[-1]
    excess = theta.clamp(min=theta_min) - theta_min  # eq. (11), shifted by θmin
    total = excess.sum(-1, keepdim=True)
    scaled = theta_min + (1.0 - k * theta_min) * _safe_div(excess, total)  # eq. (12)
    return torch.where(total > 0, scaled, torch.full_like(theta, 1.0 / k))


def project_box(mu: torch.Tensor, lower: float, upper: float) -> torch.Tensor:
    """μ clipped elementwise into ``[lower, upper]``. In grid coordinates ``[0, size − 1]`` this
    keeps ⌊μ⌋, the final architecture (nes2019 §4.1), on the grid; a learnt variance σ² is
    kept in ``[min_sigma², max_sigma²]`` the same way."""
    return mu.clamp(lower, upper)


# -- adaptive step size (pdas2019 app. C, after Nishida et al. 2018) ------------------------------


def bernoulli_fisher_sqrt_image(theta: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """v = Δθ / √(θ(1−θ)), so that ‖v‖² = Δθᵀ F(θ) Δθ with F = diag(1/(θ(1−θ))).

    The closed form of :func:`categorical_fisher_sqrt_image` for K = 2 with the reduced
    parameter θ̄ = θ and θ_K = 1 − θ (pdas2019 app. C eq. (14): with a = √θ, b = √(1−θ),
    1/a + a/(b² + b) = 1/(ab)). Entries with θ ∈ {0, 1} give 0.
    """
    return _safe_div(delta, (theta * (1 - theta)).sqrt())


def categorical_fisher_sqrt_image(theta: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """v = Aᵢᵀ Δθ̄ per variable, the tractable factor F = AAᵀ of pdas2019 app. C eq. (14).

    ``theta`` and ``delta`` have shape ``(..., K)`` (full parameters); the reduced parameter is
    θ̄ = θ[..., :K−1], θ_K = θ[..., K−1] (app. A), and the result has shape ``(..., K−1)``:

        v = Δθ̄ / √θ̄ + √θ̄ · (Σⱼ Δθ̄ⱼ) / (θ_K + √θ_K),

    so that ‖v‖² = Δθ̄ᵀ F(θ̄) Δθ̄ with F = diag(θ̄)⁻¹ + 11ᵀ/θ_K (app. A eq. (6)). Terms whose
    denominator vanishes (θ on the boundary) are 0.
    """
    tb, db = theta[..., :-1], delta[..., :-1]
    tk = theta[..., -1:]
    sqrt_tb = tb.sqrt()
    return _safe_div(db, sqrt_tb) + sqrt_tb * _safe_div(db.sum(-1, keepdim=True), tk + tk.sqrt())


def shared_bernoulli_fisher_sqrt_image(
    theta: torch.Tensor, delta: torch.Tensor, group_size: int
) -> torch.Tensor:
    """v = Δθ √(U / (θ(1 − θ))), so that ‖v‖² = Δθᵀ F(θ) Δθ with F = diag(U/(θ(1 − θ))).

    The F^{1/2}-image of pdas2019 app. C for rates shared by U units (shirakawa2018 §III): that
    of :func:`bernoulli_fisher_sqrt_image` times √U. Entries with θ ∈ {0, 1} give 0.
    """
    return bernoulli_fisher_sqrt_image(theta, delta) * group_size**0.5


def fisher_trace(num_free: int, num_samples: int) -> float:
    """Tr(F Cov[Δθ]) ≈ (Σₙuₙ²/λ²) Σᵢ(Kᵢ − 1) (pdas2019 app. C).

    ``num_free`` = Σᵢ(Kᵢ − 1) (the number of bits for Bernoulli θ), ``num_samples`` = λ with
    ⌈λ/4⌉ utilities of +1 and of −1, so Σu² = 2⌈λ/4⌉; λ = 2 gives the paper's ½ Σ(Kᵢ − 1).
    """
    return 2 * math.ceil(num_samples / 4) / num_samples**2 * num_free


def evolution_path_update(
    s: torch.Tensor, v: torch.Tensor, *, lr: float, trace: float
) -> torch.Tensor:
    """s ← (1 − η) s + √(η(2 − η)) · v / √Tr(F Cov[Δθ]) (pdas2019 app. C).

    ``v`` is the F^{1/2}-image of the ascent direction Δθ (:func:`categorical_fisher_sqrt_image`).
    η(2 − η) is clamped at 0 (η > 2 would give a NaN).
    """
    beta = math.sqrt(max(lr * (2.0 - lr), 0.0) / trace)
    return s.mul(1.0 - lr).add_(v, alpha=beta)


def adaptive_lr_update(
    *,
    lr: float,
    gamma: float,
    s_norm_sq: float,
    alpha: float,
    lr_min: float,
    lr_max: float,
) -> tuple[float, float]:
    """γ and η updates of pdas2019 app. C; returns ``(new η, new γ)``.

        γ ← (1 − η)² γ + η(2 − η)
        η ← ηmin ∨ η exp(η (‖s‖²/α − γ)) ∧ ηmax          (eq. (13))

    ``s_norm_sq`` is ‖s‖² of the *updated* s. η(2 − η) is clamped at 0, and the exponential is
    taken in log space so that it can neither overflow nor produce a NaN.
    """
    gamma = (1.0 - lr) ** 2 * gamma + max(lr * (2.0 - lr), 0.0)
    if lr <= 0.0:
        new_lr = 0.0
    else:
        log_lr = math.log(lr) + lr * (s_norm_sq / alpha - gamma)
        new_lr = lr_max if log_lr >= math.log(lr_max) else math.exp(log_lr)
    return min(lr_max, max(lr_min, new_lr)), gamma
