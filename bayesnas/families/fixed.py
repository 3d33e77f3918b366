"""A point mass: the guide of a fixed architecture (baselines, re-training). It declares no
model sites; its guide samples every site from a ``Delta`` at the fixed value."""

from __future__ import annotations

from typing import ClassVar

import pyro.distributions as dist
import torch

from bayesnas.families.base import Family, base_distribution

__all__ = ["FixedFamily", "draw_delta"]


def draw_delta(fn: torch.distributions.Distribution, shape: torch.Size,
               generator: torch.Generator) -> torch.Tensor:
    """The point mass's value (no randomness: ``generator`` is not advanced)."""
    return base_distribution(fn).v.expand(shape)


class FixedFamily(Family):
    name: ClassVar[str] = "fixed"
    marginal_class = "bayesnas.analysis.marginals:FixedMarginal"
    draws = {dist.Delta: draw_delta}
