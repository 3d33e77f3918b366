"""The ENAS micro cell space of pdas2019 §4.1, as a Pyro model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from bayesnas import sites
from bayesnas.nn.cell_network import CELL_KINDS, CellNetwork, Node, encode_genotype, input_labels
from bayesnas.nn.cell_ops import OPS


def site_names(kind: str, node: int) -> tuple[str, str]:
    """The arch sites of one node: its two inputs and its two operations."""
    return f"cell.{kind}.n{node}.inputs", f"cell.{kind}.n{node}.ops"


class CellSearchSpace(nn.Module):
    """Normal and reduction cells of B nodes searched by categorical θ (pdas2019 §4.1).

    Each node of each cell kind has two arch sites: ``cell.{kind}.n{i}.inputs``, two choices
    among the i + 2 states before it (labels ``c_{k-2}``, ``c_{k-1}``, ``n0``, ...), and
    ``cell.{kind}.n{i}.ops``, two choices among the five :data:`~bayesnas.nn.cell_ops.OPS`.
    With B = 5 that is D = 40 categorical variables and 180 θ entries, as in the paper.

    Only the sampled path is computed: each of the S sampled architectures runs its own pass
    through the weight-sharing :class:`~bayesnas.nn.CellNetwork`, whose BatchNorm layers have
    no affine parameters during the search (pdas2019 §4.1). :meth:`genotype` names an
    architecture's choices; ``CellNetwork(genotype=...)`` builds it without Pyro.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        *,
        channels: int = 16,
        normal_cells: int = 2,
        num_nodes: int = 5,
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        self.num_nodes = num_nodes
        self.options = dict(in_channels=in_channels, num_classes=num_classes, channels=channels,
                            normal_cells=normal_cells, num_nodes=num_nodes, stem_multiplier=stem_multiplier)
        self.net = CellNetwork(**self.options, affine=False, genotype=None)

    @classmethod
    def for_data(cls, input_shape: Sequence[int], num_classes: int, **options: Any) -> CellSearchSpace:
        """The space for images of ``input_shape`` = (C, H, W)."""
        if len(input_shape) != 3:
            raise ValueError(
                f"The cell space takes images (C, H, W), but got input_shape={tuple(input_shape)}.")
        return cls(int(input_shape[0]), num_classes, **options)

    def _declare(self, device: torch.device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        out = {}
        for kind in CELL_KINDS:
            for i in range(self.num_nodes):
                inputs_name, ops_name = site_names(kind, i)
                out[f"{kind}{i}"] = (sites.categorical(inputs_name, input_labels(i), 2, device=device),
                                     sites.categorical(ops_name, OPS, 2, device=device))
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(S, N, C)`` for images ``(N, C, H, W)`` (or ``(S, n, C, H, W)``, eq. 5)."""
        choices = self._declare(x.device)
        # (S, 2) per site inside the arch plate; (2,) when run outside it (S = 1).
        plan = {key: (a.reshape(-1, 2).tolist(), o.reshape(-1, 2).tolist())
                for key, (a, o) in choices.items()}
        num_arch = len(next(iter(plan.values()))[0])
        logits = []
        for s in range(num_arch):
            nodes = {kind: [(tuple(plan[f"{kind}{i}"][0][s]), tuple(OPS[o] for o in plan[f"{kind}{i}"][1][s]))
                            for i in range(self.num_nodes)] for kind in CELL_KINDS}
            logits.append(self.net(x[s] if x.dim() == 5 else x, nodes))
        out = torch.stack(logits)
        sites.classification_likelihood(out, y)
        return out

    def genotype(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """The named choices (JSON genotype) of an architecture ``{site: [a, b]}``."""
        nodes: dict[str, list[Node]] = {}
        for kind in CELL_KINDS:
            nodes[kind] = []
            for i in range(self.num_nodes):
                inputs_name, ops_name = site_names(kind, i)
                a, b = (int(v) for v in arch[inputs_name])
                p, q = (int(v) for v in arch[ops_name])
                nodes[kind].append(((a, b), (OPS[p], OPS[q])))
        return encode_genotype(nodes)

    def stand_alone(self, arch: Mapping[str, Any], *, affine: bool = False) -> CellNetwork:
        """The fixed network of ``arch`` with this search network's weights (``affine=False``
        replays the search network exactly)."""
        net = CellNetwork(**self.options, affine=affine, genotype=self.genotype(arch))
        return net.load_search_weights(self.net)

    def num_weights_used(self, arch: Mapping[str, Any]) -> int:
        """Weights of the fixed network of ``arch`` (BatchNorm affine parameters excluded)."""
        return sum(p.numel() for p in CellNetwork(**self.options, affine=False,
                                                   genotype=self.genotype(arch)).parameters())
