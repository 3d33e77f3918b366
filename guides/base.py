"""Common machinery of the guides over architecture sites."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pyro
import torch
from torch import nn

from bayesnas.families import FamilyOptions, SiteSpec, families, get_family
from bayesnas.guides.state import NamedSiteState, check_state, legacy_error, rename_keys, split_site_key


class ExpectationGuide(NamedSiteState):
    """A product distribution over arch sites of one family, in expectation parameters θ.

    θ is stored as plain ``nn.Parameter`` tensors (one per site, in site order), *not* as
    unconstrained Pyro params: the natural-gradient optimizers in :mod:`bayesnas.optim` step
    θ itself and project it into its domain. Subclasses give the family's distribution,
    its most likely value and its entropy.

    ``state_dict()`` keys θ by site name, ``sites.<site>.<theta_field>``
    (:mod:`bayesnas.guides.state`), so a state loads by name whatever the site order.
    """

    family: str = ""
    #: The field of θ in the state keys (``sites.<site>.theta``).
    theta_field: str = "theta"

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

    def _site_fields(self) -> dict[str, tuple[str, str]]:
        # Every subclass appends θ to `thetas` in `specs` order.
        return {f"thetas.{i}": (name, self.theta_field) for i, name in enumerate(self.specs)}

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
    """Several guides side by side, each over its own sites (TyXe-style composition).

    ``state_dict()`` is keyed by site, not by guide: each guide's per-site entries keep their
    own key ``sites.<site>.<field>`` (sites are unique across the guides), and its other
    entries go under its family (``gaussian-integer.sigma``; the second guide of a family is
    ``<family>-2``). So a state loads by name even when sites move between guides or the
    guides come in another order; one for other sites raises a ValueError naming them.
    """

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

    # -- state by site name ---------------------------------------------------------------
    def _labels(self) -> list[str]:
        """The key of each guide's entries that belong to no site (e.g. a Gaussian guide's σ):
        its family, numbered from the second guide of a family on."""
        count: dict[str, int] = {}
        out = []
        for g in self.guides:
            # No dots: the label is the first part of its keys.
            family = (getattr(g, "family", "") or type(g).__name__).replace(".", "_")
            count[family] = count.get(family, 0) + 1
            out.append(family if count[family] == 1 else f"{family}-{count[family]}")
        return out

    def _flat_key(self, labels: list[str], index: int, key: str) -> str:
        """The GuideList key of guide ``index``'s (named) key ``key``."""
        if isinstance(self.guides[index], NamedSiteState) and split_site_key(key) is not None:
            return key
        return f"{labels[index]}.{key}"

    def state_dict(  # type: ignore[override]
        self, *, destination: dict[str, Any] | None = None, prefix: str = "", keep_vars: bool = False
    ) -> dict[str, Any]:
        """The guides' states (each already by site name) without the positional ``guides.<i>.``."""
        out = super().state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        labels, inner = self._labels(), prefix + "guides."
        names = {}
        for key in out:
            if key.startswith(inner):
                index, _, rest = key[len(inner):].partition(".")
                names[key] = prefix + self._flat_key(labels, int(index), rest)
        rename_keys(out, names, prefix)
        return out

    def upgrade_positional_state(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """A state saved before named sites (keys ``guides.<i>.thetas.<j>``), rekeyed by *these*
        guides and site order; only for a state known to come from the same guides and sites
        in the same order (see :meth:`NamedSiteState.upgrade_positional_state`)."""
        labels, out = self._labels(), {}
        for key, value in state.items():
            if key.startswith("guides."):
                index, _, rest = key[len("guides."):].partition(".")
                g = self.guides[int(index)]
                if isinstance(g, NamedSiteState):
                    rest = g._to_named().get(rest, rest)
                key = self._flat_key(labels, int(index), rest)
            out[key] = value
        return out

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Check the whole state here (one error naming every problem), then rename each key
        # in place to the guide that owns it now (``guides.<i>.sites...``); torch then loads
        # each guide from those keys, and the guide renames them to its ParameterList's.
        keys = [k for k in state_dict if k.startswith(prefix)]
        legacy = [k[len(prefix):] for k in keys if k.startswith(prefix + "guides.")]
        if legacy:
            raise legacy_error(type(self).__name__, legacy, list(self.specs))
        given = {k[len(prefix):]: state_dict[k] for k in keys}
        check_state(type(self).__name__, self.state_dict(keep_vars=True), given)
        owner = {site: i for i, g in enumerate(self.guides) if isinstance(g, NamedSiteState)
                 for site in g._site_names()}
        index_of = {label: i for i, label in enumerate(self._labels())}
        for key in given:
            parsed = split_site_key(key)
            if parsed is not None and parsed[0] in owner:
                new = f"guides.{owner[parsed[0]]}.{key}"
            else:
                label, _, rest = key.partition(".")
                new = f"guides.{index_of[label]}.{rest}"
            state_dict[prefix + new] = state_dict.pop(prefix + key)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def make_optimizers(
        self, options: Mapping[str, FamilyOptions] | None = None
    ) -> list[torch.optim.Optimizer]:
        """Each guide's optimizers under its family's typed options (``options[family]``, the
        family's defaults where absent), so any families mix. With a shared-rate guide among
        them, the θ of every Bernoulli and shared-rate guide go into one optimizer (one d, one η:
        shirakawa2018 §III's θ ∈ R^{2L−1} is one problem;
        :func:`bayesnas.guides.shared_bernoulli.rate_optimizers`), under the shared-rate
        family's options, which the Bernoulli family's must then equal."""
        from bayesnas.guides.shared_bernoulli import SharedBernoulliGuide, rate_optimizers

        options = dict(options or {})
        unknown = sorted(set(options) - {g.family for g in self.guides})
        if unknown:
            raise ValueError(f"`options` names the families {unknown}, but the guides are of "
                             f"{[g.family for g in self.guides]}.")
        joint = any(isinstance(g, SharedBernoulliGuide) for g in self.guides)
        rates = [g for g in self.guides if joint and get_family(g.family).binary]
        if rates:
            shared = options.get(SharedBernoulliGuide.family)
            bits = options.get("bernoulli")
            if shared is not None and bits is not None and shared != bits:
                raise ValueError("Bernoulli and shared-rate θ share one optimizer, so their options must be "
                                 f"equal, but got bernoulli={bits} and shared-bernoulli={shared}.")
            rate_options = shared or bits or get_family(SharedBernoulliGuide.family).options()
        out: list[torch.optim.Optimizer] = []
        for g in self.guides:
            if rates and g is rates[0]:
                out += rate_optimizers(rates, **rate_options.optimizer_kwargs())
            elif g not in rates:
                out += get_family(g.family).optimizers(g, options.get(g.family))
        return out


def make_arch_optimizers(
    guide: nn.Module, options: Mapping[str, FamilyOptions] | None = None
) -> list[torch.optim.Optimizer]:
    """The optimizers of any guide (one family's, or a :class:`GuideList`) under typed options
    per family (:mod:`bayesnas.families`)."""
    if isinstance(guide, GuideList):
        return guide.make_optimizers(options)
    return get_family(guide.family).optimizers(guide, (options or {}).get(guide.family))


def auto_guide(
    model: Callable[..., Any] | None = None,
    *args: Any,
    sites: Mapping[str, SiteSpec] | None = None,
    options: Mapping[str, FamilyOptions] | None = None,
    **kwargs: Any,
) -> ExpectationGuide | GuideList:
    """The default guide over every arch site of ``model``: each registered family's guide
    over that family's sites (:mod:`bayesnas.families`: Bernoulli, shared-rate Bernoulli and
    categorical θ, a mean-field Normal over op strengths, a Gaussian over ordered integers),
    built with ``options[family]`` where given; one family's guide alone, or a
    :class:`GuideList`.

    Pass either ``sites`` (from :func:`bayesnas.sites.discover_sites`) or the model and an
    example input to discover them.
    """
    from bayesnas.sites import discover_sites

    if sites is None:
        if model is None:
            raise ValueError("auto_guide needs a model (with an example input) or `sites`.")
        sites = discover_sites(model, *args, **kwargs)
    if not sites:
        raise ValueError("The model declares no arch sites (bayesnas.sites.bernoulli/categorical).")
    options = options or {}
    parts = []
    for family in families():  # the registry's order: the order of the parts and their parameters
        specs = [s for s in sites.values() if s.family == family.name]
        if specs:
            parts.append(family.guide(specs, options.get(family.name)))
    return parts[0] if len(parts) == 1 else GuideList(*parts)
