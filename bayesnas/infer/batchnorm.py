"""BatchNorm statistics in a weight-sharing network: keep them, or recompute them for one path.

The running statistics of a network trained over many sampled architectures average over all
of them, and fit none: the most likely architecture evaluated with them can err at chance
level though its weights are good. Recomputing them for the evaluated architecture on some
training batches (as one-shot NAS methods do before evaluating a path) fixes that without
touching a weight.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from pyro import poutine
from torch import nn

from bayesnas.sites import arch_plate


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``module`` that track running statistics."""
    return [m for m in module.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@contextmanager
def frozen_batchnorm_statistics(module: nn.Module) -> Iterator[None]:
    """Run ``module`` as it is (train mode: batch statistics) but restore every BatchNorm's
    running statistics afterwards, so an evaluation pass leaves them as it found them."""
    norms = batchnorm_layers(module)
    saved = [{k: b.clone() for k, b in m.named_buffers(recurse=False) if b is not None} for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, buffers in zip(norms, saved, strict=True):
                for k, b in buffers.items():
                    getattr(m, k).copy_(b)


@contextmanager
def recalibrated_batchnorm(
    model: nn.Module, arch: Mapping[str, torch.Tensor], batches: Iterable[Any]
) -> Iterator[None]:
    """Inside the block, every BatchNorm's running statistics are those of architecture
    ``arch`` (``site -> value``, no leading sample dimension) on ``batches`` of inputs: reset,
    then accumulated as a plain average over the batches (momentum ``None``) in train mode
    without gradients. On exit the previous statistics come back."""
    norms = batchnorm_layers(model)
    with frozen_batchnorm_statistics(model):
        momenta = [m.momentum for m in norms]
        was_training = model.training
        data = {name: torch.as_tensor(value).unsqueeze(0) for name, value in arch.items()}
        try:
            for m in norms:
                m.reset_running_stats()
                m.momentum = None
            model.train()
            with torch.no_grad(), arch_plate(1):
                for x in batches:
                    poutine.condition(model, data=data)(x)
        finally:
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum
            model.train(was_training)
        yield
