"""torchvision datasets, with clear errors when their files are missing offline."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from bayesnas.data.errors import DatasetUnavailableError
from bayesnas.data.splits import stratified_split

# name: (torchvision class, mean, std, input shape, classes, what torchvision looks for)
VISION = {
    "mnist": ("MNIST", (0.1307,), (0.3081,), (1, 28, 28), 10, "MNIST/raw/"),
    "fashion-mnist": ("FashionMNIST", (0.2860,), (0.3530,), (1, 28, 28), 10, "FashionMNIST/raw/"),
    "cifar10": ("CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), (3, 32, 32), 10,
                "cifar-10-batches-py/"),
    "cifar100": ("CIFAR100", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), (3, 32, 32),
                 100, "cifar-100-python/"),
    "svhn": ("SVHN", (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), (3, 32, 32), 10,
             "train_32x32.mat and test_32x32.mat"),
}


def default_data_dir() -> Path:
    """``$BAYESNAS_DATA`` or ``~/.cache/bayesnas/data``."""
    return Path(os.environ.get("BAYESNAS_DATA", Path.home() / ".cache" / "bayesnas" / "data"))


def _transforms(name: str, train: bool, augment: bool, flatten: bool):
    from torchvision import transforms as T

    cls, mean, std, *_ = VISION[name]
    steps = []
    if train and augment and name in ("cifar10", "cifar100", "svhn"):
        steps.append(T.RandomCrop(32, padding=4))
        if name != "svhn":  # digits are not mirror-symmetric
            steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    if flatten:
        steps.append(T.Lambda(lambda x: x.flatten()))
    return T.Compose(steps)


def _open(name: str, root: Path, train: bool, download: bool, transform) -> Dataset:
    import torchvision.datasets as D

    cls_name, *_, expected = VISION[name]
    cls = getattr(D, cls_name)
    kwargs = {"split": "train" if train else "test"} if name == "svhn" else {"train": train}
    try:
        return cls(str(root), download=download, transform=transform, **kwargs)
    except Exception as err:  # torchvision raises RuntimeError / URLError / OSError
        reason = f" ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        raise DatasetUnavailableError(
            f"Dataset {name!r} is not available under {root}{reason}. Provide it by passing "
            f"--download (download=True) on a machine with internet access, or by placing the "
            f"files torchvision expects ({expected}) under {root} (--data-dir / data_dir / "
            "$BAYESNAS_DATA), or use the embedded datasets 'mnist5k' or 'digits'."
        ) from None


def load_vision(
    name: str, *, data_dir, download: bool, seed: int, val_fraction: float, augment: bool,
    flatten: bool,
) -> tuple[Dataset, Dataset | None, Dataset, tuple[int, ...], int]:
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    train_full = _open(name, root, True, download, _transforms(name, True, augment, flatten))
    test = _open(name, root, False, download, _transforms(name, False, augment, flatten))
    _, _, _, shape, classes, _ = VISION[name]
    val = None
    train: Dataset = train_full
    if val_fraction > 0:
        labels = np.asarray(getattr(train_full, "targets", getattr(train_full, "labels", None)))
        val_idx, train_idx = stratified_split(labels, (val_fraction,), seed)
        plain = _open(name, root, True, False, _transforms(name, False, augment, flatten))
        train = Subset(train_full, train_idx.tolist())
        val = Subset(plain, val_idx.tolist())  # validation without augmentation
    flat_shape = (int(torch.Size(shape).numel()),) if flatten else shape
    return train, val, test, flat_shape, classes
