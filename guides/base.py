"""Common machinery of the guides over architecture sites."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pyro
import torch
from torch import nn

from bayesnas.sites import SiteSpec


class ExpectationGuide(nn.Module):
    """A product distribution over arch sites of one family, in expectation parameters θ.

    θ is stored as plain ``nn.Parameter`` tensors (one per site, in site order), *not* as
    unconstrained Pyro params: the natural-gradient optimizers in :mod:`bayesnas.optim` step
    θ itself and project it into its domain. Subclasses give the family's distribution,
    its most likely value and its entropy.
    """

    family: str = ""

    def __init__(self, sites: Mapping[str, SiteSpec] | Iterable[SiteSpec]) -> None:
        super().__init__()
        specs = list(sites.values()) if isinstance(sites, Mapping) else list(sites)
        wrong = [s.name for s in specs if s.family != self.family]
        if wrong:
            raise ValueError(
                f"{type(self).__name__} takes {self.family} sites only, but got {wrong}."
            )
        if not specs:
            raise ValueError(f"{type(self).__name__} needs at least one {self.family} site.")
        self.specs: dict[str, SiteSpec] = {s.name: s for s in specs}
        self.thetas = nn.ParameterList()

    # -- θ access -------------------------------------------------------------------------
    @property
    def site_names(self) -> list[str]:
        return list(self.specs)

    def theta(self, name: str) -> torch.Tensor:
        try:
            index = self.site_names.index(name)
        except ValueError:
            raise KeyError(f"Unknown arch site {name!r}. Known sites: {self.site_names}.") from None
        return self.thetas[index]

    def arch_parameters(self) -> list[nn.Parameter]:
        """The θ tensors a natural-gradient optimizer should step."""
        return [p for p in self.thetas if p.requires_grad]

    # -- family-specific ----------------------------------------------------------------
    def distribution(self, name: str) -> torch.distributions.Distribution:
        raise NotImplementedError

    def mode_of(self, name: str) -> torch.Tensor:
        raise NotImplementedError

    def entropy_of(self, name: str) -> torch.Tensor:
        raise NotImplementedError

    # -- generic -------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Sample every site from its own distribution (inside the caller's arch plate)."""
        return {
            name: pyro.sample(name, self.distribution(name), infer={"arch": True})
            for name in self.specs
        }

    def mode(self) -> dict[str, torch.Tensor]:
        """The most likely architecture: argmax of p_θ(M), site by site."""
        return {name: self.mode_of(name) for name in self.specs}

    def entropy(self) -> torch.Tensor:
        """Total entropy of p_θ in nats (sum over all variables)."""
        return sum(self.entropy_of(name).sum() for name in self.specs)

    def expected_cost(self, costs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """E_θ[R(M)] = Σ c ⊙ θ for R linear in the sufficient statistic (saito2018 eq. 4)."""
        total = torch.zeros((), device=self.thetas[0].device)
        for name, c in costs.items():
            if name in self.specs:
                total = total + (c.to(self.theta(name)) * self.theta(name)).sum()
        return total

    def num_variables(self) -> int:
        return sum(s.numel for s in self.specs.values())

    def summary(self) -> dict[str, Any]:
        """θ per site as plain lists (the posterior summary written next to a run)."""
        out = {}
        for name, spec in self.specs.items():
            out[name] = {
                "family": self.family,
                "shape": list(spec.shape),
                "theta": self.theta(name).detach().cpu().tolist(),
                "entropy": float(self.entropy_of(name).sum()),
            }
            if spec.choices:
                out[name]["choices"] = list(spec.choices)
            if spec.edges:
                out[name]["edges"] = [list(e) for e in spec.edges]
        return out

    def make_optimizers(self, **kwargs: Any) -> list[torch.optim.Optimizer]:
        """The natural-gradient optimizer of this family over :meth:`arch_parameters`
        (none when θ is held fixed)."""
        params = self.arch_parameters()
        return [self.optimizer_class(params, **kwargs)] if params else []

    @property
    def optimizer_class(self) -> type[torch.optim.Optimizer]:
        raise NotImplementedError


def _init_value(init: float | Mapping[str, Any] | None, name: str, default: float) -> Any:
    if init is None:
        return default
    if isinstance(init, Mapping):
        return init.get(name, default)
    return init


def check_init(value: float, low: float, high: float, what: str) -> None:
    if not (low <= value <= high) or math.isnan(value):
        raise ValueError(f"`{what}` must lie in [{low}, {high}], but got {what}={value}.")


class GuideList(nn.Module):
    """Several guides side by side, each over its own sites (TyXe-style composition)."""

    def __init__(self, *guides: nn.Module) -> None:
        super().__init__()
        seen: dict[str, int] = {}
        for i, g in enumerate(guides):
            for name in g.specs:
                if name in seen:
                    raise ValueError(f"Arch site {name!r} is claimed by guides {seen[name]} and {i}.")
                seen[name] = i
        self.guides = nn.ModuleList(guides)

    @property
    def specs(self) -> dict[str, SiteSpec]:
        return {n: s for g in self.guides for n, s in g.specs.items()}

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for g in self.guides:
            out.update(g(*args, **kwargs))
        return out

    def mode(self) -> dict[str, torch.Tensor]:
        return {k: v for g in self.guides for k, v in g.mode().items()}

    def entropy(self) -> torch.Tensor:
        return sum(g.entropy() for g in self.guides)

    def expected_cost(self, costs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return sum(g.expected_cost(costs) for g in self.guides)

    def summary(self) -> dict[str, Any]:
        return {k: v for g in self.guides for k, v in g.summary().items()}

    def make_optimizers(self, **kwargs: Any) -> list[torch.optim.Optimizer]:
        """The guides' optimizers; with a shared-rate guide among them, the θ of every Bernoulli
        and shared-rate guide go into one optimizer (one d, one η: shirakawa2018 §III's
        θ ∈ R^{2L−1} is one problem; :func:`bayesnas.guides.shared_bernoulli.rate_optimizers`)."""
        from bayesnas.guides.shared_bernoulli import SharedBernoulliGuide, rate_optimizers

        if not any(isinstance(g, SharedBernoulliGuide) for g in self.guides):
            return [o for g in self.guides for o in g.make_optimizers(**kwargs)]
        rates = [g for g in self.guides if getattr(g, "family", None) in ("bernoulli", "shared-bernoulli")]
        out: list[torch.optim.Optimizer] = []
        for g in self.guides:
            if g is rates[0]:
                out += rate_optimizers(rates, **kwargs)
            elif g not in rates:
                out += g.make_optimizers(**kwargs)
        return out


def auto_guide(
    model: Callable[..., Any] | None = None,
    *args: Any,
    sites: Mapping[str, SiteSpec] | None = None,
    **kwargs: Any,
) -> ExpectationGuide | GuideList:
    """The default guide over every arch site of ``model``: Bernoulli, shared-rate Bernoulli
    and categorical θ, a mean-field Normal over op strengths ("normal" sites, vinnas2020) and a
    Gaussian over ordered integers ("integer" sites, nes2019).

    Pass either ``sites`` (from :func:`bayesnas.sites.discover_sites`) or the model and an
    example input to discover them.
    """
    from bayesnas.guides.bernoulli import BernoulliGuide
    from bayesnas.guides.categorical import CategoricalGuide
    from bayesnas.guides.gaussian import GaussianGuide
    from bayesnas.guides.normal import NormalGuide
    from bayesnas.guides.shared_bernoulli import SharedBernoulliGuide

    from bayesnas.sites import discover_sites

    if sites is None:
        if model is None:
            raise ValueError("auto_guide needs a model (with an example input) or `sites`.")
        sites = discover_sites(model, *args, **kwargs)
    if not sites:
        raise ValueError("The model declares no arch sites (bayesnas.sites.bernoulli/categorical).")
    parts = []
    bern = [s for s in sites.values() if s.family == "bernoulli"]
    shared = [s for s in sites.values() if s.family == "shared-bernoulli"]
    cat = [s for s in sites.values() if s.family == "categorical"]
    strengths = [s for s in sites.values() if s.family == "normal"]
    integers = [s for s in sites.values() if s.family == "integer"]
    if bern:
        parts.append(BernoulliGuide(bern))
    if shared:
        parts.append(SharedBernoulliGuide(shared))
    if cat:
        parts.append(CategoricalGuide(cat))
    if strengths:
        parts.append(NormalGuide(strengths))
    if integers:
        parts.append(GaussianGuide(integers))
    return parts[0] if len(parts) == 1 else GuideList(*parts)
