"""Checks of a run configuration's fields, with errors that state the rule and the value
(the drivers' ``Config.validate`` methods share them)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


def check_dataset(name: str) -> None:
    from bayesnas.data import available_datasets

    if name not in available_datasets():
        raise ValueError(f"Unknown dataset {name!r}. Known datasets: {', '.join(available_datasets())}.")


def check_integers(config: Any, lows: Mapping[str, int], *, optional: bool = False) -> None:
    """Every field in ``lows`` is an integer ``>= low`` (or ``None`` with ``optional``)."""
    for name, low in lows.items():
        value = getattr(config, name)
        if optional and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            rule = f"None or an integer >= {low}" if optional else f"an integer >= {low}"
            raise ValueError(f"`{name}` must be {rule}, but got {name}={value!r}.")


def check_numbers(config: Any, *, positive: Iterable[str] = (), nonnegative: Iterable[str] = ()) -> None:
    """The fields in ``positive`` are finite numbers > 0, those in ``nonnegative`` finite and >= 0."""
    for names, strict in ((positive, True), (nonnegative, False)):
        for name in names:
            value = getattr(config, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < 0 or (strict and value == 0):
                rule = "a finite number > 0" if strict else "a finite number >= 0"
                raise ValueError(f"`{name}` must be {rule}, but got {name}={value!r}.")


def check_bools(config: Any, names: Iterable[str]) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, bool):
            raise ValueError(f"`{name}` must be True or False, but got {name}={value!r}.")
