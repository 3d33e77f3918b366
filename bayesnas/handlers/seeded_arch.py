"""Draw architecture samples from a dedicated, seeded generator.

Pyro samples from torch's global RNG, which weight initialisation, dropout and data loading
also consume. Architecture samples drawn from their own ``torch.Generator`` stay identical
whatever else the run does, so a resumed run, or every rank of a multi-process search that
shares the generator's seed, sees the same sequence of architectures and hence the same θ.
"""

from __future__ import annotations

import torch
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import Message

from bayesnas.families import draw_seeded


class SeededArchMessenger(Messenger):
    """Samples every unobserved arch site (``infer["arch"]``) with ``generator``, by the draw
    its distribution's family registered (:func:`bayesnas.families.draw_seeded`; a distribution
    no family draws raises instead of falling back on the global RNG).

    ``Message`` fields used: ``infer["arch"]`` selects the site; ``fn`` (already broadcast by
    any enclosing plate) gives the distribution and shape; ``value`` is set here, so Pyro's
    default sampler leaves it as is. Observed or already-valued sites are left alone.
    """

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.generator = generator

    def _pyro_sample(self, msg: Message) -> None:
        if msg["is_observed"] or msg["value"] is not None or not msg["infer"].get("arch"):
            return
        msg["value"] = draw_seeded(msg["name"], msg["fn"], self.generator)


def seeded_arch(fn=None, generator: torch.Generator | None = None):
    """Handler: arch sites inside draw from ``generator`` (a CPU generator is device-agnostic)."""
    if generator is None:
        raise ValueError("seeded_arch needs a torch.Generator, but got generator=None.")
    msngr = SeededArchMessenger(generator)
    return msngr(fn) if fn is not None else msngr
