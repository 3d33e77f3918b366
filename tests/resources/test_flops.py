"""Analytic FLOPs (nes2019 §4.2) against torch's FlopCounterMode, and ``layers()`` against the
layers a network actually runs."""

from __future__ import annotations

import random
import time

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bayesnas.nn.slimmable import SlimConv2d, SlimLinear
from bayesnas.nn.width_backbones import MobileNetV2Supernet, ResNetSupernet, WidthBackbone
from bayesnas.resources.flops import backbone_flops, backbone_macs, flops, layer_macs, macs
from bayesnas.resources.layers import LayerSpec


def mobilenet() -> MobileNetV2Supernet:
    return MobileNetV2Supernet(width_mult=0.25, resolution=16, head_channels=64)


def resnet() -> ResNetSupernet:
    return ResNetSupernet(width_mult=0.25, resolution=16, search_depth=True, search_resolution=True)


def resnet_channels_only() -> ResNetSupernet:
    return ResNetSupernet(width_mult=0.25, resolution=16)  # table 4: channels only


FACTORIES = [pytest.param(f, id=f.__name__) for f in (mobilenet, resnet, resnet_channels_only)]


def random_hparams(backbone: WidthBackbone, rng: random.Random) -> dict[str, int]:
    return {name: rng.choice(r.values()) for name, r in backbone.hyperparameters().items()}


def test_layer_macs_by_hand():
    # 3 → 8 channels, 3×3, stride 2 on 5 px: a 3×3 output, each reading 3·9 inputs
    assert layer_macs(LayerSpec("conv", 3, 8, resolution=5, kernel=3, stride=2)) == 3 * 3 * 8 * 3 * 9
    # depthwise: each output reads one channel's 3×3 window
    assert layer_macs(LayerSpec("conv", 12, 12, resolution=4, kernel=3, groups=12)) == 4 * 4 * 12 * 9
    assert layer_macs(LayerSpec("linear", 64, 10)) == 640
    specs = [LayerSpec("conv", 3, 8, resolution=5, kernel=3, stride=2), LayerSpec("linear", 64, 10)]
    assert macs(specs) == 1944 + 640 and flops(specs) == 2 * (1944 + 640)
    assert macs(iter(specs)) == macs(specs) and macs([]) == 0


@pytest.mark.parametrize("factory", FACTORIES)
def test_analytic_flops_equal_torch_flop_counter(factory):
    m = factory()
    rng = random.Random(42)
    archs = [m.base_hparams(), m.min_hparams(), m.max_hparams()] + [random_hparams(m, rng) for _ in range(5)]
    x = torch.randn(1, 3, 16, 16)  # batch size 1: the counts are per image
    for h in archs:
        net = m.build(h).eval()  # eval: BatchNorm on running statistics works at batch size 1
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(x)
        assert counter.get_total_flops() == flops(m.layers(h)) == backbone_flops(m, h), h
        assert backbone_macs(m, h) * 2 == backbone_flops(m, h)
    assert backbone_flops(m) == flops(m.layers(m.max_hparams()))


def _record_specs(model: nn.Module, kinds: tuple[type, ...]) -> list[LayerSpec]:
    """LayerSpec of every conv / linear layer as it runs, read off its input and output."""
    specs: list[LayerSpec] = []

    def hook(module, args, output):
        x = args[0]
        if isinstance(module, (nn.Linear, SlimLinear)):
            specs.append(LayerSpec("linear", x.shape[-1], output.shape[-1]))
            return
        if isinstance(module, nn.Conv2d):
            kernel, stride, groups = module.kernel_size[0], module.stride[0], module.groups
        else:
            kernel, stride = module.kernel_size, module.stride
            groups = x.shape[1] if module.depthwise else 1
        assert x.shape[-1] == x.shape[-2]
        specs.append(LayerSpec("conv", x.shape[1], output.shape[1], resolution=x.shape[-1], kernel=kernel,
                               stride=stride, groups=groups, batch_norm=True))

    for module in model.modules():
        if isinstance(module, kinds):
            module.register_forward_hook(hook)
    return specs


@pytest.mark.parametrize("factory", FACTORIES)
def test_layers_equal_the_layers_actually_run(factory):
    torch.manual_seed(0)
    m = factory()
    rng = random.Random(7)
    ran_super = _record_specs(m, (SlimConv2d, SlimLinear))
    for h in [m.max_hparams()] + [random_hparams(m, rng) for _ in range(3)]:
        ran_super.clear()
        m(torch.randn(2, 3, 16, 16), h)
        net = m.build(h).eval()
        ran_built = _record_specs(net, (nn.Conv2d, nn.Linear))
        net(torch.randn(1, 3, 16, 16))
        assert ran_super == ran_built == m.layers(h)


def test_flops_are_fast():
    m = MobileNetV2Supernet()
    rng = random.Random(0)
    archs = [random_hparams(m, rng) for _ in range(300)]
    start = time.perf_counter()
    values = [backbone_flops(m, h) for h in archs]
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"{len(archs)} architectures took {elapsed:.2f} s"
    assert min(values) >= flops(m.layers(m.min_hparams())) and max(values) <= backbone_flops(m)
