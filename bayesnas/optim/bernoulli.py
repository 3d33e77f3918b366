"""Natural-gradient optimizer for Bernoulli expectation parameters θ (shirakawa2018, saito2018)."""

from __future__ import annotations

from typing import Any

import torch

from bayesnas.optim import functional as F
from bayesnas.optim._base import AT_BOUND_ATOL, AdaptiveNaturalGradient, ParamsT, check_int


class BernoulliNaturalGradient(AdaptiveNaturalGradient):
    """Stochastic natural gradient for independent Bernoulli θ ∈ [0, 1] (any shape; every
    element is one bit): shirakawa2018 eq. (9), saito2018 eq. (7).

        θ ← clip(θ − η θ(1 − θ) ⊙ ∇θ surrogate, [1/d, 1 − 1/d])

    With ∇ the gradient of ``−(1/λ) Σ uᵢ log p_θ(Mᵢ) + ε Σ cⱼθⱼ`` this is
    θ + η((1/λ) Σ uᵢ(Mᵢ − θ) − ε c θ(1 − θ)), saito2018 eq. (7).

    Args:
        params: the θ tensors (or param-group dicts).
        lr: η; default 1/d (saito2018 §4 "ηθ = 1/d"), or ηmax when ``adaptive``.
        dim: d, the number of bits of the problem; default the number of elements of the
            group's θ. Sets the clipping range [1/d, 1 − 1/d] (shirakawa2018 §2), the default η
            and, when adaptive, ηmax = d^(−1/2) and Tr(F Cov[Δθ]). Give it when the bits of one
            problem are split over several optimizers (e.g. ``pyro.optim.PyroOptim``, which
            makes one optimizer per parameter).
        theta_min: replaces the lower bound 1/d (the range becomes [theta_min, 1 − theta_min]);
            required when d < 3, where [1/d, 1 − 1/d] is degenerate.
        adaptive, alpha, lr_min, lr_max, num_samples: the adaptive step size of pdas2019
            app. C with K = 2 (θ̄ = θ, θ_K = 1 − θ); see
            :class:`~bayesnas.optim.AdaptiveNaturalGradient`.
    """

    family = "bernoulli"

    def __init__(
        self,
        params: ParamsT,
        *,
        lr: float | None = None,
        dim: int | None = None,
        theta_min: float | None = None,
        adaptive: bool = False,
        alpha: float = 1.5,
        lr_min: float = 0.0,
        lr_max: float | None = None,
        num_samples: int = 2,
    ) -> None:
        super().__init__(
            params, lr=lr, adaptive=adaptive, alpha=alpha, lr_min=lr_min, lr_max=lr_max,
            num_samples=num_samples, dim=dim, theta_min=theta_min,
        )

    def _check_domain(self, theta: torch.Tensor) -> None:
        if theta.numel() == 0:
            return
        lo, hi = float(theta.min()), float(theta.max())
        if not (0.0 <= lo and hi <= 1.0):  # also rejects NaN
            raise ValueError(f"θ must lie in [0, 1], but got values in [{lo}, {hi}].")

    def _check_family_options(self, group: dict[str, Any]) -> None:
        check_int("dim", group["dim"], 1, allow_none=True)
        theta_min = group["theta_min"]
        if theta_min is not None:
            if isinstance(theta_min, bool) or not isinstance(theta_min, int | float) or not (
                0.0 < theta_min < 0.5
            ):
                raise ValueError(
                    f"`theta_min` must lie in (0, 0.5), but got theta_min={theta_min!r}."
                )
        elif self._num_free(group) < 3:
            raise ValueError(
                "The clipping range [1/d, 1 - 1/d] needs d >= 3 θ entries (bits or rates) to be "
                f"non-degenerate, but got d={self._num_free(group)}; pass theta_min (e.g. "
                "theta_min=0.05) to set the range explicitly."
            )

    def _num_free(self, group: dict[str, Any]) -> int:
        return group["dim"] or sum(p.numel() for p in group["params"])

    def _natural_gradient(
        self, theta: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], index: int
    ) -> torch.Tensor:
        return F.bernoulli_natural_gradient(theta, grad)

    def _fisher_sqrt_image(
        self, theta: torch.Tensor, delta: torch.Tensor, group: dict[str, Any], index: int
    ) -> torch.Tensor:
        return F.bernoulli_fisher_sqrt_image(theta, delta)

    def _project(self, theta: torch.Tensor, group: dict[str, Any], index: int) -> torch.Tensor:
        theta_min = group["theta_min"] or 1.0 / self._num_free(group)
        return F.project_bernoulli(theta, theta_min)

    def _at_bound(self, theta: torch.Tensor, group: dict[str, Any], index: int) -> torch.Tensor:
        ceiling = self._project((theta > 0.5).to(theta.dtype), group, index)
        return torch.isclose(theta, ceiling, rtol=0.0, atol=AT_BOUND_ATOL)
