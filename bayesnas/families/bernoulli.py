"""Bernoulli bits: a layer on or off, a unit on or off, ReLU or tanh, a connection
(shirakawa2018, saito2018). θ = P(bit = 1), searched by the Bernoulli natural gradient."""

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

__all__ = ["BernoulliFamily", "bernoulli", "draw_bernoulli"]


def bernoulli(
    name: str,
    shape: Sequence[int] | int = (),
    *,
    probs: float = 0.5,
    choices: Sequence[str] | None = None,
    edges: Sequence[tuple[str, str]] | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Declare Bernoulli bits (layer on/off, unit on/off, ReLU vs tanh, a connection).

    Returns a float tensor of 0/1 of shape ``(S, *shape)``. ``probs`` is the prior, used only
    when the model runs without a guide. ``choices`` names the values 0 and 1 (e.g.
    ``("skip", "layer")``) and ``edges`` places each bit on a graph, for the analysis.
    """
    if not 0.0 <= probs <= 1.0:
        raise ValueError(f"`probs` must lie in [0, 1], but got probs={probs}.")
    labels = check_bit_labels(choices)
    shape = check_shape(shape)
    prior = dist.Bernoulli(torch.full(shape, float(probs), device=device))
    infer = site_infer(BernoulliFamily.name, **labels_and_edges(name, shape, labels, edges))
    return pyro.sample(name, prior.to_event(len(shape)), infer=infer)


def check_bit_labels(choices: Sequence[str] | None) -> tuple[str, ...] | None:
    labels = None if choices is None else tuple(str(c) for c in choices)
    if labels is not None and len(labels) != 2:
        raise ValueError(f"A Bernoulli site names its 2 values 0 and 1, but got choices={list(labels)}.")
    return labels


def draw_bernoulli(fn: torch.distributions.Distribution, shape: torch.Size,
                   generator: torch.Generator) -> torch.Tensor:
    """Bits with P(1) = the distribution's probs, from uniforms of ``generator``."""
    probs = base_distribution(fn).probs.detach().expand(shape)
    u = torch.rand(shape, generator=generator, dtype=probs.dtype, device=generator.device)
    return (u.to(probs.device) < probs).to(probs.dtype)


def check_bits(spec: SiteSpec, given: Any, device: torch.device | str | None, kind: str) -> torch.Tensor:
    value = torch.as_tensor(given, dtype=torch.get_default_dtype(), device=device)
    check_value_shape(spec, value)
    if not bool(((value == 0) | (value == 1)).all()):
        raise ValueError(f"{kind} site {spec.name!r} takes 0/1 values, but got {given}.")
    return value


def check_value_shape(spec: SiteSpec, value: torch.Tensor) -> None:
    if tuple(value.shape) != spec.shape:
        raise ValueError(
            f"Arch site {spec.name!r} has shape {spec.shape}, but the architecture gives a value "
            f"of shape {tuple(value.shape)}."
        )


class BernoulliFamily(Family):
    name: ClassVar[str] = "bernoulli"
    guide_class = "bayesnas.guides.bernoulli:BernoulliGuide"
    marginal_class = "bayesnas.analysis.marginals:BernoulliMarginal"
    options = NaturalGradientOptions
    draws = {torch.distributions.Bernoulli: draw_bernoulli}
    legacy_distributions = (torch.distributions.Bernoulli,)
    binary = True

    def spec(self, name: str, fn: torch.distributions.Distribution, infer: Mapping[str, Any]) -> SiteSpec:
        base = base_distribution(fn)
        if not isinstance(base, torch.distributions.Bernoulli):
            raise TypeError(f"Bernoulli arch site {name!r} must be a Bernoulli, but got "
                            f"{type(base).__name__}; declare it with bayesnas.sites.bernoulli.")
        shape = tuple(fn.event_shape)
        return SiteSpec(name, self.name, shape, None, infer.get("choices"), infer.get("edges"))

    def value(self, spec: SiteSpec, given: Any, device: torch.device | str | None) -> torch.Tensor:
        return check_bits(spec, given, device, "Bernoulli")
