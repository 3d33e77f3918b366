"""Natural-gradient optimizer for categorical expectation parameters θ (pdas2019)."""

from __future__ import annotations

from typing import Any

import torch

from bayesnas.optim import functional as F
from bayesnas.optim._base import AT_BOUND_ATOL, AdaptiveNaturalGradient, ParamsT, check_int

SIMPLEX_ATOL = 1e-5


class CategoricalNaturalGradient(AdaptiveNaturalGradient):
    """Stochastic natural gradient for categorical θ of shape ``(..., K)``: every row is one
    categorical variable with K categories, on the simplex (pdas2019 eq. (4), app. A–C).

        θ ← Π(θ − η (θ ⊙ g − θ (θ·g))),   g = ∇θ surrogate   (app. A eq. (7))

    which for the surrogate ``−(1/λ) Σ uᵢ log p_θ(hᵢ)`` is θ + (η/λ) Σ uᵢ(onehot(hᵢ) − θ), eq. (4).
    Π is the projection of app. B eqs. (11)–(12) onto {θ ≥ θmin, Σθ = 1} with
    θmin = 1/(D(K − 1)), K the row's own number of categories. Params of one group may have
    different K.

    Args:
        params: the θ tensors (or param-group dicts), last dimension K >= 2.
        lr: η; default 1/Σᵢ(Kᵢ − 1) over the group's variables (pdas2019 §2), or ηmax when
            ``adaptive``.
        num_variables: D, the number of categorical variables of the problem in θmin; default
            the number of rows in the group.
        theta_min: replaces 1/(D(K − 1)) for every row; must be < 1/K. Required when
            K θmin >= 1 (D = 1, or D = 2 with K = 2), where the clipped simplex is a point or
            empty.
        adaptive, alpha, lr_min, lr_max, num_samples: the adaptive step size of app. C; see
            :class:`~bayesnas.optim.AdaptiveNaturalGradient`.
    """

    family = "categorical"

    def __init__(
        self,
        params: ParamsT,
        *,
        lr: float | None = None,
        num_variables: int | None = None,
        theta_min: float | None = None,
        adaptive: bool = False,
        alpha: float = 1.5,
        lr_min: float = 0.0,
        lr_max: float | None = None,
        num_samples: int = 2,
    ) -> None:
        super().__init__(
            params, lr=lr, adaptive=adaptive, alpha=alpha, lr_min=lr_min, lr_max=lr_max,
            num_samples=num_samples, num_variables=num_variables, theta_min=theta_min,
        )

    def _check_domain(self, theta: torch.Tensor) -> None:
        if theta.dim() < 1 or theta.shape[-1] < 2:
            raise ValueError(
                "Categorical θ needs a last dimension of K >= 2 categories, but got shape "
                f"{tuple(theta.shape)}."
            )
        if theta.numel() == 0:
            return
        sums = theta.sum(-1)
        lo, err = float(theta.min()), float((sums - 1).abs().max())
        if not (lo >= 0.0 and err <= SIMPLEX_ATOL):  # also rejects NaN
            raise ValueError(
                f"Categorical θ rows must lie on the simplex (entries >= 0, |Σθ - 1| <= "
                f"{SIMPLEX_ATOL}), but got row sums in [{float(sums.min())}, {float(sums.max())}] "
                f"and min entry {lo}."
            )

    def _check_family_options(self, group: dict[str, Any]) -> None:
        check_int("num_variables", group["num_variables"], 1, allow_none=True)
        k_max = max((p.shape[-1] for p in group["params"]), default=2)
        theta_min = group["theta_min"]
        if theta_min is not None:
            if isinstance(theta_min, bool) or not isinstance(theta_min, int | float) or not (
                0.0 < theta_min < 1.0 / k_max
            ):
                raise ValueError(
                    f"`theta_min` must lie in (0, 1/K) = (0, {1.0 / k_max}) for K={k_max}, but got "
                    f"theta_min={theta_min!r}."
                )
            return
        d = self._num_variables(group)
        for p in group["params"]:
            k = p.shape[-1]
            if k * self._theta_min(group, k) >= 1:
                raise ValueError(
                    "The clipped simplex {θ >= θmin} with θmin = 1/(D(K-1)) needs K·θmin < 1, "
                    f"i.e. D(K-1) > K, to be non-degenerate, but got D={d}, K={k}; pass "
                    "theta_min (e.g. theta_min=0.05) or num_variables to set it explicitly."
                )

    def _num_variables(self, group: dict[str, Any]) -> int:
        """D: the number of categorical variables (rows), or ``num_variables``."""
        return group["num_variables"] or sum(p.numel() // p.shape[-1] for p in group["params"])

    def _theta_min(self, group: dict[str, Any], k: int) -> float:
        """θmin = 1/(D(K − 1)) (pdas2019 app. B), or the group's ``theta_min``."""
        return group["theta_min"] or 1.0 / (self._num_variables(group) * (k - 1))

    def _num_free(self, group: dict[str, Any]) -> int:
        return sum(p.numel() // p.shape[-1] * (p.shape[-1] - 1) for p in group["params"])

    def _natural_gradient(
        self, theta: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], index: int
    ) -> torch.Tensor:
        return F.categorical_natural_gradient(theta, grad)

    def _fisher_sqrt_image(
        self, theta: torch.Tensor, delta: torch.Tensor, group: dict[str, Any], index: int
    ) -> torch.Tensor:
        return F.categorical_fisher_sqrt_image(theta, delta)

    def _project(self, theta: torch.Tensor, group: dict[str, Any], index: int) -> torch.Tensor:
        return F.project_categorical(theta, self._theta_min(group, theta.shape[-1]))

    def _at_bound(self, theta: torch.Tensor, group: dict[str, Any], index: int) -> torch.Tensor:
        vertex = torch.nn.functional.one_hot(theta.argmax(-1), theta.shape[-1]).to(theta.dtype)
        ceiling = self._project(vertex, group, index)
        return torch.isclose(theta, ceiling, rtol=0.0, atol=AT_BOUND_ATOL).all(-1)
