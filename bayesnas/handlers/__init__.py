"""Pyro effect handlers (poutine messengers) of bayesnas, one effect per module."""

from bayesnas.handlers.improper_placeholder import ImproperPlaceholderMessenger, improper_placeholder
from bayesnas.handlers.likelihood import LikelihoodMessenger, smoothed_categorical_log_prob
from bayesnas.handlers.local_reparameterization import (
    LocalReparameterizationMessenger,
    local_reparameterization,
    lrt_moments,
    nonzero_after_pruning,
    prune_mask,
    split_draw,
)
from bayesnas.handlers.scale_sites import ScaleSitesMessenger, scale_sites
from bayesnas.handlers.seeded_arch import SeededArchMessenger, seeded_arch

__all__ = [
    "ImproperPlaceholderMessenger",
    "LikelihoodMessenger",
    "improper_placeholder",
    "smoothed_categorical_log_prob",
    "LocalReparameterizationMessenger",
    "ScaleSitesMessenger",
    "SeededArchMessenger",
    "local_reparameterization",
    "lrt_moments",
    "nonzero_after_pruning",
    "prune_mask",
    "scale_sites",
    "seeded_arch",
    "split_draw",
]
