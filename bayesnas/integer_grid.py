"""The ordered values of an integer architecture hyper-parameter (nes2019 table 4).

Plain Python and torch (no Pyro): the weight-sharing backbones of :mod:`bayesnas.nn` describe
their hyper-parameters with it, and :func:`bayesnas.sites.integer` declares them as arch sites.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

import torch


def _round(x: float) -> int:
    """Round half up (Python's ``round`` rounds half to even: 2.5 → 2)."""
    return int(math.floor(x + 0.5))


@dataclass(frozen=True)
class IntegerGrid:
    """The ordered values ``low, low + step, ..., high`` of an integer arch site (nes2019 §3.1.2:
    widths, depths and resolutions are "ordered integers"; table 4 gives each a range and a
    step).

    The search works in *grid coordinates*: a real ``u`` stands for the value of index
    ``clamp(⌊u⌋, 0, size − 1)``, so ⌊·⌋ rounds down as nes2019 eq. (6) does and the clamp keeps
    every value in range. A site's sampled value is the real ``low + step · u`` (in the site's
    own units), which an integer value on the grid represents exactly: an exported
    architecture replays as it is.

    Attributes:
        low, high: the smallest and largest values (``high − low`` a multiple of ``step``).
        step: the spacing of the values.
        base: the value of the base architecture (the search's starting point, nes2019 alg. 1
            line 1); default ``low``.
    """

    low: int
    high: int
    step: int = 1
    base: int | None = None

    def __post_init__(self) -> None:
        for name in ("low", "high", "step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"`{name}` must be an integer, but got {name}={value!r}.")
        if self.step < 1:
            raise ValueError(f"`step` must be an integer >= 1, but got step={self.step!r}.")
        if not (self.low <= self.high and (self.high - self.low) % self.step == 0):
            raise ValueError(
                "`low <= high` with `high - low` a multiple of `step` must hold, but got "
                f"(low={self.low}, high={self.high}, step={self.step}).")
        if self.base is not None and not self.contains(self.base):
            raise ValueError(f"`base` must be one of the values {self.low}, {self.low + self.step}, ..., "
                             f"{self.high}, but got base={self.base!r}.")

    @property
    def size(self) -> int:
        """The number of values."""
        return (self.high - self.low) // self.step + 1

    def contains(self, value: Any) -> bool:
        """Whether every entry of ``value`` is one of the grid's values."""
        v = torch.as_tensor(value, dtype=torch.float64)
        on_grid = torch.remainder(v - self.low, self.step) == 0
        return bool(((v >= self.low) & (v <= self.high) & on_grid).all())

    def index(self, coordinate: torch.Tensor) -> torch.Tensor:
        """The value's index ``clamp(⌊u⌋, 0, size − 1)`` of grid coordinates ``u`` (long)."""
        return coordinate.detach().floor().clamp(0, self.size - 1).long()

    def coordinate(self, value: torch.Tensor) -> torch.Tensor:
        """The grid coordinate ``(value − low) / step`` of values in the site's units."""
        return (value - self.low) / self.step

    def value(self, index: torch.Tensor) -> torch.Tensor:
        """The values of indices (long)."""
        return self.low + self.step * index.long()

    def base_index(self) -> int:
        return 0 if self.base is None else (self.base - self.low) // self.step

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "step": self.step, "base": self.base}

    def __len__(self) -> int:
        return self.size

    def values(self) -> range:
        """The values, in order."""
        return range(self.low, self.high + 1, self.step)

    def __contains__(self, value: object) -> bool:
        return (isinstance(value, int) and not isinstance(value, bool)
                and self.low <= value <= self.high and (value - self.low) % self.step == 0)

    @classmethod
    def scaled(cls, base: int, *, min_scale: float, max_scale: float, step_scale: float) -> IntegerGrid:
        """nes2019 table 4's range of a channel count: ``min_scale·base → max_scale·base`` in steps
        of ``step_scale·base``, rounded half up, on a grid anchored at ``base`` (so the search
        can start at the base architecture)."""
        step = max(1, _round(step_scale * base))
        low = max(1, _round(min_scale * base))
        high = max(base, _round(max_scale * base))
        return cls(low=base - (base - low) // step * step, high=base + (high - base) // step * step,
                   step=step, base=base)

    def snap(self, value: float) -> int:
        """The grid value nearest to ``value`` (half up), clipped to ``[low, high]``."""
        k = _round((float(value) - self.low) / self.step)
        return self.low + min(max(k, 0), self.size - 1) * self.step

    def check(self, name: str, value: object) -> int:
        """``value`` as an ``int`` if it is on the grid; a ValueError stating the rule otherwise."""
        try:
            if isinstance(value, bool):
                raise TypeError
            value = operator.index(value)  # ints, NumPy integers, integer 0-d tensors; no floats
        except TypeError:
            raise ValueError(f"`{name}` must be an integer, but got {name}={value!r} "
                             "(use `snap` to round a continuous value onto the grid).") from None
        if not self.low <= value <= self.high:
            raise ValueError(f"`{name}` must be in [{self.low}, {self.high}], but got {name}={value}.")
        if (value - self.low) % self.step:
            grid = f"{self.low}, {self.low + self.step}, ..., {self.high} (step {self.step})"
            raise ValueError(f"`{name}` must be on the grid {grid}, but got {name}={value}.")
        return value
