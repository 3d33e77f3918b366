"""Independent categorical θ over categorical arch sites (pdas2019)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pyro.distributions as dist
import torch
from torch import nn

from bayesnas.guides.base import ExpectationGuide, _init_value
from bayesnas.sites import SiteSpec


class CategoricalGuide(ExpectationGuide):
    """p_θ(M) = Π_i Π_j θ_ij^{m_ij}, each θ_i on the simplex (pdas2019 §2).

    Args:
        sites: the categorical arch sites this guide covers.
        init: initial θ per site (array of shape ``(*shape, K)``); default 1/K, "no prior
            knowledge" (pdas2019 §2).
        learnable: ``False`` holds θ fixed.
    """

    family = "categorical"

    def __init__(
        self,
        sites: Mapping[str, SiteSpec] | Iterable[SiteSpec],
        *,
        init: Mapping[str, object] | None = None,
        learnable: bool = True,
    ) -> None:
        super().__init__(sites)
        for name, spec in self.specs.items():
            k = spec.num_categories
            default = torch.full((*spec.shape, k), 1.0 / k)
            value = torch.as_tensor(_init_value(init, name, default), dtype=torch.get_default_dtype())
            value = value.expand(*spec.shape, k).clone()
            if bool((value < 0).any()) or not torch.allclose(
                value.sum(-1), torch.ones(()), atol=1e-5
            ):
                raise ValueError(
                    f"Initial θ of site {name!r} must be non-negative with rows summing to 1, "
                    f"but got {value.tolist()}."
                )
            self.thetas.append(nn.Parameter(value, requires_grad=learnable))

    def distribution(self, name: str) -> dist.Distribution:
        theta = self.theta(name)
        return dist.Categorical(probs=theta).to_event(theta.dim() - 1)

    def mode_of(self, name: str) -> torch.Tensor:
        """argmax_M p_θ(M): the most likely category of every variable (pdas2019 alg. 1)."""
        return self.theta(name).detach().argmax(-1)

    def entropy_of(self, name: str) -> torch.Tensor:
        return torch.distributions.Categorical(probs=self.theta(name).detach()).entropy()

    @property
    def optimizer_class(self) -> type[torch.optim.Optimizer]:
        from bayesnas.optim import CategoricalNaturalGradient

        return CategoricalNaturalGradient
