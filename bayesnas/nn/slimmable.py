"""Weight-sharing ("slimmable") layers for searching channel counts (nes2019 §3.2, fig. 1(b)).

Each layer stores one weight at the largest channel count of the search space and runs with
the *first* ``k`` output channels (and the first input channels that the previous layer
produced): "we crop the weights for first k channels and remaining weights are untouched".
The active channel count is an argument of ``forward``, not of the module, so one set of
weights serves every architecture the search draws; the gradient of a step reaches only the
active slices, the rest of the weight keeps its values.

Plain PyTorch, no Pyro. The stand-alone network of one architecture (for re-training from
scratch, nes2019 §4.1) uses ordinary ``nn.Conv2d`` / ``nn.BatchNorm2d`` / ``nn.Linear`` of
the cropped sizes; copying ``weight[:k_out, :k_in]`` into it reproduces the sliced layer.

BatchNorm: :class:`SlimBatchNorm2d` always normalises with the statistics of the current
batch (as ``nn.BatchNorm2d(track_running_stats=False)``), in training and in evaluation mode.
Running statistics could not be shared between architectures: the statistics of channel ``j``
depend on every channel before it in the previous layers, so a running average accumulated
over many sampled architectures fits none of them. The search only needs the evaluation loss
of a batch of validation images (nes2019 Algorithm 1, batches of 256), for which batch
statistics are exact, and the final ⌊μ⌋ network is re-trained from scratch with its own
running statistics anyway. The price: an evaluation batch must hold more than one value per
channel, and a prediction depends on the batch it comes in.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, but got {name}={value!r}.")


def _check_active(name: str, value: int, maximum: int) -> None:
    if not 1 <= value <= maximum:
        raise ValueError(f"`{name}` must be in [1, {maximum}] (the layer's maximum), but got {name}={value}.")


class SlimConv2d(nn.Module):
    """A 2-d convolution with a max-width weight, run on the first channels.

    ``forward(x, out_channels)`` convolves the ``x.shape[1]`` input channels with
    ``weight[:out_channels, :x.shape[1]]``. A depthwise convolution (``depthwise=True``, as in
    MobileNetV2) has one filter per channel: it runs with ``groups`` = the active channels and
    keeps the channel count (``out_channels`` must equal the input's). Padding is
    ``kernel // 2`` ("same" for odd kernels: the output is ⌈resolution / stride⌉ pixels) and
    there is no bias (a BatchNorm follows every convolution here).
    """

    def __init__(self, max_in_channels: int, max_out_channels: int, kernel_size: int, *,
                 stride: int = 1, depthwise: bool = False) -> None:
        super().__init__()
        for name, value in (("max_in_channels", max_in_channels), ("max_out_channels", max_out_channels),
                            ("kernel_size", kernel_size), ("stride", stride)):
            _check_positive(name, value)
        if depthwise and max_in_channels != max_out_channels:
            raise ValueError(
                "a depthwise convolution keeps the channel count: `max_in_channels` must equal "
                f"`max_out_channels`, but got max_in_channels={max_in_channels}, "
                f"max_out_channels={max_out_channels}.")
        self.max_in_channels = max_in_channels
        self.max_out_channels = max_out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = kernel_size // 2
        self.depthwise = depthwise
        in_per_group = 1 if depthwise else max_in_channels
        self.weight = nn.Parameter(torch.empty(max_out_channels, in_per_group, kernel_size, kernel_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Conv2d's default initialisation (fan-in of the *max* layer: every slice shares it).
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        in_channels = x.shape[1]
        _check_active("in_channels", in_channels, self.max_in_channels)
        _check_active("out_channels", out_channels, self.max_out_channels)
        if self.depthwise:
            if out_channels != in_channels:
                raise ValueError(
                    "a depthwise convolution keeps the channel count, but got "
                    f"in_channels={in_channels}, out_channels={out_channels}.")
            weight, groups = self.weight[:in_channels], in_channels
        else:
            weight, groups = self.weight[:out_channels, :in_channels], 1
        return F.conv2d(x, weight, None, self.stride, self.padding, 1, groups)

    def extra_repr(self) -> str:
        return (f"{self.max_in_channels}, {self.max_out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, depthwise={self.depthwise}")


class SlimBatchNorm2d(nn.Module):
    """BatchNorm over the first ``x.shape[1]`` channels of a max-width affine transform.

    Always uses the current batch's statistics (no running statistics; see the module
    docstring for why), so training and evaluation mode behave alike.
    """

    def __init__(self, max_channels: int, *, eps: float = 1e-5) -> None:
        super().__init__()
        _check_positive("max_channels", max_channels)
        self.max_channels = max_channels
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(max_channels))
        self.bias = nn.Parameter(torch.zeros(max_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        _check_active("channels", c, self.max_channels)
        return F.batch_norm(x, None, None, self.weight[:c], self.bias[:c], training=True, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.max_channels}, eps={self.eps}, batch statistics only"


class SlimLinear(nn.Module):
    """A dense layer (the classifier) reading the first ``x.shape[-1]`` of its max input features.

    The output features (the classes) are fixed; only the input is sliced.
    """

    def __init__(self, max_in_features: int, out_features: int) -> None:
        super().__init__()
        _check_positive("max_in_features", max_in_features)
        _check_positive("out_features", out_features)
        self.max_in_features = max_in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, max_in_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's default initialisation, with the fan-in of the max layer.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(self.max_in_features)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = x.shape[-1]
        _check_active("in_features", k, self.max_in_features)
        return F.linear(x, self.weight[:, :k], self.bias)

    def extra_repr(self) -> str:
        return f"max_in_features={self.max_in_features}, out_features={self.out_features}"


def slice_state_dict(source: nn.Module, target: nn.Module) -> dict[str, torch.Tensor]:
    """``target``'s state dict with every parameter that ``source`` also has (same name) replaced
    by the leading slice of ``source``'s (``source_param[:n0, :n1, ...]`` for ``target``'s shape).

    This is the weight sharing of nes2019 fig. 1(b) read backwards: the stand-alone network of
    an architecture, loaded with this dict, computes what the super-network computes at that
    architecture. Buffers that only ``target`` has (BatchNorm running statistics) keep
    ``target``'s values.
    """
    params = dict(source.named_parameters())
    state = target.state_dict()
    for name, value in state.items():
        if name not in params:
            continue
        shared = params[name]
        if shared.dim() != value.dim() or any(s < t for s, t in zip(shared.shape, value.shape, strict=True)):
            raise ValueError(
                f"parameter {name!r} of shape {tuple(value.shape)} is not a leading slice of the "
                f"shared parameter of shape {tuple(shared.shape)}.")
        state[name] = shared.detach()[tuple(slice(0, n) for n in value.shape)].clone()
    return state
