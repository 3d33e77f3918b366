"""Bernoulli rates shared by groups of units (shirakawa2018 §III, one dropout rate per layer)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyro.distributions as dist
import torch
from torch import nn

from bayesnas.guides.base import ExpectationGuide, _init_value, check_init
from bayesnas.sites import SiteSpec

__all__ = ["SharedBernoulliGuide", "rate_optimizers"]


class SharedBernoulliGuide(ExpectationGuide):
    """p_θ(M) = Π_g Π_{i=1..U} θ_g^{m_gi} (1 − θ_g)^{1 − m_gi}: U i.i.d. bits per rate θ_g.

    shirakawa2018 §III: the dropout mask M_l = (m_l1, ..., m_lU) of layer l is drawn from one
    Bernoulli(θ_l), so θ has the *group* shape (:attr:`SiteSpec.theta_shape`, e.g. ``(L,)``)
    while a sample has the site's shape ``(*groups, U)``. Every unit is sampled directly from
    ``Bernoulli(θ expanded over the group)``; the natural gradient of its log-probability is
    (1/U) Σᵢ m_gi − θ_g (:class:`~bayesnas.optim.SharedBernoulliNaturalGradient`).

    Args:
        sites: the shared-rate Bernoulli arch sites this guide covers.
        init: initial θ, a float for every rate or a mapping site → float/array of the group
            shape (default 0.5, shirakawa2018 §III "the initial parameter (0.5, ..., 0.5)").
        learnable: ``False`` holds θ fixed (the stochastic-network baseline, θ = 0.5).
    """

    family = "shared-bernoulli"

    def __init__(
        self,
        sites: Mapping[str, SiteSpec] | Iterable[SiteSpec],
        *,
        init: float | Mapping[str, object] | None = None,
        learnable: bool = True,
    ) -> None:
        super().__init__(sites)
        for name, spec in self.specs.items():
            if spec.group_size is None or not spec.shape or spec.shape[-1] != spec.group_size:
                raise ValueError(
                    f"Shared-rate site {name!r} needs shape (*groups, group_size), but got "
                    f"shape={spec.shape}, group_size={spec.group_size}."
                )
            value = torch.as_tensor(_init_value(init, name, 0.5), dtype=torch.get_default_dtype())
            try:
                value = value.expand(spec.theta_shape).clone()
            except RuntimeError:
                raise ValueError(
                    f"Initial θ of site {name!r} must broadcast to its group shape "
                    f"{spec.theta_shape}, but got shape {tuple(value.shape)}."
                ) from None
            if value.numel():
                check_init(float(value.min()), 0.0, 1.0, "init")
                check_init(float(value.max()), 0.0, 1.0, "init")
            self.thetas.append(nn.Parameter(value, requires_grad=learnable))

    def group_size(self, name: str) -> int:
        """U of a site: the number of units sharing each of its rates."""
        self.theta(name)  # a KeyError naming the known sites
        return int(self.specs[name].group_size)

    def group_sizes(self) -> list[int]:
        """U of every θ in :meth:`arch_parameters`, in order."""
        return [
            self.group_size(name)
            for name, theta in zip(self.site_names, self.thetas, strict=True)
            if theta.requires_grad
        ]

    def _units(self, name: str, value: torch.Tensor) -> torch.Tensor:
        return value.unsqueeze(-1).expand(*value.shape, self.group_size(name))

    def distribution(self, name: str) -> dist.Distribution:
        """Bernoulli(θ) for every unit; gradients reach θ through the expansion."""
        probs = self._units(name, self.theta(name))
        return dist.Bernoulli(probs=probs).to_event(probs.dim())

    def mode_of(self, name: str) -> torch.Tensor:
        """m = 1 for every unit of a group iff its θ ≥ 0.5 (shirakawa2018's deterministic
        prediction): shape ``(*groups, U)``."""
        theta = self.theta(name).detach()
        return self._units(name, (theta >= 0.5).to(theta.dtype))

    def entropy_of(self, name: str) -> torch.Tensor:
        """Entropy of every unit's bit, shape ``(*groups, U)`` (they sum to U·H(θ) per group)."""
        h = torch.distributions.Bernoulli(probs=self.theta(name).detach()).entropy()
        return self._units(name, h)

    def expected_cost(self, costs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """E_θ[R(M)] = Σ c ⊙ θ with c shaped like θ (the group shape): c_g is the cost of group
        g with every unit kept, R linear in the keep fraction (1/U) Σᵢ m_gi (saito2018 eq. 4)."""
        for name, c in costs.items():
            if name in self.specs and tuple(torch.as_tensor(c).shape) != self.specs[name].theta_shape:
                raise ValueError(
                    f"Costs of site {name!r} must have the shape of its θ "
                    f"{self.specs[name].theta_shape} (one per group), but got "
                    f"{tuple(torch.as_tensor(c).shape)}."
                )
        return super().expected_cost(costs)

    def expected_active(self) -> float:
        """U Σθ: the expected number of kept units (1-bits), as ``Posterior.expected_active``."""
        pairs = zip(self.site_names, self.thetas, strict=True)
        return float(sum(t.detach().sum() * self.group_size(n) for n, t in pairs))

    def summary(self) -> dict[str, Any]:
        """θ per site in the group shape, with ``group_size`` (read by
        ``bayesnas.analysis.SharedBernoulliMarginal.from_summary``)."""
        out = super().summary()
        for name, spec in self.specs.items():
            out[name].update(shape=list(spec.theta_shape), group_size=self.group_size(name))
        return out

    def make_optimizers(self, **kwargs: Any) -> list[torch.optim.Optimizer]:
        """One :class:`~bayesnas.optim.SharedBernoulliNaturalGradient` over θ, with each
        tensor's group size (none when θ is held fixed)."""
        return rate_optimizers([self], **kwargs)

    @property
    def optimizer_class(self) -> type[torch.optim.Optimizer]:
        from bayesnas.optim import SharedBernoulliNaturalGradient

        return SharedBernoulliNaturalGradient


def rate_optimizers(guides: Sequence[ExpectationGuide], **kwargs: Any) -> list[torch.optim.Optimizer]:
    """One natural-gradient optimizer over the θ of Bernoulli and shared-rate guides together.

    Plain bits enter with group size 1, shared rates with theirs, all in one param group: the
    paper's θ ∈ R^{2L−1} of §III is one problem with one d = 2L − 1 (the clipping range
    [1/d, 1 − 1/d] and η = 1/d) and, when adaptive, one step size. Empty when nothing is
    learnable.
    """
    from bayesnas.optim import SharedBernoulliNaturalGradient

    params: list[nn.Parameter] = []
    sizes: list[int] = []
    for g in guides:
        if g.family not in ("bernoulli", "shared-bernoulli"):
            raise ValueError(
                f"rate_optimizers takes Bernoulli and shared-rate guides, but got a {g.family} guide."
            )
        ps = g.arch_parameters()
        params += ps
        sizes += g.group_sizes() if isinstance(g, SharedBernoulliGuide) else [1] * len(ps)
    return [SharedBernoulliNaturalGradient(params, group_size=sizes, **kwargs)] if params else []
