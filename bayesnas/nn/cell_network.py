"""Cells and the cell network of the ENAS micro space (pdas2019 §4.1, fig. 1).

A *genotype* names every choice of a normal and a reduction cell of B nodes: node i reads two
of the states before it — the cell inputs ``c_{k-2}``, ``c_{k-1}`` or nodes ``n0``..``n{i-1}``
— applies one operation of :data:`~bayesnas.nn.cell_ops.OPS` to each and adds them; the nodes
no other node reads are concatenated and brought back to C channels by ReLU–1×1 conv–BN. In
a reduction cell the operations that read a cell input have stride 2. As JSON::

    {"normal": [{"inputs": ["c_{k-1}", "c_{k-2}"], "ops": ["sep_conv_3x3", "identity"]}, ...],
     "reduce": [...]}

:class:`CellNetwork` with ``genotype=None`` holds every operation of every node input (the
weight-sharing network of the search, run on one sampled path per forward); with a genotype
it holds only the chosen ones — a plain ``nn.Module`` built from the JSON alone, no Pyro.
:meth:`CellNetwork.load_search_weights` copies the search network's weights into it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas.nn.cell_ops import OPS, FactorizedReduce, ReLUConvBN, make_op

CELL_KINDS = ("normal", "reduce")
# One node, decoded: ((input index, input index), (op name, op name)); index 0, 1 = cell inputs.
Node = tuple[tuple[int, int], tuple[str, str]]


def input_labels(node: int) -> tuple[str, ...]:
    """The states node ``node`` may read: the two cell inputs, then the nodes before it."""
    return ("c_{k-2}", "c_{k-1}", *(f"n{j}" for j in range(node)))


def decode_genotype(genotype: Mapping[str, Any], *, num_nodes: int | None = None) -> dict[str, list[Node]]:
    """Check a JSON genotype and turn its labels into indices (``kind -> list of nodes``)."""
    if not isinstance(genotype, Mapping) or set(genotype) != set(CELL_KINDS):
        got = sorted(genotype) if isinstance(genotype, Mapping) else type(genotype).__name__
        raise ValueError(f"A genotype maps exactly {list(CELL_KINDS)} to lists of nodes, but got {got}.")
    out: dict[str, list[Node]] = {}
    for kind in CELL_KINDS:
        nodes = genotype[kind]
        wrong_length = num_nodes is not None and len(nodes) != num_nodes
        if not isinstance(nodes, Sequence) or not nodes or wrong_length:
            want = f"{num_nodes} nodes" if num_nodes is not None else "at least one node"
            raise ValueError(f"The {kind} cell needs {want}, but got {nodes!r}.")
        decoded = []
        for i, node in enumerate(nodes):
            inputs, ops = (list(node.get(key, ())) if isinstance(node, Mapping) else ()
                           for key in ("inputs", "ops"))
            labels = input_labels(i)
            if len(inputs) != 2 or any(a not in labels for a in inputs):
                raise ValueError(
                    f"Node {i} of the {kind} cell reads two of {list(labels)}, but got inputs={inputs}.")
            if len(ops) != 2 or any(o not in OPS for o in ops):
                raise ValueError(
                    f"Node {i} of the {kind} cell applies two of {list(OPS)}, but got ops={ops}.")
            decoded.append(((labels.index(inputs[0]), labels.index(inputs[1])), (ops[0], ops[1])))
        out[kind] = decoded
    return out


def encode_genotype(nodes: Mapping[str, Sequence[Node]]) -> dict[str, list[dict[str, list[str]]]]:
    """The JSON genotype of decoded nodes (the inverse of :func:`decode_genotype`)."""
    return {kind: [{"inputs": [input_labels(i)[a] for a in inputs], "ops": list(ops)}
                   for i, (inputs, ops) in enumerate(nodes[kind])] for kind in CELL_KINDS}


def unused_nodes(nodes: Sequence[Node]) -> list[int]:
    """The nodes no other node reads: their outputs make the cell's output."""
    read = {a for inputs, _ in nodes for a in inputs}
    return [i for i in range(len(nodes)) if i + 2 not in read]


class Cell(nn.Module):
    """One cell; ``nodes=None`` holds every operation of every node input (search)."""

    def __init__(
        self,
        c_prev_prev: int,
        c_prev: int,
        c: int,
        *,
        reduction: bool,
        reduction_prev: bool,
        num_nodes: int,
        affine: bool,
        nodes: Sequence[Node] | None = None,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.num_nodes = num_nodes
        self.channels = c
        self.fixed = None if nodes is None else list(nodes)
        # A cell after a reduction reads c_{k-2} at twice the resolution of c_{k-1}.
        self.pre0 = (FactorizedReduce if reduction_prev else ReLUConvBN)(c_prev_prev, c, affine=affine)
        self.pre1 = ReLUConvBN(c_prev, c, affine=affine)
        self.ops = nn.ModuleList(
            nn.ModuleList(
                nn.ModuleDict({name: make_op(name, c, affine=affine)
                               for name in (OPS if nodes is None else (nodes[i][1][j],))})
                for j in range(2))
            for i in range(num_nodes))
        width = num_nodes if nodes is None else len(unused_nodes(nodes))
        self.combine = nn.Parameter(torch.empty(c, width * c, 1, 1))
        nn.init.kaiming_uniform_(self.combine, a=5**0.5)
        self.combine_bn = nn.BatchNorm2d(c, affine=affine)

    def forward(
        self, s0: torch.Tensor, s1: torch.Tensor, nodes: Sequence[Node] | None = None
    ) -> torch.Tensor:
        nodes = self.fixed if nodes is None else nodes
        if nodes is None:
            raise ValueError("A search cell needs the nodes of the sampled architecture.")
        states = [self.pre0(s0), self.pre1(s1)]
        for i, (inputs, ops) in enumerate(nodes):
            states.append(sum(
                self.ops[i][j][op](states[a], stride=2 if self.reduction and a < 2 else 1)
                for j, (a, op) in enumerate(zip(inputs, ops, strict=True))))
        unused = unused_nodes(nodes)
        weight = self.combine
        if self.fixed is None:  # the search cell's 1×1 conv has columns for every node
            c = self.channels
            weight = torch.cat([self.combine[:, i * c : (i + 1) * c] for i in unused], dim=1)
        h = torch.cat([states[i + 2] for i in unused], dim=1)
        return self.combine_bn(F.conv2d(F.relu(h), weight))


class CellNetwork(nn.Module):
    """Stem, then ``normal_cells`` normal cells, a reduction cell, ``normal_cells`` normal
    cells, a reduction cell and ``normal_cells`` normal cells (pdas2019 fig. 1), global average
    pooling and a linear classifier. Channels double at each reduction.

    Args:
        in_channels, num_classes: the data's.
        channels: C of the first cells (16 in pdas2019's search).
        normal_cells: N (2 in the search, 6 when re-training).
        num_nodes: B (5).
        affine: learnable BatchNorm affine parameters (``False`` during the search, pdas2019
            §4.1 "we fix affine parameters of batch normalizations").
        genotype: a JSON genotype (fixed network), or ``None`` (the search network).
        stem_multiplier: the stem outputs ``stem_multiplier · C`` channels.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        num_classes: int = 10,
        channels: int = 16,
        normal_cells: int = 2,
        num_nodes: int = 5,
        affine: bool = True,
        genotype: Mapping[str, Any] | None = None,
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 1), ("num_classes", num_classes, 2),
                                 ("channels", channels, 2), ("normal_cells", normal_cells, 1),
                                 ("num_nodes", num_nodes, 1), ("stem_multiplier", stem_multiplier, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}, but got {name}={value!r}.")
        self.num_nodes = num_nodes
        nodes = None if genotype is None else decode_genotype(genotype, num_nodes=num_nodes)
        self.genotype = None if nodes is None else encode_genotype(nodes)
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_stem, affine=affine))
        self.kinds: list[str] = []
        cells = []
        c_pp, c_p, c = c_stem, c_stem, channels
        reduction_prev = False
        for stage in range(3):
            for k in range(normal_cells + (1 if stage < 2 else 0)):
                reduction = stage < 2 and k == normal_cells
                kind = "reduce" if reduction else "normal"
                if reduction:
                    c *= 2
                cells.append(Cell(c_pp, c_p, c, reduction=reduction, reduction_prev=reduction_prev,
                                  num_nodes=num_nodes, affine=affine,
                                  nodes=None if nodes is None else nodes[kind]))
                self.kinds.append(kind)
                reduction_prev = reduction
                c_pp, c_p = c_p, c
        self.cells = nn.ModuleList(cells)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor, nodes: Mapping[str, Sequence[Node]] | None = None) -> torch.Tensor:
        """Logits ``(N, num_classes)``; the search network needs the sampled ``nodes``."""
        s0 = s1 = self.stem(x)
        for kind, cell in zip(self.kinds, self.cells, strict=True):
            s0, s1 = s1, cell(s0, s1, None if nodes is None else nodes[kind])
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))

    def load_search_weights(self, search: CellNetwork) -> CellNetwork:
        """Copy the weights and BatchNorm statistics of the chosen operations from the search
        network ``search`` (same channels, cells and nodes); returns ``self``."""
        if self.genotype is None:
            raise ValueError("load_search_weights needs a network built from a genotype.")
        nodes = decode_genotype(self.genotype)
        source = search.state_dict()
        target = self.state_dict()
        for key, value in target.items():
            if key not in source:
                raise ValueError(f"The search network has no {key!r}: is it built with the same options?")
            src = source[key]
            if key.endswith(".combine"):  # keep the columns of this cell's unused nodes
                cell = int(key.split(".")[1])
                c = self.cells[cell].channels
                unused = unused_nodes(nodes[self.kinds[cell]])
                src = torch.cat([src[:, i * c : (i + 1) * c] for i in unused], 1)
            if src.shape != value.shape:
                raise ValueError(f"{key!r} has shape {tuple(src.shape)} in the search network but "
                                 f"{tuple(value.shape)} here: is it built with the same options?")
            target[key] = src.clone()
        self.load_state_dict(target)
        return self
