"""DARTS-style cells and networks of the VINNAS search space (vinnas2020 §III, §IV-A, §V-A).

A cell of I states reads the outputs of the two previous cells, ``c_{k-2}`` and ``c_{k-1}``
(each through ReLU–conv–BN, or a factorized reduce when ``c_{k-2}`` is at twice the
resolution); state ``n_i`` is the sum over *every* earlier state j of the mixed edge (j, i),
``Σ_k softmax(α^{j,i})_k · o_k(S_j)`` (vinnas2020 eq. 3); the cell's output is the
concatenation of its I states. A reduction cell applies its ops at stride 2 on the edges
from the two inputs and doubles the channels. A cell kind of I states has
``E = Σ_{i<I} (2 + i)`` edges, so the space has ``K^E`` cells per kind (vinnas2020 §V-A).

Layouts (vinnas2020 §V-A), selectable by name: ``"M"`` one reduction cell with I = 2 states;
``"F"`` 8 cells NNRNNRNN with I = 3; ``"C"`` 8 cells NNRNNRNN with I = 4. Cell sequences are
strings of ``N``/``R`` with optional repeat counts (``"6NR6NR6N"``: the 20-cell evaluation
network of C). Every network has a stem (3×3 conv → BN), then the cells, global average
pooling and a linear classifier.

A genotype (the exported architecture) keeps, per cell kind, each state's two incoming edges
and their ops (vinnas2020 §III: "each state S_c^i is connected with the outputs from two
operations"); as JSON, in the format of :mod:`bayesnas.nn.cell_network`::

    {"reduce": [{"inputs": ["c_{k-2}", "c_{k-1}"], "ops": ["sep_conv_3x3", "max_pool_3x3"]},
                {"inputs": ["c_{k-1}", "n0"], "ops": ["skip_connect", "dil_conv_5x5"]}]}

:class:`VinnasSupernet` is the over-parameterised network of the search (no Pyro: it takes
the mixing weights as an argument); :class:`VinnasNetwork` is the stand-alone network of a
genotype, built from the JSON alone with affine BatchNorm.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas.nn import lrt
from bayesnas.nn.vinnas_ops import OPS, ZERO, FactorizedReduce, ReLUConvBN, batch_norm, conv_weight, make_op

#: layout name → (cell sequence, states per cell), vinnas2020 §V-A.
LAYOUTS: dict[str, tuple[str, int]] = {"M": ("R", 2), "F": ("NNRNNRNN", 3), "C": ("NNRNNRNN", 4)}
KIND_OF = {"N": "normal", "R": "reduce"}
#: ops a genotype may keep: every op but zero ("no connection" is never an edge kept).
KEPT_OPS = tuple(o for o in OPS if o != ZERO)

# One state of a fixed cell: ((source index, source index), (op, op)); 0, 1 = cell inputs.
Node = tuple[tuple[int, int], tuple[str, str]]


def parse_cells(cells: str) -> tuple[str, ...]:
    """Cell kinds of a sequence like ``"NNRNNRNN"`` or ``"6NR6NR6N"`` (a count repeats the
    letter after it)."""
    if not isinstance(cells, str) or not re.fullmatch(r"(\d*[NR])+", cells):
        raise ValueError(
            "`cells` must be a sequence of 'N' (normal) and 'R' (reduction) letters, each with an "
            f"optional repeat count (e.g. 'NNRNNRNN' or '6NR6NR6N'), but got cells={cells!r}.")
    kinds: list[str] = []
    for count, letter in re.findall(r"(\d*)([NR])", cells):
        n = int(count) if count else 1
        if n < 1:
            raise ValueError(f"Repeat counts in `cells` must be >= 1, but got {count!r} in cells={cells!r}.")
        kinds.extend([KIND_OF[letter]] * n)
    return tuple(kinds)


def resolve_layout(layout: str, *, cells: str | None = None, num_states: int | None = None) -> tuple[
        tuple[str, ...], int]:
    """The cell kinds and states per cell of a named layout, with optional overrides."""
    if layout not in LAYOUTS:
        raise ValueError(
            f"`layout` must be one of {sorted(LAYOUTS)} (vinnas2020 §V-A), but got layout={layout!r}.")
    default_cells, default_states = LAYOUTS[layout]
    kinds = parse_cells(default_cells if cells is None else cells)
    states = default_states if num_states is None else num_states
    if isinstance(states, bool) or not isinstance(states, int) or states < 1:
        raise ValueError(f"`num_states` must be an integer >= 1, but got num_states={states!r}.")
    return kinds, states


def state_labels(num_states: int) -> tuple[str, ...]:
    """The states of a cell: its two inputs, then ``n0`` .. ``n{I-1}``."""
    return ("c_{k-2}", "c_{k-1}", *(f"n{i}" for i in range(num_states)))


def cell_edges(num_states: int) -> list[tuple[int, int]]:
    """Every edge (source state index, target node) of a cell, in the order of α's rows:
    node 0's two edges, node 1's three, ... (sources 0, 1 are the cell inputs)."""
    return [(j, i) for i in range(num_states) for j in range(i + 2)]


def edge_names(num_states: int) -> list[tuple[str, str]]:
    """``(source, target)`` names of :func:`cell_edges`, for the α site's ``edges``."""
    labels = state_labels(num_states)
    return [(labels[j], f"n{i}") for j, i in cell_edges(num_states)]


def decode_genotype(genotype: Mapping[str, Any], *, kinds: Sequence[str],
                    num_states: int | None = None) -> dict[str, list[Node]]:
    """Check a JSON genotype for the cell ``kinds`` of a layout and turn labels into indices."""
    want = sorted(set(kinds))
    if not isinstance(genotype, Mapping) or sorted(genotype) != want:
        got = sorted(genotype) if isinstance(genotype, Mapping) else type(genotype).__name__
        raise ValueError(
            f"The genotype of this layout maps exactly {want} to lists of states, but got {got}.")
    out: dict[str, list[Node]] = {}
    for kind in want:
        nodes = genotype[kind]
        wrong_length = num_states is not None and len(nodes) != num_states
        if not isinstance(nodes, Sequence) or not nodes or wrong_length:
            need = f"{num_states} states" if num_states is not None else "at least one state"
            raise ValueError(f"The {kind} cell needs {need}, but got {nodes!r}.")
        decoded = []
        for i, node in enumerate(nodes):
            inputs, ops = (list(node.get(key, ())) if isinstance(node, Mapping) else ()
                           for key in ("inputs", "ops"))
            labels = state_labels(i)  # n_i reads the inputs and the states before it
            if len(inputs) != 2 or inputs[0] == inputs[1] or any(a not in labels for a in inputs):
                raise ValueError(f"State n{i} of the {kind} cell keeps two different edges from "
                                 f"{list(labels)}, but got inputs={inputs}.")
            if len(ops) != 2 or any(o not in KEPT_OPS for o in ops):
                raise ValueError(
                    f"State n{i} of the {kind} cell applies two of {list(KEPT_OPS)}, but got ops={ops}.")
            decoded.append(((labels.index(inputs[0]), labels.index(inputs[1])), (ops[0], ops[1])))
        out[kind] = decoded
    return out


def encode_genotype(nodes: Mapping[str, Sequence[Node]]) -> dict[str, list[dict[str, list[str]]]]:
    """The JSON genotype of decoded states (the inverse of :func:`decode_genotype`)."""
    return {kind: [{"inputs": [state_labels(i)[a] for a in inputs], "ops": list(ops)}
                   for i, (inputs, ops) in enumerate(states)] for kind, states in nodes.items()}


class MixedEdge(nn.Module):
    """All K ops of one edge; the output is ``Σ_k w_k · o_k(x)`` (vinnas2020 eq. 3). The zero
    op is not computed: its term is 0 whatever its weight."""

    def __init__(self, c: int, *, stride: int, affine: bool) -> None:
        super().__init__()
        self.ops = nn.ModuleDict({name: make_op(name, c, stride=stride, affine=affine)
                                  for name in OPS if name != ZERO})
        self._index = [OPS.index(name) for name in self.ops]

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = 0
        for k, op in zip(self._index, self.ops.values(), strict=True):
            out = out + weights[k] * op(x)
        return out


class VinnasCell(nn.Module):
    """One cell; ``nodes=None`` mixes every edge (search), else keeps each state's two edges."""

    def __init__(self, c_prev_prev: int, c_prev: int, c: int, *, reduction: bool, reduction_prev: bool,
                 num_states: int, affine: bool, nodes: Sequence[Node] | None = None) -> None:
        super().__init__()
        self.reduction, self.num_states = reduction, num_states
        self.fixed = None if nodes is None else list(nodes)
        # A cell after a reduction reads c_{k-2} at twice the resolution of c_{k-1}.
        self.pre0 = (FactorizedReduce if reduction_prev else ReLUConvBN)(c_prev_prev, c, affine=affine)
        self.pre1 = ReLUConvBN(c_prev, c, affine=affine)

        def stride(source: int) -> int:
            return 2 if reduction and source < 2 else 1

        if nodes is None:
            self.edges = nn.ModuleList(MixedEdge(c, stride=stride(j), affine=affine)
                                       for j, _ in cell_edges(num_states))
        else:
            self.edges = nn.ModuleList(make_op(op, c, stride=stride(src), affine=affine)
                                       for sources, ops in nodes
                                       for src, op in zip(sources, ops, strict=True))

    def forward(
        self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The cell's output; the search cell needs the ``(E, K)`` mixing weights."""
        states = [self.pre0(s0), self.pre1(s1)]
        if self.fixed is None:
            if weights is None:
                raise ValueError("A search cell needs the (edges, K) mixing weights softmax(α).")
            e = 0
            for i in range(self.num_states):
                total = 0
                for j in range(i + 2):
                    total = total + self.edges[e](states[j], weights[e])
                    e += 1
                states.append(total)
        else:
            for i, (sources, _) in enumerate(self.fixed):
                a, b = self.edges[2 * i], self.edges[2 * i + 1]
                states.append(a(states[sources[0]]) + b(states[sources[1]]))
        return torch.cat(states[2:], dim=1)


class _CellStack(nn.Module):
    """Stem (3×3 conv → BN), cells, global average pooling and a linear classifier; the
    channels double at every reduction cell (DARTS' building principles, vinnas2020 §V-A)."""

    def __init__(self, *, in_channels: int, num_classes: int, channels: int, stem_multiplier: int,
                 kinds: Sequence[str], num_states: int, affine: bool,
                 nodes: Mapping[str, Sequence[Node]] | None) -> None:
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 1), ("num_classes", num_classes, 2),
                                 ("channels", channels, 2), ("stem_multiplier", stem_multiplier, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}, but got {name}={value!r}.")
        self.kinds, self.num_states = tuple(kinds), num_states
        c_stem = stem_multiplier * channels
        self.stem_weight = conv_weight(c_stem, in_channels, 3, 3)
        self.stem_bn = batch_norm(c_stem, affine=affine)
        cells = []
        c_pp, c_p, c = c_stem, c_stem, channels
        reduction_prev = False
        for kind in self.kinds:
            reduction = kind == "reduce"
            if reduction:
                c *= 2
            cells.append(VinnasCell(c_pp, c_p, c, reduction=reduction, reduction_prev=reduction_prev,
                                    num_states=num_states, affine=affine,
                                    nodes=None if nodes is None else nodes[kind]))
            reduction_prev = reduction
            c_pp, c_p = c_p, num_states * c
        self.cells = nn.ModuleList(cells)
        self.classifier_weight = nn.Parameter(torch.empty(num_classes, c_p))
        nn.init.xavier_uniform_(self.classifier_weight)
        self.classifier_bias = nn.Parameter(torch.zeros(num_classes))

    def _run(self, x: torch.Tensor, weights: Mapping[str, torch.Tensor] | None) -> torch.Tensor:
        s0 = s1 = self.stem_bn(lrt.conv2d(x, self.stem_weight, padding=1))
        for kind, cell in zip(self.kinds, self.cells, strict=True):
            s0, s1 = s1, cell(s0, s1, None if weights is None else weights[kind])
        features = F.adaptive_avg_pool2d(s1, 1).flatten(1)
        return lrt.linear(features, self.classifier_weight, self.classifier_bias)


class VinnasSupernet(_CellStack):
    """The over-parameterised network M of the search (vinnas2020 §IV-A): every edge mixes
    the K ops. BatchNorm has no affine parameters and no running statistics by default
    (vinnas2020 §V-A). ``forward(x, weights)`` takes ``kind → (E, K)`` mixing weights."""

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10, layout: str = "M", channels: int = 8,
                 cells: str | None = None, num_states: int | None = None, stem_multiplier: int = 3,
                 affine: bool = False) -> None:
        kinds, states = resolve_layout(layout, cells=cells, num_states=num_states)
        super().__init__(in_channels=in_channels, num_classes=num_classes, channels=channels,
                         stem_multiplier=stem_multiplier, kinds=kinds, num_states=states, affine=affine,
                         nodes=None)
        self.layout = layout

    def forward(self, x: torch.Tensor, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Logits ``(N, num_classes)`` for images ``(N, C, H, W)``."""
        return self._run(x, weights)


class VinnasNetwork(_CellStack):
    """The stand-alone network of a genotype: two ops per state, affine BatchNorm, plain
    ``nn.Module`` (no Pyro), built from the JSON alone. ``layout`` gives the cell sequence
    (override with ``cells``, e.g. ``"6NR6NR6N"`` for C's 20-cell evaluation network); the
    states per cell are the genotype's."""

    def __init__(self, *, genotype: Mapping[str, Any], layout: str = "M", in_channels: int = 1,
                 num_classes: int = 10, channels: int = 8, cells: str | None = None, stem_multiplier: int = 3,
                 affine: bool = True) -> None:
        kinds, states = resolve_layout(layout, cells=cells)
        if isinstance(genotype, Mapping) and genotype:
            states = len(next(iter(genotype.values())))
        nodes = decode_genotype(genotype, kinds=kinds, num_states=states)
        super().__init__(in_channels=in_channels, num_classes=num_classes, channels=channels,
                         stem_multiplier=stem_multiplier, kinds=kinds, num_states=states, affine=affine,
                         nodes=nodes)
        self.layout = layout
        self.genotype = encode_genotype(nodes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` for images ``(N, C, H, W)``."""
        return self._run(x, None)

    def num_edges(self) -> dict[str, int]:
        """Kept edges per cell kind (two per state)."""
        return {kind: 2 * len(nodes) for kind, nodes in self.genotype.items()}
