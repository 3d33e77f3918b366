"""Ordered integer hyper-parameters of a weight-sharing backbone as a Pyro model (nes2019).

Every hyper-parameter the backbone searches (:meth:`WidthBackbone.hyperparameters`: shortcut
group and middle channels, stage depths, the input resolution) is an integer arch site
(:func:`bayesnas.sites.integer`) named as the backbone names it, with its grid and the base
architecture's value. A guide draws reals (:class:`bayesnas.guides.GaussianGuide`, nes2019
eqs. 6, 8); the sites round them down onto their grids; the backbone runs each of the S
architectures of the arch plate on the batch with the weights they share (nes2019 §3.2,
fig. 1), one after another, since architectures of different widths cannot share a batched
pass. ``space.resource(...)`` prices the sampled architectures by their analytic FLOPs
(:mod:`bayesnas.resources.flops`) or a latency table, for :class:`bayesnas.infer.NESLoss`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from bayesnas import sites
from bayesnas.nn.width_backbones import WidthBackbone
from bayesnas.resources.flops import macs

RESOURCES = ("macs", "latency")


class WidthSearchSpace(nn.Module):
    """The integer hyper-parameters of ``backbone`` as arch sites; logits ``(S, N, classes)``.

    Args:
        backbone: a :class:`~bayesnas.nn.width_backbones.WidthBackbone`
            (:class:`~bayesnas.nn.width_backbones.MobileNetV2Supernet` or
            :class:`~bayesnas.nn.width_backbones.ResNetSupernet`; its ``search_depth`` /
            ``search_resolution`` choose the dimensions searched besides the channels).
    """

    def __init__(self, backbone: WidthBackbone) -> None:
        super().__init__()
        if not isinstance(backbone, WidthBackbone):
            raise TypeError(f"`backbone` must be a WidthBackbone, but got {type(backbone).__name__}.")
        self.backbone = backbone

    @property
    def grids(self) -> dict[str, Any]:
        """Hyper-parameter name → its :class:`~bayesnas.integer_grid.IntegerGrid`, in network order."""
        return self.backbone.hyperparameters()

    def architectures(self, values: Mapping[str, torch.Tensor]) -> list[dict[str, int]]:
        """The S architectures ``name → int`` of sampled grid values ``name → (S,)``."""
        flat = {name: torch.as_tensor(values[name]).reshape(-1) for name in self.grids}
        num_arch = {len(v) for v in flat.values()}
        if len(num_arch) != 1:
            raise ValueError(f"Every hyper-parameter needs one value per architecture, but got "
                             f"{ {n: len(v) for n, v in flat.items()} }.")
        return [{name: int(v[s]) for name, v in flat.items()} for s in range(num_arch.pop())]

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        values = {name: sites.integer(name, g.low, g.high, step=g.step, base=g.base, device=x.device)
                  for name, g in self.grids.items()}
        logits = torch.stack([self.backbone(x, arch) for arch in self.architectures(values)])
        sites.classification_likelihood(logits, y)
        return logits

    def resource(self, kind: str = "macs", *, scale: float = 1.0,
                 table: Any = None) -> Callable[[Mapping[str, torch.Tensor]], torch.Tensor]:
        """R of nes2019 eq. (2) for :class:`~bayesnas.infer.NESLoss`: ``values ↦ (S,)``, the
        multiply-accumulates of each architecture (the papers' "FLOPs") or its latency in ms
        summed over a :class:`~bayesnas.resources.latency.LatencyTable` (``kind="latency"``),
        divided by ``scale`` (e.g. the budget, so that the target is 1)."""
        if kind not in RESOURCES:
            raise ValueError(f"`kind` must be one of {list(RESOURCES)}, but got kind={kind!r}.")
        if kind == "latency" and table is None:
            raise ValueError("A latency resource needs `table`, a LatencyTable measured on the device.")
        if not (isinstance(scale, int | float) and scale > 0):
            raise ValueError(f"`scale` must be positive, but got scale={scale!r}.")

        def cost(arch: Mapping[str, int]) -> float:
            layers = self.backbone.layers(arch)
            return float(macs(layers)) if kind == "macs" else float(table.total(layers))

        def resource(values: Mapping[str, torch.Tensor]) -> torch.Tensor:
            return torch.tensor([cost(a) / scale for a in self.architectures(values)],
                                dtype=torch.get_default_dtype())

        return resource
