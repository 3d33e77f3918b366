"""Value unobserved arch sites that have an improper prior by ones, so a model can run unguided.

:func:`bayesnas.sites.discover_sites` runs the model without a guide to see its sites; a
log-uniform op-strength site (vinnas2020 eq. 4) cannot be sampled, and its value only matters
for the shapes of the forward pass.
"""

from __future__ import annotations

import torch
from pyro.distributions import Distribution
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import Message

from bayesnas.distributions import LogUniform

__all__ = ["ImproperPlaceholderMessenger", "improper_placeholder"]


class ImproperPlaceholderMessenger(Messenger):
    """Values unobserved arch sites with an improper prior (``LogUniform``) by ones.

    ``discover_sites`` runs the model without a guide; a log-uniform site cannot be sampled,
    and its value only matters for the shapes of the forward pass, so α = 1 (every op at full
    strength) lets the model run through. ``Message`` fields used: ``fn`` (its base is checked
    and its ``shape()`` gives the value's shape), ``infer`` (``arch`` and ``device``),
    ``is_observed`` and ``value`` (left alone when already set); ``value`` is set here.
    """

    def _pyro_sample(self, msg: Message) -> None:
        if msg["is_observed"] or msg["value"] is not None or not msg["infer"].get("arch"):
            return
        if isinstance(_base(msg["fn"]), LogUniform):
            msg["value"] = torch.ones(msg["fn"].shape(), device=msg["infer"].get("device"))


def _base(fn: Distribution) -> Distribution:
    # Unwrap Independent / Expanded / MaskedDistribution down to the family.
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


def improper_placeholder() -> ImproperPlaceholderMessenger:
    """The handler: ``with improper_placeholder(): model(...)``."""
    return ImproperPlaceholderMessenger()
