"""Datasets: embedded real data (``mnist5k``, ``digits``, and ``digits-noise``: the digits with 16
planted noise features) and torchvision datasets.

Embedded splits (test 20 %, then validation 10 % of the rest by default) are stratified and
seeded; torchvision datasets keep their official test set and carve validation from training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from bayesnas.data.errors import DatasetUnavailableError
from bayesnas.data.splits import check_fraction

EMBEDDED = {"mnist5k": 10, "digits": 10, "digits-noise": 10}

__all__ = [
    "DataSplits",
    "DatasetInfo",
    "DatasetUnavailableError",
    "as_tensors",
    "available_datasets",
    "load_dataset",
    "make_loader",
]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    embedded: bool


@dataclass
class DataSplits:
    train: Dataset
    val: Dataset | None
    test: Dataset
    info: DatasetInfo


def available_datasets() -> list[str]:
    from bayesnas.data.vision import VISION

    return sorted([*EMBEDDED, *VISION])


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    augment: bool = True,
    flatten: bool = False,
) -> DataSplits:
    """Train / validation / test splits of a dataset, deterministic for a given ``seed``."""
    if name not in available_datasets():
        raise ValueError(
            f"Unknown dataset {name!r}. Known datasets: {', '.join(available_datasets())}."
        )
    check_fraction("val_fraction", val_fraction)
    check_fraction("test_fraction", test_fraction)
    if name in EMBEDDED:
        from bayesnas.data.embedded import load_embedded

        train, val, test, shape = load_embedded(
            name, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction,
            flatten=flatten,
        )
        return DataSplits(train, val, test, DatasetInfo(name, shape, EMBEDDED[name], True))
    from bayesnas.data.vision import load_vision

    train, val, test, shape, classes = load_vision(
        name, data_dir=data_dir, download=download, seed=seed, val_fraction=val_fraction,
        augment=augment, flatten=flatten,
    )
    return DataSplits(train, val, test, DatasetInfo(name, shape, classes, False))


def as_tensors(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(x, y) of an in-memory dataset without iterating item by item; ``None`` otherwise."""
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[0], dataset.tensors[1]
    if isinstance(dataset, Subset):  # of a TensorDataset, or of a Subset of one
        inner = as_tensors(dataset.dataset)
        if inner is not None:
            idx = torch.as_tensor(dataset.indices)
            return inner[0][idx], inner[1][idx]
    return None


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int | None = None,
    drop_last: bool = False,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader whose order is fixed by ``seed`` (a run repeats exactly)."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen,
                      drop_last=drop_last, num_workers=num_workers)
