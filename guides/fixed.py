"""A guide that always proposes one fixed architecture (baselines, re-training)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyro
import pyro.distributions as dist
import torch

from bayesnas.guides.state import NamedSiteState
from bayesnas.sites import SiteSpec, architecture_to_tensors


class FixedGuide(NamedSiteState):
    """Point mass on ``arch``: every site is sampled from a ``Delta`` at its fixed value.

    It has no θ and so no optimizer; with it the search loop is plain training of the fixed
    network (shirakawa2018's "fixed network" baselines). ``state_dict()`` keys each value by
    site, ``sites.<site>.value``, like the other guides; a state saved with the older keys
    ``value_<site with "." as "__">`` also loads, those keys naming their site too.
    """

    family = "fixed"
    _positional_keys = False

    def __init__(self, arch: Mapping[str, Any], sites: Mapping[str, SiteSpec]) -> None:
        super().__init__()
        self.specs = dict(sites)
        for name, value in architecture_to_tensors(arch, sites).items():
            self.register_buffer("value_" + name.replace(".", "__"), value[0])

    def _site_fields(self) -> dict[str, tuple[str, str]]:
        return {"value_" + name.replace(".", "__"): (name, "value") for name in self.specs}

    def _value(self, name: str) -> torch.Tensor:
        return getattr(self, "value_" + name.replace(".", "__"))

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        out = {}
        for name in self.specs:
            v = self._value(name)
            out[name] = pyro.sample(name, dist.Delta(v, event_dim=v.dim()), infer={"arch": True})
        return out

    def mode(self) -> dict[str, torch.Tensor]:
        return {name: self._value(name) for name in self.specs}

    def entropy(self) -> torch.Tensor:
        return torch.zeros(())

    def expected_cost(self, costs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        # No θ to trade against accuracy: the penalty has nothing to act on.
        return torch.zeros(())

    def summary(self) -> dict[str, Any]:
        return {n: {"family": self.family, "value": self._value(n).tolist()} for n in self.specs}

    def make_optimizers(self, **kwargs: Any) -> list[torch.optim.Optimizer]:
        return []
