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


def _draw(
    fn: torch.distributions.Distribution, generator: torch.Generator
) -> torch.Tensor | None:
    base = fn
    while hasattr(base, "base_dist"):
        base = base.base_dist
    shape = fn.batch_shape + fn.event_shape
    if isinstance(base, torch.distributions.Bernoulli):
        probs = base.probs.detach().expand(shape)
        u = torch.rand(shape, generator=generator, dtype=probs.dtype, device=generator.device)
        return (u.to(probs.device) < probs).to(probs.dtype)
    if isinstance(base, torch.distributions.Categorical):
        probs = base.probs.detach().expand(*shape, base.probs.shape[-1])
        flat = probs.reshape(-1, probs.shape[-1]).to(generator.device)
        idx = torch.multinomial(flat, 1, generator=generator).squeeze(-1)
        return idx.reshape(shape).to(probs.device)
    if isinstance(base, torch.distributions.Normal):
        loc, scale = (t.expand(shape) for t in (base.loc, base.scale))
        eps = torch.randn(shape, generator=generator, dtype=loc.dtype, device=generator.device)
        value = loc + scale * eps.to(loc.device)
        # Pyro's own semantics: a draw of a reparameterizable distribution keeps its graph (an
        # rsample, as SVI needs), one marked ``has_rsample_(False)`` is a constant (a score-
        # function estimator's sample, as NES needs: nes2019 eq. 7).
        return value if fn.has_rsample else value.detach()
    return None  # another family (e.g. a Delta of a fixed guide): Pyro's own sampler


class SeededArchMessenger(Messenger):
    """Samples every unobserved arch site (``infer["arch"]``) with ``generator``.

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
        msg["value"] = _draw(msg["fn"], self.generator)


def seeded_arch(fn=None, generator: torch.Generator | None = None):
    """Handler: arch sites inside draw from ``generator`` (a CPU generator is device-agnostic)."""
    if generator is None:
        raise ValueError("seeded_arch needs a torch.Generator, but got generator=None.")
    msngr = SeededArchMessenger(generator)
    return msngr(fn) if fn is not None else msngr
