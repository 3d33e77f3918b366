"""Natural-gradient optimizer for the mean μ of a Gaussian search distribution (nes2019)."""

from __future__ import annotations

import math
from typing import Any

import torch

from bayesnas.optim import functional as F
from bayesnas.optim._base import NaturalGradientOptimizer, ParamsT, check_positive

__all__ = ["GaussianNaturalGradient"]


class GaussianNaturalGradient(NaturalGradientOptimizer):
    """μ ← Π(μ − η σ² ∇μ surrogate): nes2019 eq. (9), ``H ← H − αG``, with G of eq. (7).

    ``p.grad`` must hold the Euclidean gradient of the score-function surrogate
    ``−(1/M) Σᵢ uᵢ log N(xᵢ; μ, σ²)`` over the M perturbed architectures (see
    :class:`bayesnas.infer.NESLoss`); with its utility ``uᵢ = −ΔLᵢ/σ`` and ``lr`` = α this is
    exactly the paper's step (:func:`~bayesnas.optim.functional.gaussian_natural_gradient`).
    μ and σ are in grid coordinates (:class:`bayesnas.guides.GaussianGuide`), so one α and one
    σ serve every site.

    Options (keyword-only, per param group):

    - ``lr``: α, the update ratio (nes2019 app. B: 5, decaying linearly to 0 — a schedule
      sets ``group["lr"]``).
    - ``sigma``: σ of the search distribution (the guide's; a schedule sets both, e.g.
      :meth:`bayesnas.infer.NESArchitectureSearch.set_schedules`).
    - ``lower``, ``upper``: the box μ is projected into (grid coordinates ``[0, size − 1]``;
      :meth:`GaussianGuide.make_optimizers` gives every site its own group and bounds).
    - ``adapt_sigma``: the group is ``[μ, σ²]`` (a guide with ``adapt_sigma=True``): σ² takes
      its own natural-gradient step, ``σ² ← clip(σ² − sigma_lr · 2σ⁴ ∇σ²)``
      (:func:`~bayesnas.optim.functional.gaussian_variance_natural_gradient`), into
      ``[min_sigma², max_sigma²]``, and μ's step uses this σ² instead of ``sigma``. Both steps
      are computed from the values before either moves.

    State: ``state[p]["step"]``, counting the steps of every tensor that had a gradient.
    Everything round-trips through ``state_dict()``.
    """

    param_symbol = "μ"

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

    def _check_options(self, group: dict[str, Any]) -> None:
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

    @staticmethod
    def _is_variance(group: dict[str, Any], index: int) -> bool:
        """Whether ``group["params"][index]`` is the σ² of a group ``[μ, σ²]``."""
        return group["adapt_sigma"] and index == 1

    def _natural_gradient(
        self, theta: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], index: int
    ) -> torch.Tensor:
        if not group["adapt_sigma"]:
            return F.gaussian_natural_gradient(grad, float(group["sigma"]))
        if index == 0:
            # μ steps first, so σ² still holds its value from before this step.
            return F.gaussian_natural_gradient(grad, variance=group["params"][1])
        return F.gaussian_variance_natural_gradient(grad, theta)

    def _step_size(self, group: dict[str, Any], index: int) -> float:
        return float(group["sigma_lr"] if self._is_variance(group, index) else group["lr"])

    def _project(self, theta: torch.Tensor, group: dict[str, Any], index: int) -> torch.Tensor:
        if self._is_variance(group, index):
            return F.project_box(theta, group["min_sigma"] ** 2, group["max_sigma"] ** 2)
        return F.project_box(theta, group["lower"], group["upper"])
