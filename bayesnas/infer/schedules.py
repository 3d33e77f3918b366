"""Schedules: learning rates and loss weights as pure functions of the epoch or step.

A schedule is a pure function of its step, so a resumed run cannot desynchronise it and there
is no scheduler state to checkpoint.

* :func:`linear_ramp` — vinnas2020's γ schedules (§IV-C; alg. 1, lines 2 and 19).
* :func:`cosine_lr` — cosine annealing of the weights' learning rate (vinnas2020 §V-A; the NES
  re-training).
* :func:`linear_decay` — nes2019 app. B's σ and α, decaying linearly to 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["Schedule", "check_epoch", "check_nonnegative", "check_positive", "cosine_lr", "linear_decay",
           "linear_ramp"]

Schedule = Callable[[int], float]


def check_epoch(epoch: int, what: str = "epoch") -> int:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"`{what}` must be an integer >= 0, but got {what}={epoch!r}.")
    return epoch


def check_nonnegative(value: float, what: str) -> float:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"`{what}` must be a finite number >= 0, but got {what}={value!r}.")
    return float(value)


def check_positive(value: float, what: str) -> float:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"`{what}` must be a positive finite number, but got {what}={value!r}.")
    return float(value)


def linear_ramp(epoch: int, *, start: int, end: int, final: float) -> float:
    """γ at ``epoch``: 0 before ``start``, ``final·(epoch − start)/(end − start)`` from ``start``
    to ``end``, ``final`` after (vinnas2020 §IV-C and alg. 1, lines 2 and 19: the γs start at
    zero and grow linearly). ``start == end`` is a step to ``final`` at ``start``.

    Bind the schedule with ``functools.partial(linear_ramp, start=..., end=..., final=...)``.
    """
    check_epoch(epoch)
    check_epoch(start, "start")
    check_epoch(end, "end")
    if start > end:
        raise ValueError(f"`start <= end` must hold, but got (start={start}, end={end}).")
    final = check_nonnegative(final, "final")
    if epoch < start:
        return 0.0
    if epoch >= end:
        return final
    return final * (epoch - start) / (end - start)


def cosine_lr(epoch: int, *, base: float, epochs: int, minimum: float = 0.0) -> float:
    """Cosine annealing without restarts (Loshchilov & Hutter; vinnas2020 §V-A uses it for the
    weights): ``minimum + (base − minimum)·(1 + cos(π·epoch/epochs))/2``, the closed form of
    ``torch.optim.lr_scheduler.CosineAnnealingLR``. A pure function of the epoch, so a resumed
    search cannot desynchronise it and there is no scheduler state to checkpoint."""
    check_epoch(epoch)
    check_positive(base, "base")
    check_nonnegative(minimum, "minimum")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`epochs` must be an integer >= 1, but got epochs={epochs!r}.")
    if epoch > epochs:
        raise ValueError(f"`epoch <= epochs` must hold, but got (epoch={epoch}, epochs={epochs}).")
    return minimum + (base - minimum) * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def linear_decay(initial: float, step: int, total: int) -> float:
    """``initial · (1 − step/total)``: nes2019 app. B's σ and α, "linearly decay to 0"."""
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ValueError(f"`total` must be an integer >= 1, but got total={total!r}.")
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < total:
        raise ValueError(f"`0 <= step < total` must hold, but got (step={step!r}, total={total}).")
    return initial * (1.0 - step / total)
