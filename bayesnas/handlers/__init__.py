"""Pyro effect handlers (poutine messengers) of bayesnas, one effect per module."""

from bayesnas.handlers.local_reparameterization import (
    LocalReparameterizationMessenger,
    local_reparameterization,
    lrt_moments,
    nonzero_after_pruning,
    prune_mask,
)
from bayesnas.handlers.seeded_arch import SeededArchMessenger, seeded_arch

__all__ = [
    "LocalReparameterizationMessenger",
    "SeededArchMessenger",
    "local_reparameterization",
    "lrt_moments",
    "nonzero_after_pruning",
    "prune_mask",
    "seeded_arch",
]
