"""Ordered integers (a width, a depth, an input resolution) under a Gaussian search
distribution N(μ, σ²) in grid coordinates, rounded down (nes2019 §3.1.2, eq. 6–9)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch

from bayesnas.families.base import (
    Family,
    FamilyOptions,
    SiteSpec,
    base_distribution,
    check_shape,
    guide_field,
    site_infer,
)
from bayesnas.families.bernoulli import check_value_shape
from bayesnas.families.normal_strength import draw_normal
from bayesnas.integer_grid import IntegerGrid

__all__ = ["GaussianIntegerFamily", "GaussianOptions", "integer"]


def integer(
    name: str,
    low: int,
    high: int,
    *,
    step: int = 1,
    base: int | None = None,
    shape: Sequence[int] | int = (),
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Declare ordered integer hyper-parameters (a width, a depth, an input resolution) with
    values ``low, low + step, ..., high`` (nes2019 §3.1.2, table 4).

    The site is a real number in the site's units; the model uses the grid value it rounds
    down to (:class:`~bayesnas.integer_grid.IntegerGrid`), as nes2019 eq. (6) floors ``H + n``.
    So a Gaussian guide (:class:`bayesnas.guides.GaussianGuide`) samples it directly and its
    NES gradient sees the real draw, while the network only ever sees values on the grid. The
    prior, used only when the model runs without a guide, is uniform over the values. ``base``
    is the base architecture's value, where the search starts. Returns the values, a long
    tensor of shape ``(S, *shape)``.
    """
    grid = IntegerGrid(low, high, step, base)
    shape = check_shape(shape)
    # Uniform on [low, high + step): every value's cell [v, v + step) equally likely.
    prior = dist.Uniform(torch.full(shape, float(low), device=device),
                         torch.full(shape, float(high + step), device=device))
    infer = site_infer(GaussianIntegerFamily.name, choices=None, integer=grid.to_dict())
    x = pyro.sample(name, prior.to_event(len(shape)), infer=infer)
    return grid.value(grid.index(grid.coordinate(x)))


@dataclass(frozen=True, kw_only=True)
class GaussianOptions(FamilyOptions):
    """The Gaussian guide's ``sigma`` and ``adapt_sigma`` (:class:`bayesnas.guides.GaussianGuide`)
    and the options of :class:`bayesnas.optim.GaussianNaturalGradient`: ``lr`` is nes2019's α,
    ``sigma_lr`` σ²'s step and [``min_sigma``, ``max_sigma``] its range with ``adapt_sigma``."""

    sigma: float | None = guide_field(None)
    adapt_sigma: bool | None = guide_field(None)
    lr: float | None = None
    sigma_lr: float | None = None
    min_sigma: float | None = None
    max_sigma: float | None = None


class GaussianIntegerFamily(Family):
    name: ClassVar[str] = "gaussian-integer"
    guide_class = "bayesnas.guides.gaussian:GaussianGuide"
    marginal_class = "bayesnas.analysis.marginals:GaussianIntegerMarginal"
    options = GaussianOptions
    draws = {torch.distributions.Normal: draw_normal}

    def spec(self, name: str, fn: torch.distributions.Distribution, infer: Mapping[str, Any]) -> SiteSpec:
        if not isinstance(base_distribution(fn), torch.distributions.Uniform):
            raise TypeError(f"Integer arch site {name!r} must be declared with bayesnas.sites.integer, "
                            f"but its distribution is {type(base_distribution(fn)).__name__}.")
        return SiteSpec(name, self.name, tuple(fn.event_shape), grid=IntegerGrid(**infer["integer"]))

    def value(self, spec: SiteSpec, given: Any, device: torch.device | str | None) -> torch.Tensor:
        value = torch.as_tensor(given, dtype=torch.get_default_dtype(), device=device)
        check_value_shape(spec, value)
        if not spec.grid.contains(value):
            g = spec.grid
            raise ValueError(f"Integer site {spec.name!r} takes the values {g.low}, {g.low + g.step}, ..., "
                             f"{g.high}, but got {given}.")
        return value
