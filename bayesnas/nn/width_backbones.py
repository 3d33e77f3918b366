"""Weight-sharing super-networks over ordered integer architecture hyper-parameters (nes2019).

nes2019 searches the channel counts, the depth and the input resolution of a fixed backbone
(MobileNetV2, ResNet; §4.3, appendix C, table 4) by natural evolution strategies, evaluating
every sampled architecture on ONE super-network whose weights all architectures share (§3.2,
fig. 1): channels by cropping the first ``k`` channels of max-width weights (fig. 1(b)),
depth by skipping the last blocks of a stage through their identity shortcut (fig. 1(c);
appendix C "we drop the last repeated block"), resolution by rescaling the input image before
the stem, the weights unchanged (fig. 1(a)).

Each backbone exposes its search space as ordered :class:`IntegerGrid` hyper-parameters
with hierarchical names (``"resolution"``, ``"stem.out"``, ``"stage2.out"``,
``"stage2.depth"``, ``"stage2.block1.mid"``, ``"head.out"``; stages and blocks count from 1),
whose values are actual channel counts, pixels and block counts:

* ``forward(x, hparams)`` runs the super-network at one architecture (``None``: max widths,
  full depth, base resolution);
* ``layers(hparams)`` lists the :class:`~bayesnas.resources.layers.LayerSpec` of every conv
  and linear layer that architecture runs, for the FLOPs and latency models (§4.2);
* ``build(hparams)`` builds the plain stand-alone network, to re-train from scratch (§4.1);
  ``extract(hparams)`` builds it holding the super-network's weight slices.

Ranges (table 4, scaled to the backbone's base channels ``C``): channels from
``max(1, round(min_scale·C))`` to ``round(max_scale·C)`` in steps of
``max(1, round(step_scale·C))``, the grid anchored at ``C`` so the 1× backbone lies on it
(the ends move inwards to the nearest grid point; rounding is half-up); depth of a stage from
1 to its base block count (the first block, which changes stride and channels, always runs;
a stage of one block has no depth hyper-parameter); resolution from
``round(resolution·96/224)`` to the base ``resolution`` in steps of 1 (table 4: 96 → 224 px).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas.integer_grid import IntegerGrid
from bayesnas.nn.slimmable import SlimBatchNorm2d, SlimConv2d, SlimLinear, slice_state_dict
from bayesnas.resources.layers import LayerSpec

#: MobileNetV2 stages for CIFAR as (expansion t, output channels c, blocks n, stride s), after
#: Sandler et al. 2018 table 2 cut to 10 blocks, with stride 1 in the stem and the first stages.
MOBILENETV2_CIFAR_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 2, 2), (6, 96, 2, 1))
#: bottleneck ResNet stages for CIFAR as (middle channels, output channels, blocks n, stride s).
RESNET_CIFAR_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (16, 64, 2, 1), (32, 128, 2, 2), (64, 256, 2, 2))

#: the named backbones of :func:`width_backbone`.
BACKBONES = ("mobilenetv2", "resnet", "tiny-resnet")
#: "tiny-resnet": one bottleneck block after the stem, small enough to train alone in about a
#: second on the 8×8 digits: three channel hyper-parameters (stem, middle, output) of nine values
#: each at ``width_mult = 1`` (2-10 by 1, 2-10 by 1, 4-20 by 2), 729 architectures, the integer
#: ground-truth table of NES (:mod:`bayesnas.bench`), fine enough that dozens of them lie within
#: ±5 % of a budget.
TINY_RESNET = {"stem_channels": 8, "stages": ((8, 16, 1, 1),), "min_scale": 0.25, "max_scale": 1.25,
               "step_scale": 0.125}

#: table 4's resolution range, 96 → 224 px for a 224-px backbone, as a fraction of the base.
MIN_RESOLUTION_SCALE = 96 / 224


def _round(x: float) -> int:
    """Round half up (Python's ``round`` rounds half to even: 2.5 → 2)."""
    return int(math.floor(x + 0.5))


def _check_int(name: str, value: object, *, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, but got {name}={value!r}.")


def _check_positive_float(name: str, value: object) -> None:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value <= 0):
        raise ValueError(f"`{name}` must be positive, but got {name}={value!r}.")


class Rescale(nn.Module):
    """Bilinear resize of the input to ``size × size`` before the stem (nes2019 fig. 1(a)).

    A no-op when the input already has that size. Part of the stand-alone network too, so it
    computes what the super-network does; a re-training pipeline may resize in the data
    loader instead.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        _check_int("size", size)
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rescale(x, self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}"


def rescale(x: torch.Tensor, size: int) -> torch.Tensor:
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def _conv_spec(c_in: int, c_out: int, resolution: int, kernel: int, stride: int = 1,
               groups: int = 1) -> LayerSpec:
    return LayerSpec("conv", c_in, c_out, resolution=resolution, kernel=kernel, stride=stride, groups=groups,
                     batch_norm=True)


def _check_stages(stages: object) -> tuple[tuple[int, int, int, int], ...]:
    if not isinstance(stages, Sequence) or not stages:
        raise ValueError("`stages` must be a non-empty sequence of 4-tuples of integers, "
                         f"but got stages={stages!r}.")
    checked = []
    for i, stage in enumerate(stages):
        if (not isinstance(stage, Sequence) or len(stage) != 4
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in stage)):
            raise ValueError(f"`stages[{i}]` must be a 4-tuple of positive integers, but got {stage!r}.")
        checked.append(tuple(stage))
    return tuple(checked)


class WidthBackbone(nn.Module):
    """What both super-networks share: the hyper-parameter table, its checks and the input
    rescaling. Subclasses fill ``self._ranges`` (searched, in network order) and
    ``self._fixed`` (the values of dimensions not searched: full depth, base resolution)."""

    def __init__(self, *, in_channels: int, num_classes: int, width_mult: float, min_scale: float,
                 max_scale: float, step_scale: float, resolution: int, min_resolution: int | None,
                 search_depth: bool, search_resolution: bool) -> None:
        super().__init__()
        _check_int("in_channels", in_channels)
        _check_int("num_classes", num_classes)
        _check_positive_float("width_mult", width_mult)
        _check_positive_float("min_scale", min_scale)
        _check_positive_float("max_scale", max_scale)
        _check_positive_float("step_scale", step_scale)
        if not min_scale <= 1 <= max_scale:
            raise ValueError("the 1× backbone must lie in the range: `min_scale` <= 1 <= `max_scale` must "
                             f"hold, but got min_scale={min_scale}, max_scale={max_scale}.")
        _check_int("resolution", resolution)
        if min_resolution is None:
            min_resolution = max(1, _round(MIN_RESOLUTION_SCALE * resolution))
        _check_int("min_resolution", min_resolution)
        if min_resolution > resolution:
            raise ValueError("`min_resolution` must be <= `resolution`, but got "
                             f"min_resolution={min_resolution}, resolution={resolution}.")
        for name, flag in (("search_depth", search_depth), ("search_resolution", search_resolution)):
            if not isinstance(flag, bool):
                raise ValueError(f"`{name}` must be a bool, but got {name}={flag!r}.")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.width_mult = float(width_mult)
        self.min_scale = float(min_scale)
        self.max_scale = float(max_scale)
        self.step_scale = float(step_scale)
        self.resolution = resolution
        self.search_depth = search_depth
        self.search_resolution = search_resolution
        self._ranges: dict[str, IntegerGrid] = {}
        self._fixed: dict[str, int] = {}
        if search_resolution:
            self._ranges["resolution"] = IntegerGrid(low=min_resolution, high=resolution, step=1,
                                                      base=resolution)
        else:
            self._fixed["resolution"] = resolution

    # -- the search space -------------------------------------------------------------------

    def _channels(self, c: int) -> int:
        """The base channel count ``C`` of a layer of ``c`` channels at ``width_mult``."""
        return max(1, _round(c * self.width_mult))

    def _channel_range(self, name: str, base: int) -> IntegerGrid:
        r = IntegerGrid.scaled(base, min_scale=self.min_scale, max_scale=self.max_scale,
                                step_scale=self.step_scale)
        self._ranges[name] = r
        return r

    def _depth(self, name: str, blocks: int) -> None:
        if self.search_depth and blocks > 1:
            self._ranges[name] = IntegerGrid(low=1, high=blocks, step=1, base=blocks)
        else:
            self._fixed[name] = blocks

    def _add_stem_and_stages(self, stem_channels: int, stages: Sequence[tuple[int, int, int, int]],
                             make_block: Callable[..., nn.Module]) -> IntegerGrid:
        """The stem (a 3×3 conv and BN) and the stages, their hyper-parameters registered in
        network order: per stage ``stageS.out`` (its shortcut group; stage[1] base channels),
        ``stageS.depth`` (stage[2] blocks) and, by ``make_block(s, b, c_in, out, stage)`` — which
        registers the block's middle channels and returns its slim module — every block's.
        Returns the last stage's output grid."""
        _check_int("stem_channels", stem_channels)
        self.stage_config = _check_stages(stages)
        prev = self._channel_range("stem.out", self._channels(stem_channels))
        self.stem = SlimConv2d(self.in_channels, prev.high, 3)
        self.stem_bn = SlimBatchNorm2d(prev.high)
        self.strides: list[int] = []
        modules = []
        for s, stage in enumerate(self.stage_config, 1):
            out = self._channel_range(f"stage{s}.out", self._channels(stage[1]))
            self._depth(f"stage{s}.depth", stage[2])
            modules.append(nn.ModuleList(make_block(s, b, prev if b == 1 else out, out, stage)
                                         for b in range(1, stage[2] + 1)))
            self.strides.append(stage[3])
            prev = out
        self.stages = nn.ModuleList(modules)
        return prev

    def hyperparameters(self) -> dict[str, IntegerGrid]:
        """The searched hyper-parameters, in network order."""
        return dict(self._ranges)

    def base_hparams(self) -> dict[str, int]:
        """The 1× backbone."""
        return {name: r.base for name, r in self._ranges.items()}

    def max_hparams(self) -> dict[str, int]:
        """The largest architecture: max widths, full depth, base resolution."""
        return {name: r.high for name, r in self._ranges.items()}

    def min_hparams(self) -> dict[str, int]:
        return {name: r.low for name, r in self._ranges.items()}

    def snap(self, values: Mapping[str, float]) -> dict[str, int]:
        """Round continuous values (e.g. ``H + n`` of NES) onto each hyper-parameter's grid."""
        self._check_names(values)
        return {name: r.snap(values[name]) for name, r in self._ranges.items()}

    def _check_names(self, hparams: object) -> None:
        if not isinstance(hparams, Mapping):
            raise TypeError(f"`hparams` must be a mapping of hyper-parameter names to integers, "
                            f"but got {type(hparams).__name__}.")
        unknown = sorted(set(hparams) - set(self._ranges))
        missing = [name for name in self._ranges if name not in hparams]
        if unknown or missing:
            raise ValueError("`hparams` must name exactly the backbone's hyper-parameters "
                             f"{list(self._ranges)}, but got unknown {unknown} and missing {missing}.")

    def validate(self, hparams: Mapping[str, int]) -> dict[str, int]:
        """Check every value is on its grid; return them as ints, in network order."""
        self._check_names(hparams)
        return {name: r.check(name, hparams[name]) for name, r in self._ranges.items()}

    def _complete(self, hparams: Mapping[str, int] | None) -> dict[str, int]:
        """Validated values plus the fixed ones of the dimensions not searched."""
        h = self.max_hparams() if hparams is None else self.validate(hparams)
        return {**self._fixed, **h}

    # -- networks -------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, hparams: Mapping[str, int] | None = None) -> torch.Tensor:
        """Logits of the super-network run at ``hparams`` (``None``: :meth:`max_hparams`)."""
        h = self._complete(hparams)
        if self.search_resolution:
            x = rescale(x, h["resolution"])
        return self._forward(x, h)

    def _forward(self, x: torch.Tensor, h: dict[str, int]) -> torch.Tensor:
        raise NotImplementedError

    def _run_stages(self, x: torch.Tensor, h: dict[str, int]) -> torch.Tensor:
        """The blocks of every stage up to its depth, each at its (middle, output) channels."""
        for s, stage in enumerate(self.stages, 1):
            out = h[f"stage{s}.out"]
            for b, block in enumerate(stage[: h[f"stage{s}.depth"]], 1):
                x = block(x, h[f"stage{s}.block{b}.mid"], out)
        return x

    def _blocks(self, h: dict[str, int]) -> list[list[tuple[int, int, int, int, bool]]]:
        """(in, mid, out, stride, first) of every block that runs, stage by stage; ``first``: the
        block that opens its stage (it changes stride and channels: no identity shortcut)."""
        stages, c_in = [], h["stem.out"]
        for s, stride in enumerate(self.strides, 1):
            out = h[f"stage{s}.out"]
            blocks = []
            for b in range(1, h[f"stage{s}.depth"] + 1):
                blocks.append((c_in, h[f"stage{s}.block{b}.mid"], out, stride if b == 1 else 1, b == 1))
                c_in = out
            stages.append(blocks)
        return stages

    def layers(self, hparams: Mapping[str, int] | None = None) -> list[LayerSpec]:
        """Every conv and linear layer the architecture runs, in order, with its input resolution."""
        return self._layers(self._complete(hparams))

    def _layers(self, h: dict[str, int]) -> list[LayerSpec]:
        raise NotImplementedError

    def build(self, hparams: Mapping[str, int] | None = None) -> nn.Module:
        """The plain stand-alone network of an architecture, freshly initialised (to re-train)."""
        return self._build(self._complete(hparams))

    def _build(self, h: dict[str, int]) -> nn.Module:
        raise NotImplementedError

    def extract(self, hparams: Mapping[str, int] | None = None) -> nn.Module:
        """:meth:`build`, loaded with the super-network's weight slices (the first channels)."""
        net = self.build(hparams)
        net.load_state_dict(slice_state_dict(self, net))
        return net


# -- MobileNetV2 -------------------------------------------------------------------------------


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1×1 expand → BN → ReLU6 → 3×3 depthwise → BN → ReLU6 → 1×1 project → BN
    (+ identity shortcut). Plain layers, for the stand-alone network."""

    def __init__(self, c_in: int, mid: int, c_out: int, stride: int, *, residual: bool) -> None:
        super().__init__()
        self.residual = residual
        self.expand = nn.Conv2d(c_in, mid, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(mid)
        self.dw = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False)
        self.dw_bn = nn.BatchNorm2d(mid)
        self.project = nn.Conv2d(mid, c_out, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.expand_bn(self.expand(x)))
        y = F.relu6(self.dw_bn(self.dw(y)))
        y = self.project_bn(self.project(y))
        return x + y if self.residual else y


class SlimInvertedResidual(nn.Module):
    """:class:`InvertedResidual` over max-width weights, run at (middle, output) channels."""

    def __init__(self, max_in: int, max_mid: int, max_out: int, stride: int, *, residual: bool) -> None:
        super().__init__()
        self.residual = residual
        self.expand = SlimConv2d(max_in, max_mid, 1)
        self.expand_bn = SlimBatchNorm2d(max_mid)
        self.dw = SlimConv2d(max_mid, max_mid, 3, stride=stride, depthwise=True)
        self.dw_bn = SlimBatchNorm2d(max_mid)
        self.project = SlimConv2d(max_mid, max_out, 1)
        self.project_bn = SlimBatchNorm2d(max_out)

    def forward(self, x: torch.Tensor, mid: int, out: int) -> torch.Tensor:
        y = F.relu6(self.expand_bn(self.expand(x, mid)))
        y = F.relu6(self.dw_bn(self.dw(y, mid)))
        y = self.project_bn(self.project(y, out))
        return x + y if self.residual else y


class MobileNetV2Net(nn.Module):
    """A stand-alone MobileNetV2 of one architecture (:meth:`MobileNetV2Supernet.build`)."""

    def __init__(self, *, in_channels: int, num_classes: int, resolution: int | None, stem: int,
                 stages: list[list[tuple[int, int, int, int, bool]]], head: int) -> None:
        super().__init__()
        self.rescale = Rescale(resolution) if resolution is not None else nn.Identity()
        self.stem = nn.Conv2d(in_channels, stem, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(stem)
        self.stages = nn.ModuleList(
            nn.ModuleList(InvertedResidual(c_in, mid, c_out, s, residual=not first)
                          for c_in, mid, c_out, s, first in blocks)
            for blocks in stages)
        last = stages[-1][-1][2]
        self.head = nn.Conv2d(last, head, 1, bias=False)
        self.head_bn = nn.BatchNorm2d(head)
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.stem_bn(self.stem(self.rescale(x))))
        for stage in self.stages:
            for block in stage:
                x = block(x)
        x = F.relu6(self.head_bn(self.head(x)))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class MobileNetV2Supernet(WidthBackbone):
    """MobileNetV2 super-network for CIFAR-size inputs (nes2019 §4.3, table 4 "MobileNet V2").

    Hyper-parameters: ``resolution``; ``stem.out``; per stage ``stageS.out``, the output
    channels shared by all its blocks (they are chained by identity shortcuts, so nes2019 §4.3
    "confine[s] the number of output channels to be the same for a sequence of blocks
    connected with a shortcut"), ``stageS.depth`` (stages of more than one block; blocks past
    it are skipped through their identity shortcut, the first block always runs) and
    ``stageS.blockB.mid``, the expanded channels of every block; ``head.out``, the last 1×1
    conv. The middle channels of a block past its stage's depth are drawn but unused. Deviations
    from Sandler et al. 2018 to keep one rule for all blocks: every block has
    an expansion conv (also those of expansion 1, whose middle channels are then a
    hyper-parameter like any other), and the first block of a stage never has a shortcut.
    Table 4 ranges by default: channels 0.2× → 1.5× in steps of 0.05×.
    """

    def __init__(self, *, in_channels: int = 3, num_classes: int = 10, width_mult: float = 1.0,
                 min_scale: float = 0.2, max_scale: float = 1.5, step_scale: float = 0.05,
                 resolution: int = 32, min_resolution: int | None = None, search_depth: bool = True,
                 search_resolution: bool = True, stem_channels: int = 32, head_channels: int = 320,
                 stages: Sequence[tuple[int, int, int, int]] = MOBILENETV2_CIFAR_STAGES) -> None:
        super().__init__(in_channels=in_channels, num_classes=num_classes, width_mult=width_mult,
                         min_scale=min_scale, max_scale=max_scale, step_scale=step_scale,
                         resolution=resolution, min_resolution=min_resolution, search_depth=search_depth,
                         search_resolution=search_resolution)
        _check_int("head_channels", head_channels)

        def block(s: int, b: int, c_in: IntegerGrid, out: IntegerGrid, stage: tuple[int, ...]) -> nn.Module:
            t, _, _, stride = stage  # t: the expansion of the middle channels
            mid = self._channel_range(f"stage{s}.block{b}.mid", t * c_in.base)
            return SlimInvertedResidual(c_in.high, mid.high, out.high, stride if b == 1 else 1,
                                        residual=b > 1)

        prev = self._add_stem_and_stages(stem_channels, stages, block)
        head = self._channel_range("head.out", self._channels(head_channels))
        self.head = SlimConv2d(prev.high, head.high, 1)
        self.head_bn = SlimBatchNorm2d(head.high)
        self.classifier = SlimLinear(head.high, num_classes)

    def _forward(self, x: torch.Tensor, h: dict[str, int]) -> torch.Tensor:
        x = self._run_stages(F.relu6(self.stem_bn(self.stem(x, h["stem.out"]))), h)
        x = F.relu6(self.head_bn(self.head(x, h["head.out"])))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def _layers(self, h: dict[str, int]) -> list[LayerSpec]:
        r = h["resolution"]
        specs = [_conv_spec(self.in_channels, h["stem.out"], r, 3)]
        for blocks in self._blocks(h):
            for c_in, mid, out, stride, _ in blocks:
                specs.append(_conv_spec(c_in, mid, r, 1))
                specs.append(_conv_spec(mid, mid, r, 3, stride, groups=mid))
                r = specs[-1].out_resolution
                specs.append(_conv_spec(mid, out, r, 1))
        specs.append(_conv_spec(specs[-1].out_channels, h["head.out"], r, 1))
        specs.append(LayerSpec("linear", h["head.out"], self.num_classes))
        return specs

    def _build(self, h: dict[str, int]) -> MobileNetV2Net:
        return MobileNetV2Net(in_channels=self.in_channels, num_classes=self.num_classes,
                              resolution=h["resolution"] if self.search_resolution else None,
                              stem=h["stem.out"], stages=self._blocks(h), head=h["head.out"])


# -- ResNet ------------------------------------------------------------------------------------


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1×1 → 3×3 (stride) → 1×1, each with BN, ReLU after the sum; a 1×1
    projection shortcut on the first block of a stage. Plain layers, for the stand-alone network."""

    def __init__(self, c_in: int, mid: int, c_out: int, stride: int, *, projection: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False) if projection else None
        self.shortcut_bn = nn.BatchNorm2d(c_out) if projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        # the shortcut after the main path, in the order ``layers()`` lists the convs
        identity = x if self.shortcut is None else self.shortcut_bn(self.shortcut(x))
        return F.relu(y + identity)


class SlimBottleneck(nn.Module):
    """:class:`Bottleneck` over max-width weights, run at (middle, output) channels."""

    def __init__(self, max_in: int, max_mid: int, max_out: int, stride: int, *, projection: bool) -> None:
        super().__init__()
        self.conv1 = SlimConv2d(max_in, max_mid, 1)
        self.bn1 = SlimBatchNorm2d(max_mid)
        self.conv2 = SlimConv2d(max_mid, max_mid, 3, stride=stride)
        self.bn2 = SlimBatchNorm2d(max_mid)
        self.conv3 = SlimConv2d(max_mid, max_out, 1)
        self.bn3 = SlimBatchNorm2d(max_out)
        self.shortcut = SlimConv2d(max_in, max_out, 1, stride=stride) if projection else None
        self.shortcut_bn = SlimBatchNorm2d(max_out) if projection else None

    def forward(self, x: torch.Tensor, mid: int, out: int) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x, mid)))
        y = F.relu(self.bn2(self.conv2(y, mid)))
        y = self.bn3(self.conv3(y, out))
        identity = x if self.shortcut is None else self.shortcut_bn(self.shortcut(x, out))
        return F.relu(y + identity)


class ResNetNet(nn.Module):
    """A stand-alone bottleneck ResNet of one architecture (:meth:`ResNetSupernet.build`)."""

    def __init__(self, *, in_channels: int, num_classes: int, resolution: int | None, stem: int,
                 stages: list[list[tuple[int, int, int, int, bool]]]) -> None:
        super().__init__()
        self.rescale = Rescale(resolution) if resolution is not None else nn.Identity()
        self.stem = nn.Conv2d(in_channels, stem, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(stem)
        self.stages = nn.ModuleList(
            nn.ModuleList(Bottleneck(c_in, mid, c_out, s, projection=p) for c_in, mid, c_out, s, p in blocks)
            for blocks in stages)
        self.classifier = nn.Linear(stages[-1][-1][2], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem(self.rescale(x))))
        for stage in self.stages:
            for block in stage:
                x = block(x)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ResNetSupernet(WidthBackbone):
    """Bottleneck-ResNet super-network for CIFAR-size inputs (nes2019 §4.3, table 4 "ResNet").

    Hyper-parameters: ``stem.out``; per stage ``stageS.out`` (the shortcut group: all blocks of
    a stage add into the same channels) and ``stageS.blockB.mid`` (both middle convs of a
    block). Table 4 searches channels only (as nes2019 §4.3 does for a fair comparison with
    channel pruning), so depth (``stageS.depth``) and resolution are off by default and can be
    switched on with ``search_depth`` / ``search_resolution``, as for MobileNetV2. Table 4
    ranges by default: channels 0.1× → 1.6× in steps of 0.03×. The stem is searched too
    (table 4 counts 4 shortcut groups for ResNet-50, whose stem is fixed; here the stem is a
    3×3 conv for 32-px inputs and its width is searched like every other layer's).
    """

    def __init__(self, *, in_channels: int = 3, num_classes: int = 10, width_mult: float = 1.0,
                 min_scale: float = 0.1, max_scale: float = 1.6, step_scale: float = 0.03,
                 resolution: int = 32, min_resolution: int | None = None, search_depth: bool = False,
                 search_resolution: bool = False, stem_channels: int = 32,
                 stages: Sequence[tuple[int, int, int, int]] = RESNET_CIFAR_STAGES) -> None:
        super().__init__(in_channels=in_channels, num_classes=num_classes, width_mult=width_mult,
                         min_scale=min_scale, max_scale=max_scale, step_scale=step_scale,
                         resolution=resolution, min_resolution=min_resolution, search_depth=search_depth,
                         search_resolution=search_resolution)
        def block(s: int, b: int, c_in: IntegerGrid, out: IntegerGrid, stage: tuple[int, ...]) -> nn.Module:
            m, _, _, stride = stage  # m: the middle channels
            mid = self._channel_range(f"stage{s}.block{b}.mid", self._channels(m))
            return SlimBottleneck(c_in.high, mid.high, out.high, stride if b == 1 else 1, projection=b == 1)

        prev = self._add_stem_and_stages(stem_channels, stages, block)
        self.classifier = SlimLinear(prev.high, num_classes)

    def _forward(self, x: torch.Tensor, h: dict[str, int]) -> torch.Tensor:
        x = self._run_stages(F.relu(self.stem_bn(self.stem(x, h["stem.out"]))), h)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def _layers(self, h: dict[str, int]) -> list[LayerSpec]:
        r = h["resolution"]
        specs = [_conv_spec(self.in_channels, h["stem.out"], r, 3)]
        for blocks in self._blocks(h):
            for c_in, mid, out, stride, projection in blocks:
                specs.append(_conv_spec(c_in, mid, r, 1))
                specs.append(_conv_spec(mid, mid, r, 3, stride))
                specs.append(_conv_spec(mid, out, specs[-1].out_resolution, 1))
                if projection:
                    specs.append(_conv_spec(c_in, out, r, 1, stride))
                r = specs[-1].out_resolution
        specs.append(LayerSpec("linear", specs[-1].out_channels, self.num_classes))
        return specs

    def _build(self, h: dict[str, int]) -> ResNetNet:
        return ResNetNet(in_channels=self.in_channels, num_classes=self.num_classes,
                         resolution=h["resolution"] if self.search_resolution else None,
                         stem=h["stem.out"], stages=self._blocks(h))


def width_backbone(name: str, input_shape: Sequence[int], num_classes: int, *, width_mult: float,
                   search_resolution: bool = False, search_depth: bool = False) -> WidthBackbone:
    """The backbone ``name`` (one of :data:`BACKBONES`) for images of ``input_shape`` = (C, H, W),
    freshly initialised from torch's global generator."""
    if name not in BACKBONES:
        raise ValueError(f"`backbone` must be one of {list(BACKBONES)}, but got backbone={name!r}.")
    cls = MobileNetV2Supernet if name == "mobilenetv2" else ResNetSupernet
    extra = TINY_RESNET if name == "tiny-resnet" else {}
    return cls(in_channels=int(input_shape[0]), num_classes=num_classes, width_mult=width_mult,
               resolution=int(input_shape[-1]), search_resolution=search_resolution,
               search_depth=search_depth, **extra)
