"""At observed sites: label smoothing of a Categorical likelihood and a per-datum scale.

vinnas2020 §V-A trains with label smoothing (Müller et al. 2019); its search objective (eq. 8)
weighs the data term per datum. One messenger does both to the likelihood site, so that the
model's own ``classification_likelihood`` stays the plain Categorical.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import Message
from torch.distributions import Categorical, Independent

__all__ = ["LikelihoodMessenger", "smoothed_categorical_log_prob"]


def smoothed_categorical_log_prob(
    logits: torch.Tensor, value: torch.Tensor, smoothing: float
) -> torch.Tensor:
    """``Σ_k q_k log p_k`` with ``q = (1 − ε)·onehot(y) + ε/C`` (label smoothing, Müller et al.
    2019; vinnas2020 §V-A). Minus it is ``F.cross_entropy(..., label_smoothing=ε)``."""
    log_p = torch.log_softmax(logits, -1)
    idx, log_p = torch.broadcast_tensors(value.long().unsqueeze(-1), log_p)
    picked = log_p.gather(-1, idx[..., :1]).squeeze(-1)
    return (1.0 - smoothing) * picked + smoothing * log_p.mean(-1)


class _SmoothedCategorical(dist.Categorical):
    """A Categorical whose ``log_prob`` is the label-smoothed log-likelihood (sampling unchanged)."""

    def __init__(self, logits: torch.Tensor, smoothing: float, validate_args: bool | None = None) -> None:
        super().__init__(logits=logits, validate_args=validate_args)
        self.smoothing = smoothing

    def expand(self, batch_shape, _instance=None):
        # torch's Categorical.expand refuses subclasses with their own __init__.
        logits = self.logits.expand(*torch.Size(batch_shape), self.logits.shape[-1])
        return _SmoothedCategorical(logits, self.smoothing, validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return smoothed_categorical_log_prob(self.logits, value, self.smoothing)


def _smoothed(fn: torch.distributions.Distribution, smoothing: float) -> torch.distributions.Distribution:
    # Through Independent wrappers only (``classification_likelihood`` uses ``.to_event(1)``);
    # another likelihood is returned unchanged.
    if isinstance(fn, Independent):
        inner = _smoothed(fn.base_dist, smoothing)
        return fn if inner is fn.base_dist else dist.Independent(inner, fn.reinterpreted_batch_ndims)
    if isinstance(fn, Categorical):
        return _SmoothedCategorical(fn.logits, smoothing)
    return fn


class LikelihoodMessenger(Messenger):
    """At observed sites: label smoothing of a Categorical likelihood (ε > 0), and with
    ``per_datum`` the scale 1/n, n = the number of data of the site (its value's elements per
    batch element of ``fn``: N for ``classification_likelihood``'s (S, N) labels).

    ``Message`` fields used: ``is_observed``, ``fn`` (replaced), ``value``, ``scale`` (divided).
    """

    def __init__(self, smoothing: float, per_datum: bool) -> None:
        super().__init__()
        self.smoothing = smoothing
        self.per_datum = per_datum

    def _pyro_sample(self, msg: Message) -> None:
        if not msg["is_observed"]:
            return
        if self.smoothing > 0:
            msg["fn"] = _smoothed(msg["fn"], self.smoothing)
        if self.per_datum:
            n = msg["value"].numel() // max(1, msg["fn"].batch_shape.numel())
            msg["scale"] = msg["scale"] / max(1, n)
