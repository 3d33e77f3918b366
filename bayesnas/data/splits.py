"""Deterministic, seeded, stratified splits."""

from __future__ import annotations

import numpy as np


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, ...], seed: int
) -> list[np.ndarray]:
    """Indices of len(fractions)+1 parts: each class is shuffled with ``seed`` and cut by the
    given fractions; the last part takes the rest. Same seed → same split on any machine."""
    rng = np.random.RandomState(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        start = 0
        for i, f in enumerate(fractions):
            n = int(round(f * len(idx)))
            parts[i].extend(idx[start : start + n].tolist())
            start += n
        parts[-1].extend(idx[start:].tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), but got {name}={value}.")
