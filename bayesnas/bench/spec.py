"""What a ground-truth table is: a search space, the architectures it covers, and the one
protocol every architecture is trained alone under.

A table is the field's instrument for judging a search (NAS-Bench-101/201): every architecture
of a space trained alone, from scratch, so that a search's answer can be looked up instead of
trusted. :func:`table_specs` lists the built-in ones; ``bayesnas bench build NAME`` builds one.
"""

from __future__ import annotations

import itertools
import json
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
        space: the search space (``bayesnas.models`` name) whose architectures the table holds:
            the supernet a search trains with weight sharing, here trained once per architecture.
        space_options: the space's options (the same a search must use to look its answer up).
        protocol: the training of each architecture.
        seeds: every architecture is trained once per seed.
        architectures: the architectures it covers, in a fixed order (plain site → value).
        why: why the table's errors spread (stated in its metadata).
        description: one line for ``bayesnas bench list``.
        cost: ``(architecture, model) -> {"params": ..., "macs": ...}`` of the network with
            what the architecture leaves out deleted.
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


def architecture_key(arch: Mapping[str, Any]) -> str:
    """The one string that names an architecture in a table (sites sorted, values as JSON)."""
    return json.dumps({k: arch[k] for k in sorted(arch)}, separators=(",", ":"))


def all_bits(site: str, n: int) -> Callable[[], list[dict[str, Any]]]:
    """Every value of an ``n``-bit Bernoulli site, in binary order (all zeros first)."""

    def enumerate_() -> list[dict[str, Any]]:
        return [{site: list(bits)} for bits in itertools.product((0, 1), repeat=n)]

    return enumerate_


_TABLES: dict[str, TableSpec] = {}


def register_table(spec: TableSpec) -> TableSpec:
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
