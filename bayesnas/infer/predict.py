"""Deterministic and stochastic prediction (shirakawa2018, "two options")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from pyro import poutine

from bayesnas.handlers import seeded_arch
from bayesnas.sites import arch_plate


@torch.no_grad()
def predict_deterministic(
    model: Callable[..., Any], guide: Any, x: torch.Tensor, **kwargs: Any
) -> torch.Tensor:
    """Outputs of the most likely architecture (m = 1 iff θ ≥ 0.5; argmax θ), shape ``(N, C)``."""
    data = {name: value.unsqueeze(0) for name, value in guide.mode().items()}
    with arch_plate(1):
        out = poutine.condition(model, data=data)(x, **kwargs)
    return out[0]


@torch.no_grad()
def predict_stochastic(
    model: Callable[..., Any],
    guide: Any,
    x: torch.Tensor,
    *,
    num_samples: int = 100,
    generator: torch.Generator,
    samples_per_pass: int = 25,
    **kwargs: Any,
) -> torch.Tensor:
    """Class probabilities averaged over ``num_samples`` networks drawn from p_θ, ``(N, C)``.

    shirakawa2018 uses 100 samples. Samples are evaluated ``samples_per_pass`` at a time in one
    batched pass each, to bound memory.
    """
    if num_samples < 1:
        raise ValueError(f"`num_samples` must be >= 1, but got num_samples={num_samples}.")
    total = None
    done = 0
    while done < num_samples:
        s = min(samples_per_pass, num_samples - done)
        with seeded_arch(generator=generator), arch_plate(s):
            trace = poutine.trace(guide).get_trace(x, **kwargs)
            out = poutine.replay(model, trace=trace)(x, **kwargs)
        probs = out.softmax(-1).sum(0)
        total = probs if total is None else total + probs
        done += s
    return total / num_samples


def error_rate(scores: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of wrong argmax predictions."""
    return float((scores.argmax(-1) != y).float().mean())
