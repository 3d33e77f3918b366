"""The operations of the ENAS micro cell space (pdas2019 §4.1, after Pham et al. 2018).

Five candidate operations per node input: identity, 3×3 and 5×5 separable convolutions
(each applied twice in the order ReLU–conv–BatchNorm), 3×3 average and max pooling. The
stride is an argument of ``forward``, not of the module, so one set of weights serves an
operation whether it reads a cell input of a reduction cell (stride 2) or a node of the same
cell (stride 1): which input a node reads is itself a searched choice.

Plain PyTorch, no Pyro: the stand-alone network of an exported architecture is built from
these same modules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

OPS: tuple[str, ...] = ("identity", "sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3")


def _check_stride(stride: int) -> None:
    if stride not in (1, 2):
        raise ValueError(f"`stride` must be 1 or 2, but got stride={stride!r}.")


class ReLUConvBN(nn.Module):
    """ReLU → 1×1 convolution → BatchNorm: brings a cell input to the cell's channel count."""

    def __init__(self, c_in: int, c_out: int, *, affine: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x)))


class FactorizedReduce(nn.Module):
    """ReLU → two 1×1 stride-2 convolutions on offset grids, concatenated → BatchNorm.

    Halves the resolution without dropping every other pixel (Zoph et al. 2018): the identity
    of a reduction cell and the preprocessing of a cell that follows one."""

    def __init__(self, c_in: int, c_out: int, *, affine: bool) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))  # the odd grid, same output size
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


class Identity(nn.Module):
    """x at stride 1; a :class:`FactorizedReduce` at stride 2."""

    def __init__(self, c: int, *, affine: bool) -> None:
        super().__init__()
        self.reduce = FactorizedReduce(c, c, affine=affine)

    def forward(self, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
        _check_stride(stride)
        return x if stride == 1 else self.reduce(x)


class SepConv(nn.Module):
    """A separable k×k convolution applied twice: (ReLU → depthwise k×k → pointwise 1×1 →
    BatchNorm) × 2; the first depthwise convolution takes the stride."""

    def __init__(self, c: int, kernel_size: int, *, affine: bool) -> None:
        super().__init__()
        self.padding = kernel_size // 2
        self.depthwise = nn.ParameterList(
            nn.Parameter(torch.empty(c, 1, kernel_size, kernel_size)) for _ in range(2))
        self.pointwise = nn.ModuleList(nn.Conv2d(c, c, 1, bias=False) for _ in range(2))
        self.bn = nn.ModuleList(nn.BatchNorm2d(c, affine=affine) for _ in range(2))
        for w in self.depthwise:  # nn.Conv2d's own default initialisation
            nn.init.kaiming_uniform_(w, a=5**0.5)

    def forward(self, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
        _check_stride(stride)
        for i in range(2):
            x = F.conv2d(F.relu(x), self.depthwise[i], stride=stride if i == 0 else 1,
                         padding=self.padding, groups=x.shape[1])
            x = self.bn[i](self.pointwise[i](x))
        return x


class Pool(nn.Module):
    """3×3 average (not counting the padding) or max pooling; no weights."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in ("avg", "max"):
            raise ValueError(f"`kind` must be 'avg' or 'max', but got kind={kind!r}.")
        self.kind = kind

    def forward(self, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
        _check_stride(stride)
        if self.kind == "avg":
            return F.avg_pool2d(x, 3, stride=stride, padding=1, count_include_pad=False)
        return F.max_pool2d(x, 3, stride=stride, padding=1)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"


def make_op(name: str, c: int, *, affine: bool) -> nn.Module:
    """The module of operation ``name`` (one of :data:`OPS`) on ``c`` channels."""
    if name == "identity":
        return Identity(c, affine=affine)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        return SepConv(c, int(name[-1]), affine=affine)
    if name in ("avg_pool_3x3", "max_pool_3x3"):
        return Pool(name[:3])
    raise ValueError(f"Unknown operation {name!r}. Known operations: {', '.join(OPS)}.")
