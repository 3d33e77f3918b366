"""Seeded streams of randomness: one generator per use, so that no use shifts another's draws
and a resumed run repeats exactly."""

from __future__ import annotations

import torch


def stream_seed(*parts: int) -> int:
    """A generator seed from integers (run seed, stream, epoch, ...)."""
    h = 0
    for p in parts:
        h = (h * 1_000_003 + int(p) + 1) % (2**61 - 1)
    return h


def stream(*parts: int) -> torch.Generator:
    """A CPU generator seeded by :func:`stream_seed` of ``parts``."""
    return torch.Generator().manual_seed(stream_seed(*parts))
