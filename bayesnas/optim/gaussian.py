"""Natural-gradient optimizer for the mean μ of a Gaussian search distribution (nes2019)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from bayesnas.optim._base import ParamsT, check_positive


def gaussian_natural_gradient(grad: torch.Tensor, sigma: float) -> torch.Tensor:
    """F(μ)⁻¹ ∇ = σ² ∇ for the mean of N(μ, σ²) at fixed σ (the design's key identity).

    With ``grad`` the gradient of the surrogate ``−(1/λ) Σᵢ uᵢ log N(xᵢ; μ, σ²)`` this is
    ``−(1/λ) Σᵢ uᵢ (xᵢ − μ) = −(1/λ) Σᵢ uᵢ nᵢ``; with the baseline-difference utility
    ``uᵢ = −ΔLᵢ/σ`` (:func:`bayesnas.infer.utility.baseline_difference_utility`) it is the NES
    gradient ``G = (1/(σM)) Σᵢ ΔLᵢ nᵢ`` of nes2019 eq. (7).
    """
    return grad * (sigma * sigma)


def gaussian_variance_natural_gradient(grad: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """F(σ²)⁻¹ ∇ = 2σ⁴ ∇ for the variance of N(μ, σ²) (its Fisher information is 1/(2σ⁴)).

    For the surrogate ``−(1/M) Σᵢ uᵢ log N(xᵢ; μ, σ²)`` this is ``−(1/M) Σᵢ uᵢ ((xᵢ − μ)² − σ²)``:
    the variance moves toward the spread of the better samples, as in the natural evolution
    strategies of Wierstra et al. (2014) and the Gaussian part of the mixed-variable ASNG.
    """
    return grad * (2.0 * variance * variance)


def project_box(mu: torch.Tensor, lower: float, upper: float) -> torch.Tensor:
    """μ clipped to ``[lower, upper]``: in grid coordinates ``[0, size − 1]`` keeps ⌊μ⌋, the
    final architecture, on the grid."""
    return mu.clamp(lower, upper)


class GaussianNaturalGradient(torch.optim.Optimizer):
    """μ ← Π(μ − η σ² ∇μ surrogate): nes2019 eq. (9), ``H ← H − αG``, with G of eq. (7).

    ``p.grad`` must hold the Euclidean gradient of the score-function surrogate
    ``−(1/M) Σᵢ uᵢ log N(xᵢ; μ, σ²)`` over the M perturbed architectures (see
    :class:`bayesnas.infer.NESLoss`); with its utility ``uᵢ = −ΔLᵢ/σ`` and ``lr`` = α this is
    exactly the paper's step. μ and σ are in grid coordinates
    (:class:`bayesnas.guides.GaussianGuide`), so one α and one σ serve every site.

    Options (keyword-only, per param group):

    - ``lr``: α, the update ratio (nes2019 app. B: 5, decaying linearly to 0 — a schedule
      sets ``group["lr"]``).
    - ``sigma``: σ of the search distribution (the guide's; a schedule sets both, e.g.
      :meth:`bayesnas.infer.NESArchitectureSearch.set_schedules`).
    - ``lower``, ``upper``: the box μ is projected into (grid coordinates ``[0, size − 1]``;
      :meth:`GaussianGuide.make_optimizers` gives every site its own group and bounds).
    - ``adapt_sigma``: the group is ``[μ, σ²]`` (a guide with ``adapt_sigma=True``): σ² takes
      its own natural-gradient step, ``σ² ← clip(σ² − sigma_lr · 2σ⁴ ∇σ²)``, into
      ``[min_sigma², max_sigma²]``, and μ's step uses this σ² instead of ``sigma``. Both steps
      are computed from the values before either moves.

    State: ``state[p]["step"]``. Everything round-trips through ``state_dict()``.
    """

    def __init__(
        self,
        params: ParamsT,
        *,
        lr: float = 5.0,
        sigma: float = 1.25,
        lower: float = 0.0,
        upper: float = math.inf,
        adapt_sigma: bool = False,
        sigma_lr: float = 0.1,
        min_sigma: float = 0.05,
        max_sigma: float = 10.0,
    ) -> None:
        super().__init__(params, dict(lr=lr, sigma=sigma, lower=lower, upper=upper, adapt_sigma=adapt_sigma,
                                      sigma_lr=sigma_lr, min_sigma=min_sigma, max_sigma=max_sigma))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group, validating its options."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            for p in group["params"]:
                if not p.is_floating_point():
                    raise ValueError(f"μ must be a floating-point tensor, but got dtype={p.dtype}.")
            check_positive("sigma", group["sigma"])
            lr = group["lr"]
            if isinstance(lr, bool) or not isinstance(lr, int | float) or not (math.isfinite(lr) and lr >= 0):
                raise ValueError(f"`lr` must be >= 0, but got lr={lr!r}.")
            lower, upper = group["lower"], group["upper"]
            if not (isinstance(lower, int | float) and isinstance(upper, int | float) and lower <= upper):
                raise ValueError(f"`lower <= upper` must hold, but got (lower={lower!r}, upper={upper!r}).")
            if not isinstance(group["adapt_sigma"], bool):
                raise ValueError(f"`adapt_sigma` must be a bool, but got "
                                 f"adapt_sigma={group['adapt_sigma']!r}.")
            if group["adapt_sigma"]:
                check_positive("sigma_lr", group["sigma_lr"])
                check_positive("min_sigma", group["min_sigma"])
                check_positive("max_sigma", group["max_sigma"])
                if group["min_sigma"] > group["max_sigma"]:
                    raise ValueError("`min_sigma <= max_sigma` must hold, but got "
                                     f"(min_sigma={group['min_sigma']!r}, max_sigma={group['max_sigma']!r}).")
                params = group["params"]
                if len(params) != 2 or params[0].shape != params[1].shape:
                    raise ValueError("A group with adapt_sigma=True holds [μ, σ²] of one shape, but got "
                                     f"{[tuple(p.shape) for p in params]}.")
        except Exception:
            self.param_groups.pop()
            raise

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One natural-gradient descent step per group; returns the closure's loss, if any."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if any(p.grad is not None and p.grad.is_sparse for p in group["params"]):
                raise RuntimeError("GaussianNaturalGradient does not support sparse gradients.")
            if group["adapt_sigma"]:
                self._step_adaptive(group)
                continue
            sigma = float(group["sigma"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                natural = gaussian_natural_gradient(p.grad, sigma)
                p.copy_(project_box(p.sub(natural, alpha=float(group["lr"])), group["lower"], group["upper"]))
                state = self.state[p]
                state["step"] = state.get("step", 0) + 1
        return loss

    def _step_adaptive(self, group: dict[str, Any]) -> None:
        mu, variance = group["params"]
        if mu.grad is None and variance.grad is None:
            return
        old = variance.detach().clone()  # μ's step uses σ² before its own step
        if variance.grad is not None:
            natural = gaussian_variance_natural_gradient(variance.grad, old)
            stepped = variance.sub(natural, alpha=float(group["sigma_lr"]))
            variance.copy_(stepped.clamp(group["min_sigma"] ** 2, group["max_sigma"] ** 2))
        if mu.grad is not None:
            stepped = mu.sub(mu.grad * old, alpha=float(group["lr"]))
            mu.copy_(project_box(stepped, group["lower"], group["upper"]))
        for p in (mu, variance):
            state = self.state[p]
            state["step"] = state.get("step", 0) + 1
