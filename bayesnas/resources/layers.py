"""The layers of an architecture as plain records, the common input of the resource models.

A backbone of :mod:`bayesnas.nn` lists the layers an architecture (a mapping of its integer
hyper-parameters) would run, as :class:`LayerSpec` records, without building the network;
the FLOPs model (:mod:`bayesnas.resources.flops`) and the latency look-up table
(:mod:`bayesnas.resources.latency`) price each record and sum them, as nes2019 §4.2 sums a
latency look-up table over layers (after ChamNet and FBNet).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: the layer kinds a record can describe: a (grouped) 2-d convolution and a dense layer.
KINDS = ("conv", "linear")


@dataclass(frozen=True)
class LayerSpec:
    """One layer of an architecture, as the resource models see it.

    Attributes:
        kind: ``"conv"`` (``nn.Conv2d``, any groups: depthwise when ``groups`` equals both
            channel counts) or ``"linear"``.
        in_channels, out_channels: the layer's input and output channels (features for a
            linear layer).
        resolution: the input's height = width in pixels (1 for a linear layer).
        kernel: the square kernel size (1 for a linear layer).
        stride: the convolution's stride (1 for a linear layer).
        groups: the convolution's groups.
        batch_norm: a BatchNorm follows the layer (priced by the latency table, not by FLOPs).
    """

    kind: str
    in_channels: int
    out_channels: int
    resolution: int = 1
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    batch_norm: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {list(KINDS)}, but got kind={self.kind!r}.")
        for name in ("in_channels", "out_channels", "resolution", "kernel", "stride", "groups"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, but got {name}={value!r}.")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                "`groups` must divide both channel counts, but got "
                f"(in_channels={self.in_channels}, out_channels={self.out_channels}, groups={self.groups}).")

    @property
    def out_resolution(self) -> int:
        """The output's height = width with "same" padding: ⌈resolution / stride⌉."""
        return -(-self.resolution // self.stride)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
