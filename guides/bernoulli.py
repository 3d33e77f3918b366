"""Independent Bernoulli θ over Bernoulli arch sites (shirakawa2018, saito2018)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pyro.distributions as dist
import torch
from torch import nn

from bayesnas.guides.base import ExpectationGuide, _init_value, check_init
from bayesnas.sites import SiteSpec


class BernoulliGuide(ExpectationGuide):
    """p_θ(M) = Π θ_k^{m_k} (1 − θ_k)^{1 − m_k}, θ the probability of each bit being 1.

    Args:
        sites: the Bernoulli arch sites this guide covers.
        init: initial θ, a float for every bit or a mapping site → float/array
            (default 0.5, "no prior knowledge", shirakawa2018 footnote 1).
        learnable: ``False`` holds θ fixed (the StochasticLayer baseline, θ = 0.5).
    """

    family = "bernoulli"

    def __init__(
        self,
        sites: Mapping[str, SiteSpec] | Iterable[SiteSpec],
        *,
        init: float | Mapping[str, object] | None = None,
        learnable: bool = True,
    ) -> None:
        super().__init__(sites)
        for name, spec in self.specs.items():
            value = torch.as_tensor(_init_value(init, name, 0.5), dtype=torch.get_default_dtype())
            value = value.expand(spec.shape).clone()
            if value.numel():
                check_init(float(value.min()), 0.0, 1.0, "init")
                check_init(float(value.max()), 0.0, 1.0, "init")
            self.thetas.append(nn.Parameter(value, requires_grad=learnable))

    def distribution(self, name: str) -> dist.Distribution:
        theta = self.theta(name)
        return dist.Bernoulli(probs=theta).to_event(theta.dim())

    def mode_of(self, name: str) -> torch.Tensor:
        """Deterministic choice m = 1 iff θ ≥ 0.5 (shirakawa2018, "deterministic prediction")."""
        theta = self.theta(name).detach()
        return (theta >= 0.5).to(theta.dtype)

    def entropy_of(self, name: str) -> torch.Tensor:
        return torch.distributions.Bernoulli(probs=self.theta(name).detach()).entropy()

    def expected_active(self) -> float:
        """Σθ: the expected number of 1-bits (shirakawa2018 fig. 2)."""
        return float(sum(t.detach().sum() for t in self.thetas))

    @property
    def optimizer_class(self) -> type[torch.optim.Optimizer]:
        from bayesnas.optim import BernoulliNaturalGradient

        return BernoulliNaturalGradient
