"""What a ground-truth table is: a search space, the architectures it covers, and the one
protocol every architecture is trained alone under.

A table is the field's instrument for judging a search (NAS-Bench-101/201): every architecture
of a space trained alone, from scratch, so that a search's answer can be looked up instead of
trusted. :func:`table_specs` lists the built-in ones; ``bayesnas bench build NAME`` builds one.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Protocol", "TableSpec", "architecture_key", "get_table_spec", "register_table", "table_specs"]


@dataclass(frozen=True)
class Protocol:
    """How each architecture is trained alone: ``epochs`` of Adam(``lr``, ``weight_decay``) on
    mini-batches of ``batch_size`` of the dataset's training part (validation
    ``val_fraction`` of it held out, the test part untouched; splits of
    :func:`bayesnas.data.load_dataset` with seed 0), on one CPU thread, so that an entry
    re-trained anywhere repeats its recorded errors exactly."""

    dataset: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    val_fraction: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TableSpec:
    """One table.

    Attributes:
        name: what ``bayesnas bench build`` takes.
        space: the search space whose architectures the table holds: the supernet a search trains
            with weight sharing, here trained once per architecture. For ``method="search"`` a
            ``bayesnas.models`` name; for ``method="nes"`` a backbone of
            :func:`bayesnas.nn.width_backbones.width_backbone`.
        space_options: the space's options (the same a search must use to look its answer up).
        protocol: the training of each architecture.
        seeds: every architecture is trained once per seed.
        architectures: the architectures it covers, in a fixed order (plain site → value).
        why: why the table's errors spread (stated in its metadata).
        description: one line for ``bayesnas bench list``.
        cost: ``(architecture, model) -> {"params": ..., "macs": ...}`` of the network with
            what the architecture leaves out deleted.
        method: the run kind that searches the space: ``"search"`` (``bayesnas search SPACE``)
            or ``"nes"`` (:class:`~bayesnas.methods.nes.NesConfig` with ``backbone=SPACE``).
        network: ``(architecture, input_shape, num_classes) -> module``, the architecture alone as
            the plain network the method re-trains (logits ``(N, classes)``); ``None``: the space's
            model with its arch sites held at the architecture.
    """

    name: str
    space: str
    space_options: Mapping[str, Any]
    protocol: Protocol
    seeds: tuple[int, ...]
    architectures: Callable[[], list[dict[str, Any]]]
    why: str
    description: str = ""
    cost: Callable[[Mapping[str, Any], Any], dict[str, int]] | None = None
    method: str = "search"
    network: Callable[[Mapping[str, Any], tuple[int, ...], int], Any] | None = None


def architecture_key(arch: Mapping[str, Any]) -> str:
    """The one string that names an architecture in a table (sites sorted, values as JSON)."""
    return json.dumps({k: arch[k] for k in sorted(arch)}, separators=(",", ":"))


def all_bits(site: str, n: int) -> Callable[[], list[dict[str, Any]]]:
    """Every value of an ``n``-bit Bernoulli site, in binary order (all zeros first)."""

    def enumerate_() -> list[dict[str, Any]]:
        return [{site: list(bits)} for bits in itertools.product((0, 1), repeat=n)]

    return enumerate_


def sampled_categorical(site: str, shape: int, choices: int, *, count: int, seed: int
                        ) -> Callable[[], list[dict[str, Any]]]:
    """``count`` distinct values of a ``shape``-vector categorical site of ``choices`` each,
    drawn uniformly without replacement with ``seed`` (a space too large to enumerate)."""

    def sample() -> list[dict[str, Any]]:
        indices = random.Random(seed).sample(range(choices**shape), count)
        return [{site: [i // choices**(shape - 1 - d) % choices for d in range(shape)]} for i in indices]

    return sample


_TABLES: dict[str, TableSpec] = {}


def register_table(spec: TableSpec) -> TableSpec:
    if spec.method not in ("search", "nes"):
        raise ValueError(f"`method` must be one of ['search', 'nes'], but got method={spec.method!r}.")
    if spec.name in _TABLES:
        raise ValueError(f"A table named {spec.name!r} is registered already.")
    _TABLES[spec.name] = spec
    return spec


def get_table_spec(name: str) -> TableSpec:
    if name not in _TABLES:
        raise ValueError(f"Unknown table {name!r}. Known tables: {', '.join(sorted(_TABLES)) or 'none'}.")
    return _TABLES[name]


def table_specs() -> list[TableSpec]:
    """Every registered table, in registration order."""
    return list(_TABLES.values())


def _layer_skip_cost(arch: Mapping[str, Any], model: Any) -> dict[str, int]:
    """Parameters of the network with the skipped layers deleted, and its multiply-accumulates."""
    skippable_kept = sum(arch["layers"])  # the first hidden layer is always there
    macs = (model.in_features * model.width + skippable_kept * model.width**2
            + model.width * model.output.out_features)
    return {"params": model.num_weights_used(dict(arch)), "macs": macs}


def _input_groups_cost(arch: Mapping[str, Any], model: Any) -> dict[str, int]:
    """Parameters and multiply-accumulates of the network with the dropped inputs deleted."""
    kept = sum(arch["inputs"]) * model.group_size
    macs = kept * model.width + model.width * model.num_classes
    return {"params": macs + model.width + model.num_classes, "macs": macs}


register_table(TableSpec(
    name="input-groups",
    space="input-groups",
    space_options={"group_size": 8, "width": 32},
    protocol=Protocol(dataset="digits-noise", epochs=20, batch_size=64, lr=3e-3),
    seeds=(0, 1),
    architectures=all_bits("inputs", 10),
    why=("Bits 0-7 keep the 8 pixel rows of the digits, bits 8-9 two groups of 8 features of planted "
         "N(0, 1) noise (digits-noise). The errors spread because a dropped row loses signal: the middle "
         "rows most, the outer rows least; with every row dropped the network is at chance. A kept noise "
         "group gives the 32-unit network 8 label-free inputs to fit: it costs a little on average over "
         "the table and nothing measurable among the best architectures, whose test errors tie within "
         "the test set's resolution (1/359). So the answer that matters is which rows to keep."),
    description="10-bit input selection on digits-noise, every one of the 1,024 architectures",
    cost=_input_groups_cost,
))


def _nb201_cost(arch: Mapping[str, Any], model: Any) -> dict[str, int]:
    return {"params": model.num_weights_used(arch), "macs": model.macs(arch)}


def all_grid_values(backbone: str, input_shape: tuple[int, ...], num_classes: int, *, width_mult: float
                    ) -> Callable[[], list[dict[str, Any]]]:
    """Every combination of the hyper-parameter values of a width backbone, grid by grid in
    network order (the smallest first)."""

    def enumerate_() -> list[dict[str, Any]]:
        from bayesnas.nn.width_backbones import width_backbone

        with _rng_untouched():
            net = width_backbone(backbone, input_shape, num_classes, width_mult=width_mult)
        grids = net.hyperparameters()
        return [dict(zip(grids, values, strict=True))
                for values in itertools.product(*(list(g.values()) for g in grids.values()))]

    return enumerate_


def _rng_untouched() -> Any:
    """Build a backbone only to read its grids or price an architecture, without moving torch's
    global generator (that initialises the networks a table trains)."""
    import torch

    return torch.random.fork_rng(devices=[])


_DIGITS = ((1, 8, 8), 10)  # input shape and classes of the digits


def _tiny_resnet(arch: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> Any:
    """The plain tiny ResNet of ``arch``, initialised as a NES run re-trains it."""
    from bayesnas.nn.width_backbones import width_backbone

    with _rng_untouched():
        backbone = width_backbone("tiny-resnet", input_shape, num_classes, width_mult=1.0)
    return backbone.build(dict(arch))


def _tiny_resnet_cost(arch: Mapping[str, Any], model: Any) -> dict[str, int]:
    from bayesnas.nn.width_backbones import width_backbone
    from bayesnas.resources.flops import macs

    with _rng_untouched():
        backbone = width_backbone("tiny-resnet", *_DIGITS, width_mult=1.0)
    return {"params": sum(p.numel() for p in model.parameters()),
            "macs": int(macs(backbone.layers(dict(arch))))}


register_table(TableSpec(
    name="nb201-cell",
    space="nb201-cell",
    space_options={"channels": 16, "cells": 1},
    protocol=Protocol(dataset="digits", epochs=10, batch_size=64, lr=1e-2),
    seeds=(0, 1),
    architectures=sampled_categorical("edges", 6, 5, count=500, seed=2026),
    why=("The NAS-Bench-201 cell (6 edges, each none / skip / conv 1x1 / conv 3x3 / avg-pool 3x3) "
         "between a 16-channel 3x3 stem and a linear head, on the 8x8 digits. The errors spread "
         "because the convolutions on the cell's paths are most of the network's capacity: cells "
         "whose paths to the output are conv 3x3 are best, cells of skips and pools are a linear "
         "model of the stem's features, and a cell whose output node receives only `none` outputs "
         "zeros and is at chance. A seeded uniform sample of 500 of the 15,625 cells (seed 2026); "
         "cells a search returns are trained on demand under the same protocol and appended "
         "(marked `appended`), and never enter the sample's statistics."),
    description="NAS-Bench-201 cell on digits, a uniform sample of 500 of the 15,625 cells",
    cost=_nb201_cost,
))

register_table(TableSpec(
    name="layer-skip",
    space="layer-skip",
    space_options={"depth": 8, "width": 32},
    protocol=Protocol(dataset="digits", epochs=10, batch_size=64, lr=1e-2),
    seeds=(0, 1),
    architectures=all_bits("layers", 7),
    why=("Bits 0-6 keep hidden layers 2-8 of an 8-layer, 32-unit ReLU MLP (the layer-skip space with "
         "its default LeCun initialisation, no normalisation) on the 8x8 digits. Trained 10 epochs with "
         "Adam at 1e-2, a deep stack trains worse than a shallow one: the errors spread with the number "
         "of kept layers, and every layer kept (where a search's θ = 0.5 mode starts) is among the "
         "worst. The answer is a shallow network."),
    description="7-bit layer selection on digits, every one of the 128 architectures",
    cost=_layer_skip_cost,
))

register_table(TableSpec(
    name="tiny-resnet-widths",
    space="tiny-resnet",
    space_options={"width_mult": 1.0},
    protocol=Protocol(dataset="digits", epochs=10, batch_size=64, lr=1e-2),
    seeds=(0, 1),
    architectures=all_grid_values("tiny-resnet", *_DIGITS, width_mult=1.0),
    why=("The channel counts of a one-block bottleneck ResNet (the NES backbone `tiny-resnet`: a 3x3 "
         "stem, then 1x1, 3x3 and 1x1 convolutions with a projection shortcut) on the 8x8 digits: "
         "stem 2-10 and middle 2-10 channels by 1, output 4-20 by 2, nine values each, 729 "
         "architectures, multiply-accumulates from 4,776 to 95,560. The errors spread because a "
         "narrow layer is a bottleneck: which layer to keep wide matters at a fixed budget of MACs, "
         "and that is NES's question. The truth for a budget is the best architecture within +-5 % "
         "of it."),
    description="tiny-resnet channel widths on digits for NES, every one of the 729 architectures",
    cost=_tiny_resnet_cost,
    method="nes",
    network=_tiny_resnet,
))
