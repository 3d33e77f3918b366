"""A dataset as four tensors in memory: what the epoch-based drivers (VINNAS, NES) train on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class TensorData:
    """Training and test tensors (normalised as the loader gives them), with the image shape
    and the number of classes."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str
    input_shape: tuple[int, ...]
    num_classes: int

    def subset(self, *, max_train_images: int | None, test_images: int | None,
               train_generator: torch.Generator, test_generator: torch.Generator,
               device: torch.device | str) -> tuple[torch.Tensor, ...]:
        """``(x_train, y_train, x_test, y_test)`` on ``device``: seeded random subsets of at most
        so many images (``None``: all), in their original order. Random, since the embedded data
        are sorted by class; a study passes the same generators to every seed, so the seeds
        differ in their training only."""
        out = []
        for x, y, limit, generator in ((self.x_train, self.y_train, max_train_images, train_generator),
                                       (self.x_test, self.y_test, test_images, test_generator)):
            n = len(x) if limit is None else min(limit, len(x))
            keep = torch.randperm(len(x), generator=generator)[:n].sort().values
            out += [x[keep].to(device), y[keep].to(device)]
        return tuple(out)


def _tensors(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    from bayesnas.data import as_tensors, make_loader

    tensors = as_tensors(dataset)
    if tensors is not None:
        return tensors
    # A torchvision dataset: read once (the augmentation of the loader is not re-drawn per epoch).
    parts = list(make_loader(dataset, batch_size=1000, shuffle=False))
    return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])


def load_tensors(name: str, *, data_dir: str | None = None, download: bool = False) -> TensorData:
    """The training (the loader's training part: no validation part is held out, the drivers
    split their own) and test images of :func:`bayesnas.data.load_dataset`."""
    from bayesnas.data import load_dataset

    data = load_dataset(name, data_dir=data_dir, download=download, seed=0, val_fraction=0.0, augment=False)
    (xt, yt), (xs, ys) = _tensors(data.train), _tensors(data.test)
    return TensorData(xt.float(), yt.long(), xs.float(), ys.long(), name, tuple(data.info.input_shape),
                      int(data.info.num_classes))
