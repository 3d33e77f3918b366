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

For re-training (pdas2019 §4.1, "Training detail") a fixed network also takes
ScheduledDropPath (``drop_path_prob``, raised by the training loop) and an auxiliary
classifier after the second reduction cell (``auxiliary=True``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas.nn.cell_ops import OPS, FactorizedReduce, Identity, ReLUConvBN, make_op

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


def random_genotype(*, num_nodes: int = 5, generator: torch.Generator) -> dict[str, Any]:
    """A genotype drawn uniformly from the space (pdas2019 table 1's RANDOM): every input of
    node i uniform over its i + 2 states, every operation uniform over :data:`OPS`,
    independently — the distribution of the search's initial θ."""
    def draw(k: int) -> int:
        return int(torch.randint(k, (), generator=generator))

    nodes = {kind: [((draw(i + 2), draw(i + 2)), (OPS[draw(len(OPS))], OPS[draw(len(OPS))]))
                    for i in range(num_nodes)] for kind in CELL_KINDS}
    return encode_genotype(nodes)


def drop_path(x: torch.Tensor, prob: float) -> torch.Tensor:
    """Zero each example's path with probability ``prob`` and scale the kept ones by
    1 / (1 − prob), so the expectation is unchanged (ScheduledDropPath, Zoph et al. 2018)."""
    keep = 1.0 - prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


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
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        nodes: Sequence[Node] | None = None,
        *,
        drop_prob: float = 0.0,
    ) -> torch.Tensor:
        """The cell's output; ``drop_prob`` > 0 drops each path between nodes in training,
        except a stride-1 identity, which has no weights to regularise (as in DARTS' code)."""
        nodes = self.fixed if nodes is None else nodes
        if nodes is None:
            raise ValueError("A search cell needs the nodes of the sampled architecture.")
        states = [self.pre0(s0), self.pre1(s1)]
        for i, (inputs, ops) in enumerate(nodes):
            total = 0
            for j, (a, name) in enumerate(zip(inputs, ops, strict=True)):
                stride = 2 if self.reduction and a < 2 else 1
                op = self.ops[i][j][name]
                h = op(states[a], stride=stride)
                if drop_prob > 0 and self.training and not (isinstance(op, Identity) and stride == 1):
                    h = drop_path(h, drop_prob)
                total = total + h
            states.append(total)
        unused = unused_nodes(nodes)
        weight = self.combine
        if self.fixed is None:  # the search cell's 1×1 conv has columns for every node
            c = self.channels
            weight = torch.cat([self.combine[:, i * c : (i + 1) * c] for i in unused], dim=1)
        h = torch.cat([states[i + 2] for i in unused], dim=1)
        return self.combine_bn(F.conv2d(F.relu(h), weight))


class AuxiliaryHead(nn.Module):
    """The auxiliary classifier (Szegedy et al. 2016) on the second reduction cell's output:
    ReLU, average pooling to a 2×2 grid, 1×1 conv to 128, BN, ReLU, 2×2 conv to 768, BN, ReLU,
    linear. DARTS' CIFAR head pools 8×8 maps with a 5×5 window at stride 3 (also 2×2 out);
    the adaptive pooling gives the same grid for any input size (8×8 digits end at 2×2)."""

    def __init__(self, c: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(), nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU())
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


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
        auxiliary: add the :class:`AuxiliaryHead` after the second reduction cell (re-training;
            its logits come from :meth:`forward_with_auxiliary`).

    ``drop_path_prob`` (an attribute, 0 at first) is the ScheduledDropPath rate the training
    loop raises from 0 to its maximum (pdas2019: 0.3); it acts in training mode only.
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
        auxiliary: bool = False,
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
        if auxiliary and genotype is None:
            raise ValueError("The auxiliary head is for re-training a fixed network: pass a genotype "
                             "with auxiliary=True (got genotype=None).")
        # The second reduction cell: index 2N + 1, with 4C channels.
        self._auxiliary_after = 2 * normal_cells + 1
        self.auxiliary = AuxiliaryHead(4 * channels, num_classes) if auxiliary else None
        self.drop_path_prob = 0.0

    def forward_with_auxiliary(
        self, x: torch.Tensor, nodes: Mapping[str, Sequence[Node]] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``(N, num_classes)`` and the auxiliary head's (``None`` without the head)."""
        s0 = s1 = self.stem(x)
        aux = None
        for k, (kind, cell) in enumerate(zip(self.kinds, self.cells, strict=True)):
            s0, s1 = s1, cell(s0, s1, None if nodes is None else nodes[kind], drop_prob=self.drop_path_prob)
            if self.auxiliary is not None and k == self._auxiliary_after:
                aux = self.auxiliary(s1)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1)), aux

    def forward(self, x: torch.Tensor, nodes: Mapping[str, Sequence[Node]] | None = None) -> torch.Tensor:
        """Logits ``(N, num_classes)``; the search network needs the sampled ``nodes``."""
        return self.forward_with_auxiliary(x, nodes)[0]

    def num_parameters(self, *, auxiliary: bool = False) -> int:
        """Weights of the network; the auxiliary head's only with ``auxiliary=True`` (it is
        dropped after training, so papers' parameter counts leave it out)."""
        head = set() if auxiliary or self.auxiliary is None else {id(p) for p in self.auxiliary.parameters()}
        return sum(p.numel() for p in self.parameters() if id(p) not in head)

    def load_search_weights(self, search: CellNetwork) -> CellNetwork:
        """Copy the weights and BatchNorm statistics of the chosen operations from the search
        network ``search`` (same channels, cells and nodes); returns ``self``."""
        if self.genotype is None:
            raise ValueError("load_search_weights needs a network built from a genotype.")
        nodes = decode_genotype(self.genotype)
        source = search.state_dict()
        target = self.state_dict()
        for key, value in target.items():
            if key.startswith("auxiliary."):  # re-training only: the search has no such head
                continue
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
