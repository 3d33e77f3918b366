"""The K = 10 candidate operations of the VINNAS cell search space (vinnas2020 §V-A).

"3 × 3, 5 × 5 and 7 × 7 separable convolutions, 3 × 3 and 5 × 5 dilated separable
convolutions, 7 × 1 followed by 1 × 7 convolution, 3 × 3 max pooling, 3 × 3 average pooling,
skip-connection, and zero — meaning no connection [...] All operations are followed by BN and
ReLU activation except zero and skip-connection." So every op here is
``op → BatchNorm → ReLU``, once (the paper does not repeat the separable convolutions as DARTS
does); skip is the identity at stride 1 and a factorized reduce at stride 2 (the only way it
can halve the resolution and keep the channels), zero is no connection.

Every convolution (and the classifier of :mod:`bayesnas.nn.vinnas_cells`) goes through
:func:`bayesnas.nn.lrt.conv2d` / :func:`bayesnas.nn.lrt.linear`, and reads its weight as a
plain attribute of its module at call time. So one module serves both weight modes:

* deterministic: the weights are the module's own ``nn.Parameter`` tensors;
* Bayesian (vinnas2020 eq. 4–5): the caller swaps the parameters for ``pyro.sample`` draws
  with ``torch.func.functional_call`` (``bayesnas.models.vinnas_space`` does so); under
  :func:`bayesnas.handlers.local_reparameterization` the layer recognises a draw of the
  guide's Normal by identity and computes the local reparameterization instead.

The stride is fixed per module (each edge of a DARTS cell owns its ops' weights). BatchNorm
with ``affine=False`` is the search setting of vinnas2020 §V-A: "We disable tracking of BN's
learnable parameters for affine transformation or stats tracking" — no affine parameters and
no running statistics (batch statistics in train and eval mode alike).
Plain PyTorch, no Pyro state: the stand-alone network is built from these modules too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas.nn import lrt

#: The K = 10 op labels, in the order of the last dimension of α (vinnas2020 §V-A).
OPS: tuple[str, ...] = (
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "conv_7x1_1x7",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "zero",
)
ZERO = "zero"
#: the index of the zero op in :data:`OPS` (its strength is clipped, see the search space).
ZERO_INDEX = OPS.index(ZERO)


def _check_stride(stride: int) -> None:
    if stride not in (1, 2):
        raise ValueError(f"`stride` must be 1 or 2, but got stride={stride!r}.")


def _check_channels(name: str, c: int) -> None:
    if isinstance(c, bool) or not isinstance(c, int) or c < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, but got {name}={c!r}.")


def batch_norm(c: int, *, affine: bool) -> nn.BatchNorm2d:
    """BatchNorm; ``affine=False`` also drops the running statistics (the search setting,
    vinnas2020 §V-A), ``affine=True`` is an ordinary BatchNorm (the stand-alone network)."""
    return nn.BatchNorm2d(c, affine=affine, track_running_stats=affine)


def conv_weight(c_out: int, c_in: int, kh: int, kw: int) -> nn.Parameter:
    """A convolution weight initialised Xavier-uniform (vinnas2020 §V-A initialises the means
    of the weights so; the deterministic mode uses the same start)."""
    w = nn.Parameter(torch.empty(c_out, c_in, kh, kw))
    nn.init.xavier_uniform_(w)
    return w


class ReLUConvBN(nn.Module):
    """ReLU → 1×1 convolution → BN: brings a cell input to the cell's channels (vinnas2020 §V-A:
    "Each input is processed trough ReLU-convolution-BN block")."""

    def __init__(self, c_in: int, c_out: int, *, affine: bool) -> None:
        super().__init__()
        self.weight = conv_weight(c_out, c_in, 1, 1)
        self.bn = batch_norm(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(lrt.conv2d(F.relu(x), self.weight))


class FactorizedReduce(nn.Module):
    """ReLU → two 1×1 stride-2 convolutions on offset grids, concatenated → BN (Zoph et al.
    2018): halves the resolution without dropping every other pixel. The skip connection of a
    reduction edge and the preprocessing of a cell that follows a reduction cell."""

    def __init__(self, c_in: int, c_out: int, *, affine: bool) -> None:
        super().__init__()
        if c_out < 2:
            raise ValueError(f"A factorized reduce needs `c_out` >= 2 (two halves), but got c_out={c_out}.")
        self.weight_a = conv_weight(c_out // 2, c_in, 1, 1)
        self.weight_b = conv_weight(c_out - c_out // 2, c_in, 1, 1)
        self.bn = batch_norm(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))  # the odd grid, same output size
        a = lrt.conv2d(x, self.weight_a, stride=2)
        b = lrt.conv2d(shifted, self.weight_b, stride=2)
        return self.bn(torch.cat([a, b], dim=1))


class SepConv(nn.Module):
    """Depthwise k×k (stride, dilation) → pointwise 1×1 → BN → ReLU: the (dilated) separable
    convolutions of vinnas2020 §V-A."""

    def __init__(self, c: int, kernel_size: int, *, stride: int, dilation: int = 1, affine: bool) -> None:
        super().__init__()
        _check_stride(stride)
        self.stride, self.dilation = stride, dilation
        self.padding = dilation * (kernel_size - 1) // 2  # "same" size at stride 1
        self.depthwise = conv_weight(c, 1, kernel_size, kernel_size)
        self.pointwise = conv_weight(c, c, 1, 1)
        self.bn = batch_norm(c, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = lrt.conv2d(x, self.depthwise, stride=self.stride, padding=self.padding,
                       dilation=self.dilation, groups=x.shape[1])
        return F.relu(self.bn(lrt.conv2d(x, self.pointwise)))


class Conv7x1x7(nn.Module):
    """7×1 convolution followed by a 1×7 convolution → BN → ReLU (vinnas2020 §V-A); each
    takes the stride along its own axis, so the pair halves both at stride 2."""

    def __init__(self, c: int, *, stride: int, affine: bool) -> None:
        super().__init__()
        _check_stride(stride)
        self.stride = stride
        self.weight_7x1 = conv_weight(c, c, 7, 1)
        self.weight_1x7 = conv_weight(c, c, 1, 7)
        self.bn = batch_norm(c, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = lrt.conv2d(x, self.weight_7x1, stride=(self.stride, 1), padding=(3, 0))
        x = lrt.conv2d(x, self.weight_1x7, stride=(1, self.stride), padding=(0, 3))
        return F.relu(self.bn(x))


class Pool(nn.Module):
    """3×3 max or average pooling (the average not counting the padding) → BN → ReLU."""

    def __init__(self, kind: str, c: int, *, stride: int, affine: bool) -> None:
        super().__init__()
        _check_stride(stride)
        if kind not in ("avg", "max"):
            raise ValueError(f"`kind` must be 'avg' or 'max', but got kind={kind!r}.")
        self.kind, self.stride = kind, stride
        self.bn = batch_norm(c, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "avg":
            x = F.avg_pool2d(x, 3, stride=self.stride, padding=1, count_include_pad=False)
        else:
            x = F.max_pool2d(x, 3, stride=self.stride, padding=1)
        return F.relu(self.bn(x))

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, stride={self.stride}"


class Skip(nn.Module):
    """The skip connection: the identity at stride 1 (no BN, no ReLU, vinnas2020 §V-A), a
    :class:`FactorizedReduce` at stride 2."""

    def __init__(self, c: int, *, stride: int, affine: bool) -> None:
        super().__init__()
        _check_stride(stride)
        self.stride = stride
        self.reduce = FactorizedReduce(c, c, affine=affine) if stride == 2 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.reduce is None else self.reduce(x)


class Zero(nn.Module):
    """No connection: zeros of the output's shape. A mixed edge skips it (its output adds
    nothing), but its strength still takes part in the softmax."""

    def __init__(self, *, stride: int) -> None:
        super().__init__()
        _check_stride(stride)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x[:, :, :: self.stride, :: self.stride])

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


def make_op(name: str, c: int, *, stride: int = 1, affine: bool) -> nn.Module:
    """The module of op ``name`` (one of :data:`OPS`) on ``c`` channels at ``stride``."""
    _check_channels("c", c)
    _check_stride(stride)
    if name in ("sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7"):
        return SepConv(c, int(name[-1]), stride=stride, affine=affine)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        return SepConv(c, int(name[-1]), stride=stride, dilation=2, affine=affine)
    if name == "conv_7x1_1x7":
        return Conv7x1x7(c, stride=stride, affine=affine)
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        return Pool(name[:3], c, stride=stride, affine=affine)
    if name == "skip_connect":
        return Skip(c, stride=stride, affine=affine)
    if name == ZERO:
        return Zero(stride=stride)
    raise ValueError(f"Unknown operation {name!r}. Known operations: {', '.join(OPS)}.")
