"""Groups of Bernoulli units that share one rate (shirakawa2018 §III, "Adaptation of
Stochastic Network"): the U dropout-mask bits of a layer are i.i.d. Bernoulli(θ_l)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch

from bayesnas.families.base import (
    Family,
    NaturalGradientOptions,
    SiteSpec,
    base_distribution,
    check_shape,
    labels_and_edges,
    site_infer,
)
from bayesnas.families.bernoulli import check_bit_labels, check_bits, draw_bernoulli

__all__ = ["SharedBernoulliFamily", "shared_bernoulli"]


def shared_bernoulli(
    name: str,
    shape: Sequence[int] | int,
    group_size: int,
    *,
    probs: float = 0.5,
    choices: Sequence[str] | None = None,
    edges: Sequence[tuple[str, str]] | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Declare groups of ``group_size`` Bernoulli units that share one rate per group.

    shirakawa2018 §III "Adaptation of Stochastic Network": the dropout masks m_li, i = 1..U,
    of layer l are i.i.d. Bernoulli(θ_l), one rate θ_l per layer. Returns a float tensor of
    0/1 of shape ``(S, *shape, group_size)``: ``shape`` is the shape of the groups (and of
    θ), the last dimension runs over the U units of a group. ``probs`` is the prior, used only
    when the model runs without a guide. ``choices`` names the values 0 and 1 (e.g.
    ``("drop", "keep")``); ``edges``, if given, places each *unit* on a graph (one pair per
    unit, in flattened order), like the variables of every other site.

    :func:`bayesnas.sites.discover_sites` reports it as ``SiteSpec(family="shared-bernoulli",
    shape=(*shape, group_size), group_size=group_size)``.
    """
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"`group_size` must be an integer >= 1, but got group_size={group_size!r}.")
    if not 0.0 <= probs <= 1.0:
        raise ValueError(f"`probs` must lie in [0, 1], but got probs={probs}.")
    labels = check_bit_labels(choices)
    groups = check_shape(shape)
    value_shape = (*groups, group_size)
    rate = torch.full((*groups, 1), float(probs), device=device)
    prior = dist.Bernoulli(rate.expand(value_shape))
    infer = site_infer(SharedBernoulliFamily.name, **labels_and_edges(name, value_shape, labels, edges),
                       group_size=group_size)
    return pyro.sample(name, prior.to_event(len(value_shape)), infer=infer)


class SharedBernoulliFamily(Family):
    name: ClassVar[str] = "shared-bernoulli"
    guide_class = "bayesnas.guides.shared_bernoulli:SharedBernoulliGuide"
    marginal_class = "bayesnas.analysis.marginals:SharedBernoulliMarginal"
    options = NaturalGradientOptions
    draws = {torch.distributions.Bernoulli: draw_bernoulli}
    binary = True

    def spec(self, name: str, fn: torch.distributions.Distribution, infer: Mapping[str, Any]) -> SiteSpec:
        group_size = int(infer["group_size"])
        shape = tuple(fn.event_shape)
        base = base_distribution(fn)
        if not isinstance(base, torch.distributions.Bernoulli) or not shape or shape[-1] != group_size:
            raise TypeError(
                f"Shared-rate arch site {name!r} must be a Bernoulli whose last event dimension "
                f"is its group size {group_size}, but got {type(base).__name__} with event "
                f"shape {shape}; declare it with bayesnas.sites.shared_bernoulli."
            )
        return SiteSpec(name, self.name, shape, None, infer.get("choices"), infer.get("edges"), group_size)

    def theta_shape(self, spec: SiteSpec) -> tuple[int, ...]:
        return spec.shape[:-1]  # one rate per group

    def value(self, spec: SiteSpec, given: Any, device: torch.device | str | None) -> torch.Tensor:
        return check_bits(spec, given, device, "Shared-rate Bernoulli")
