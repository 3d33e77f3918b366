"""One entry of a table: one architecture of a space trained alone, from scratch, under the
table's protocol, and its errors."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from pyro import poutine

from bayesnas.bench.spec import TableSpec
from bayesnas.data import as_tensors, load_dataset
from bayesnas.runs.training import error_on_tensors, train_epoch_on_tensors
from bayesnas.sites import arch_plate, architecture_to_tensors, discover_sites

__all__ = ["fixed_network", "train_alone"]


@lru_cache(maxsize=4)
def _data(dataset: str, val_fraction: float, flatten: bool) -> dict[str, Any]:
    d = load_dataset(dataset, seed=0, val_fraction=val_fraction, augment=False, flatten=flatten)
    parts = {"train": as_tensors(d.train), "val": as_tensors(d.val), "test": as_tensors(d.test)}
    return {"parts": parts, "input_shape": tuple(d.info.input_shape), "num_classes": d.info.num_classes}


def fixed_network(model: Callable[..., Any], arch: Mapping[str, Any], example: torch.Tensor
                  ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> logits (N, C)`` of ``model`` (a search space) with its arch sites held at ``arch``:
    the architecture alone, its unused weights untouched."""
    data = architecture_to_tensors(arch, discover_sites(model, example))

    def forward(x: torch.Tensor) -> torch.Tensor:
        with arch_plate(1):
            return poutine.condition(model, data=data)(x)[0]

    return forward


def train_alone(spec: TableSpec, arch: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Train ``arch`` of ``spec.space`` (or ``spec.network``'s plain network of it) from scratch
    under ``spec.protocol`` with ``seed`` (the initialisation and the data order), on one CPU
    thread; its validation and test errors, its training seconds, and the costs the spec counts
    (``spec.cost``)."""
    from bayesnas.models import get_space

    p = spec.protocol
    space = get_space(spec.space) if spec.network is None else None
    data = _data(p.dataset, p.val_fraction, space is not None and space.flatten_input)
    (x, y), (xv, yv), (xt, yt) = data["parts"]["train"], data["parts"]["val"], data["parts"]["test"]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        if space is None:
            model = spec.network(arch, data["input_shape"], data["num_classes"])
            forward = model
        else:
            model = space.build(data["input_shape"], data["num_classes"], **spec.space_options)
            forward = fixed_network(model, arch, x[:1])
        optimizer = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        order = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        model.train()
        for _ in range(p.epochs):
            train_epoch_on_tensors(lambda xb, yb: F.cross_entropy(forward(xb), yb), optimizer, x, y,
                                   order=torch.randperm(len(x), generator=order), batch_size=p.batch_size)
        seconds = time.perf_counter() - start
        errors = {f"{name}_error": error_on_tensors(model, xs, ys, batch_size=1024, forward=forward)
                  for name, xs, ys in (("val", xv, yv), ("test", xt, yt))}
    finally:
        torch.set_num_threads(before)
    return {**errors, "seconds": seconds, **(spec.cost(arch, model) if spec.cost else {})}
