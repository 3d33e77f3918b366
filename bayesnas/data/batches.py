"""Seeded mini-batches on a device: the training loops' one way of reading a dataset.

An order is a function of a seed alone, so a run that resumes at an epoch boundary reads the
same batches as one that never stopped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Subset

from bayesnas.data import as_tensors, make_loader


def batches(
    dataset: Any, *, batch_size: int, seed: int, device: torch.device, shuffle: bool
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches ``(x, y)`` on ``device``; whole-tensor indexing for in-memory datasets.
    Shuffled batches drop the ragged last batch (training); unshuffled ones keep it."""
    tensors = as_tensors(dataset)
    if tensors is not None:
        x, y = (t.to(device) for t in tensors)
        n = x.shape[0]
        order = (
            torch.randperm(n, generator=torch.Generator().manual_seed(seed))
            if shuffle
            else torch.arange(n)
        )
        stop = n - n % batch_size if shuffle else n
        for i in range(0, stop, batch_size):
            idx = order[i : i + batch_size].to(device)
            yield x[idx], y[idx]
        return
    loader = make_loader(dataset, batch_size=batch_size, shuffle=shuffle, seed=seed, drop_last=shuffle)
    for x, y in loader:
        yield x.to(device), y.to(device)


def cycle_batches(
    dataset: Any, *, batch_size: int, seed: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled mini-batches of ``dataset`` without end, a fresh order each pass (D_θ)."""
    for n in itertools.count():
        yield from batches(dataset, batch_size=batch_size, seed=seed + 7919 * n, device=device, shuffle=True)


def split_halves(dataset: Any, *, seed: int) -> tuple[Subset, Subset]:
    """D_W and D_θ: the training data cut into two halves at random (pdas2019 §2), seeded."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed + 424_242)).tolist()
    half = len(order) // 2
    return Subset(dataset, order[:half]), Subset(dataset, order[half:])
