"""Categorical choices: an op type, an input node, a kernel size, a channel count (pdas2019).
θ on the simplex, searched by the categorical natural gradient (with ASNG's adaptive step)."""

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
from bayesnas.families.bernoulli import check_value_shape

__all__ = ["CategoricalFamily", "categorical", "check_indices", "draw_categorical"]


def categorical(
    name: str,
    choices: int | Sequence[str],
    shape: Sequence[int] | int = (),
    *,
    edges: Sequence[tuple[str, str]] | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Declare categorical choices (op type, input node, kernel size, channel count).

    ``choices`` is K or the K labels. Returns a long tensor of indices of shape ``(S, *shape)``.
    ``edges`` places each choice on a graph (e.g. ``[("n0", "n2"), ("n1", "n2")]``), for the
    cell diagrams of the analysis.
    """
    labels = None if isinstance(choices, int) else tuple(str(c) for c in choices)
    k = choices if isinstance(choices, int) else len(labels)
    if k < 2:
        raise ValueError(f"A categorical site needs at least 2 choices, but got {k} for {name!r}.")
    shape = check_shape(shape)
    prior = dist.Categorical(torch.full((*shape, k), 1.0 / k, device=device))
    infer = site_infer(CategoricalFamily.name, **labels_and_edges(name, shape, labels, edges))
    return pyro.sample(name, prior.to_event(len(shape)), infer=infer)


def draw_categorical(fn: torch.distributions.Distribution, shape: torch.Size,
                     generator: torch.Generator) -> torch.Tensor:
    """Indices drawn with the distribution's probs by ``torch.multinomial`` on ``generator``."""
    base = base_distribution(fn)
    probs = base.probs.detach().expand(*shape, base.probs.shape[-1])
    flat = probs.reshape(-1, probs.shape[-1]).to(generator.device)
    idx = torch.multinomial(flat, 1, generator=generator).squeeze(-1)
    return idx.reshape(shape).to(probs.device)


def check_indices(spec: SiteSpec, given: Any, device: torch.device | str | None) -> torch.Tensor:
    """A categorical site's value: indices in ``[0, K)`` of shape ``spec.shape``."""
    value = torch.as_tensor(given, dtype=torch.long, device=device)
    check_value_shape(spec, value)
    if not bool(((value >= 0) & (value < spec.num_categories)).all()):
        raise ValueError(
            f"Categorical site {spec.name!r} takes values in [0, {spec.num_categories}), but got {given}."
        )
    return value


class CategoricalFamily(Family):
    name: ClassVar[str] = "categorical"
    guide_class = "bayesnas.guides.categorical:CategoricalGuide"
    marginal_class = "bayesnas.analysis.marginals:CategoricalMarginal"
    options = NaturalGradientOptions
    draws = {torch.distributions.Categorical: draw_categorical}
    legacy_distributions = (torch.distributions.Categorical,)

    def spec(self, name: str, fn: torch.distributions.Distribution, infer: Mapping[str, Any]) -> SiteSpec:
        base = base_distribution(fn)
        if not isinstance(base, torch.distributions.Categorical):
            raise TypeError(f"Categorical arch site {name!r} must be a Categorical, but got "
                            f"{type(base).__name__}; declare it with bayesnas.sites.categorical.")
        k = int(base.probs.shape[-1])
        return SiteSpec(name, self.name, tuple(fn.event_shape), k, infer.get("choices"), infer.get("edges"))

    def theta_shape(self, spec: SiteSpec) -> tuple[int, ...]:
        return (*spec.shape, int(spec.num_categories or 0))

    def value(self, spec: SiteSpec, given: Any, device: torch.device | str | None) -> torch.Tensor:
        return check_indices(spec, given, device)
