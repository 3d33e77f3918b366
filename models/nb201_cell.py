"""The NAS-Bench-201 cell as a categorical Pyro model, sized for 8×8 images.

NAS-Bench-201 (Dong & Yang 2020) fixes one cell of 4 nodes: node 0 is the cell's input and
node j (1 ≤ j ≤ 3) sums one operation on each edge i → j, i < j; 6 edges, each one of 5
operations (none, skip, conv 1×1, conv 3×3, avg-pool 3×3), 5⁶ = 15,625 cells. A cell whose
output node receives only ``none`` outputs zeros, so the space holds cells at chance beside
good ones: its errors spread for reasons a search has to find.

Here the whole network is a 3×3 stem convolution to ``channels``, ``cells`` copies of the one
searched cell (as NAS-Bench-201 repeats one cell through the network), and a head of ReLU,
global average pooling and a linear classifier; no reduction stages, because the inputs
(digits, 8×8) are already small. The convolutions are ReLU → conv → BatchNorm without affine
parameters (the search network of DARTS and of pdas2019), in the search and when trained alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas import sites

#: The five operations of NAS-Bench-201, in its order and with its names.
NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: The six edges (from node, to node), in NAS-Bench-201's order (its arch string
#: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``).
NB201_EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
SITE = "edges"


class _ReLUConvBN(nn.Sequential):
    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2,
                                              bias=False),
                         nn.BatchNorm2d(channels, affine=False))


class NB201CellSpace(nn.Module):
    """Stem, ``cells`` copies of one NAS-Bench-201 cell, head; logits ``(S, N, classes)``.

    Arch site ``"edges"``: shape ``(6,)``, one of :data:`NB201_OPS` per edge of
    :data:`NB201_EDGES`. Weight sharing: every architecture uses the same conv weights of an
    edge's op; only the sampled path is computed, one architecture after another.
    """

    def __init__(self, in_channels: int, num_classes: int, *, channels: int = 16, cells: int = 1) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("cells", cells)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, but got {name}={value!r}.")
        self.channels, self.cells = channels, cells
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels, affine=False))
        self.convs = nn.ModuleList(
            nn.ModuleList(nn.ModuleDict({"nor_conv_1x1": _ReLUConvBN(channels, 1),
                                         "nor_conv_3x3": _ReLUConvBN(channels, 3)})
                          for _ in NB201_EDGES)
            for _ in range(cells))
        self.classifier = nn.Linear(channels, num_classes)
        #: (H, W) of the inputs, for counting multiply-accumulates (set by :meth:`for_data`).
        self.image_size: tuple[int, int] | None = None

    @classmethod
    def for_data(cls, input_shape: Sequence[int], num_classes: int, **options: Any) -> NB201CellSpace:
        """The space for images of ``input_shape`` = (C, H, W)."""
        if len(input_shape) != 3:
            raise ValueError(f"The NAS-Bench-201 cell space takes images (C, H, W), but got "
                             f"input_shape={tuple(input_shape)}.")
        space = cls(int(input_shape[0]), num_classes, **options)
        space.image_size = (int(input_shape[1]), int(input_shape[2]))
        return space

    def extra_repr(self) -> str:
        return f"channels={self.channels}, cells={self.cells}"

    def _edge(self, cell: int, edge: int, op: str, x: torch.Tensor) -> torch.Tensor | None:
        """One edge's output; ``None`` for ``none`` (zeros that need not be added)."""
        if op == "none":
            return None
        if op == "skip_connect":
            return x
        if op == "avg_pool_3x3":
            return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        return self.convs[cell][edge][op](x)

    def cell(self, index: int, x: torch.Tensor, ops: Sequence[str]) -> torch.Tensor:
        """Cell ``index`` with ``ops[e]`` on edge ``NB201_EDGES[e]``."""
        nodes = [x]
        for j in (1, 2, 3):
            parts = [self._edge(index, e, ops[e], nodes[i]) for e, (i, to) in enumerate(NB201_EDGES)
                     if to == j]
            parts = [p for p in parts if p is not None]
            nodes.append(sum(parts[1:], parts[0]) if parts else torch.zeros_like(x))
        return nodes[3]

    def network(self, x: torch.Tensor, ops: Sequence[str]) -> torch.Tensor:
        """Logits ``(N, classes)`` of the fixed network whose cell has ``ops``."""
        h = self.stem(x)
        for c in range(self.cells):
            h = self.cell(c, h, ops)
        return self.classifier(F.relu(h).mean((2, 3)))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(S, N, C)`` for images ``(N, C, H, W)``."""
        if x.dim() != 4:
            raise ValueError(f"NB201CellSpace takes images (N, C, H, W), but got x of shape "
                             f"{tuple(x.shape)}.")
        edges = [(f"n{i}", f"n{j}") for i, j in NB201_EDGES]
        choice = sites.categorical(SITE, NB201_OPS, (len(NB201_EDGES),), edges=edges, device=x.device)
        logits = torch.stack([self.network(x, [NB201_OPS[k] for k in row])
                              for row in choice.reshape(-1, len(NB201_EDGES)).tolist()])
        sites.classification_likelihood(logits, y)
        return logits

    def arch_string(self, arch: Mapping[str, Any]) -> str:
        """NAS-Bench-201's string of an architecture: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        ops = [NB201_OPS[int(k)] for k in arch[SITE]]
        nodes = [[f"{ops[e]}~{i}" for e, (i, to) in enumerate(NB201_EDGES) if to == j] for j in (1, 2, 3)]
        return "+".join("|" + "|".join(n) + "|" for n in nodes)

    def num_weights_used(self, arch: Mapping[str, Any]) -> int:
        """Weights of the fixed network of ``arch``: stem, the conv edges of every cell, classifier."""
        return self.stem[0].weight.numel() + self.cells * self._cell_kernels(arch) * self.channels**2 + sum(
            p.numel() for p in self.classifier.parameters())

    def macs(self, arch: Mapping[str, Any]) -> int:
        """Multiply-accumulates of the fixed network of ``arch`` on one image of ``image_size``
        (convolutions and the classifier; pooling, BatchNorm and sums not counted)."""
        if self.image_size is None:
            raise ValueError("macs() needs image_size: build the space with NB201CellSpace.for_data.")
        pixels = self.image_size[0] * self.image_size[1]
        stem = self.stem[0].weight.numel() * pixels
        return (stem + self.cells * self._cell_kernels(arch) * self.channels**2 * pixels
                + self.classifier.weight.numel())

    def _cell_kernels(self, arch: Mapping[str, Any]) -> int:
        """Σ k² over the cell's conv edges."""
        return sum({"nor_conv_1x1": 1, "nor_conv_3x3": 9}.get(NB201_OPS[int(k)], 0) for k in arch[SITE])
