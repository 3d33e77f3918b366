"""Weight-sharing super-networks of nes2019 (§3.2 fig. 1, §4.3, table 4): slicing, depth skip,
resolution, stand-alone equivalence, hyper-parameter checks and gradients."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from bayesnas.nn.slimmable import SlimBatchNorm2d, SlimConv2d, SlimLinear, slice_state_dict
from bayesnas.nn.width_backbones import (
    IntegerGrid,
    MobileNetV2Supernet,
    ResNetSupernet,
    WidthBackbone,
)


def mobilenet() -> MobileNetV2Supernet:
    return MobileNetV2Supernet(width_mult=0.25, resolution=16, head_channels=64)


def resnet() -> ResNetSupernet:
    # depth and resolution switched on, so every dimension is exercised on both backbones
    return ResNetSupernet(width_mult=0.25, resolution=16, search_depth=True, search_resolution=True)


FACTORIES = [pytest.param(mobilenet, id="mobilenetv2"), pytest.param(resnet, id="resnet")]


def random_hparams(backbone: WidthBackbone, rng: random.Random) -> dict[str, int]:
    return {name: rng.choice(r.values()) for name, r in backbone.hyperparameters().items()}


def inputs(batch: int = 4, size: int = 16) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


# -- IntegerGrid (nes2019 table 4 ranges) ----------------------------------------------------


def test_integer_range_scaled_follows_table4_anchored_at_base():
    r = IntegerGrid.scaled(128, min_scale=0.1, max_scale=1.6, step_scale=0.03)
    # step round(3.84) = 4; low round(12.8) = 13 moves up to the grid point 16; high 204.8 → 205 → 204
    assert r == IntegerGrid(low=16, high=204, step=4, base=128)
    assert 128 in r and 16 in r and 204 in r and 130 not in r and 12 not in r
    assert len(r) == len(r.values()) == (204 - 16) // 4 + 1
    assert IntegerGrid.scaled(1, min_scale=0.2, max_scale=1.5, step_scale=0.05) == IntegerGrid(1, 2, 1, 1)


def test_integer_range_snap_and_check():
    r = IntegerGrid(low=6, high=48, step=2, base=32)
    assert [r.snap(v) for v in (-3.0, 6.9, 7.0, 31.2, 47.1, 100.0)] == [6, 6, 8, 32, 48, 48]
    assert r.check("c", 30) == 30
    with pytest.raises(ValueError, match=r"`c` must be in \[6, 48\], but got c=50"):
        r.check("c", 50)
    grid = r"6, 8, \.\.\., 48 \(step 2\)"
    with pytest.raises(ValueError, match=rf"`c` must be on the grid {grid}, but got c=31"):
        r.check("c", 31)
    with pytest.raises(ValueError, match="`c` must be an integer, but got c=30.0"):
        r.check("c", 30.0)
    with pytest.raises(ValueError, match="must be an integer"):
        r.check("c", True)
    with pytest.raises(ValueError, match="`base` must be one of the values 4, 5, ..., 8, but got base=9"):
        IntegerGrid(low=4, high=8, step=1, base=9)
    with pytest.raises(ValueError, match="`high - low` a multiple of `step`"):
        IntegerGrid(low=4, high=9, step=2, base=6)


# -- the search spaces -----------------------------------------------------------------------------


def test_mobilenetv2_hyperparameters_at_width_1():
    m = MobileNetV2Supernet()
    space = m.hyperparameters()
    mids = [n for n in space if n.endswith(".mid")]
    assert len(mids) == 10  # one per block
    outs = ["stem.out"] + [f"stage{s}.out" for s in range(1, 6)] + ["head.out"]
    assert [n for n in space if n.endswith(".out")] == outs
    assert [n for n in space if n.endswith(".depth")] == ["stage2.depth", "stage3.depth", "stage4.depth",
                                                          "stage5.depth"]  # stage1 has one block
    assert list(space)[0] == "resolution" and space["resolution"] == IntegerGrid(14, 32, 1, 32)
    assert space["stage3.out"] == IntegerGrid(low=6, high=48, step=2, base=32)
    assert space["stage3.block1.mid"].base == 6 * 24  # expansion 6 of the block's input channels
    assert space["stage3.block2.mid"].base == 6 * 32
    assert space["stage3.depth"] == IntegerGrid(1, 3, 1, 3)
    assert m.base_hparams()["stage4.out"] == 64 and m.max_hparams()["stage4.out"] == 94


def test_resnet_is_channels_only_by_default():
    space = ResNetSupernet().hyperparameters()
    assert len(space) == 1 + 3 + 6  # stem, 3 shortcut groups, 6 blocks
    assert not any(n.endswith(".depth") or n == "resolution" for n in space)
    assert space["stage2.out"] == IntegerGrid(low=16, high=204, step=4, base=128)
    assert space["stage2.block1.mid"] == IntegerGrid(low=3, high=51, step=1, base=32)


def test_the_tiny_resnet_has_three_widths_of_nine_values_and_an_unknown_name_is_named():
    from bayesnas.nn.width_backbones import width_backbone

    net = width_backbone("tiny-resnet", (1, 8, 8), 10, width_mult=1.0)
    assert net.hyperparameters() == {"stem.out": IntegerGrid(low=2, high=10, step=1, base=8),
                                     "stage1.out": IntegerGrid(low=4, high=20, step=2, base=16),
                                     "stage1.block1.mid": IntegerGrid(low=2, high=10, step=1, base=8)}
    with pytest.raises(ValueError, match=r"`backbone` must be one of \['mobilenetv2', 'resnet', "
                                         r"'tiny-resnet'\], but got backbone='vgg'"):
        width_backbone("vgg", (1, 8, 8), 10, width_mult=1.0)


@pytest.mark.parametrize("factory", FACTORIES)
def test_base_architecture_is_the_1x_backbone(factory):
    m = factory()
    net = m.build(m.base_hparams())
    convs = [mod for mod in net.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert convs[0].out_channels == m.hyperparameters()["stem.out"].base
    assert all(r.low <= r.base <= r.high for r in m.hyperparameters().values())


# -- equivalence with the stand-alone network ---------------------------------------------------


@pytest.mark.parametrize("factory", FACTORIES)
def test_max_architecture_equals_build_with_the_same_weights(factory):
    torch.manual_seed(0)
    m = factory()
    h = m.max_hparams()
    net = m.build(h).train()  # training mode: batch statistics, as the super-network uses
    shared = dict(m.named_parameters())
    own = dict(net.named_parameters())
    assert own.keys() == shared.keys()
    assert all(own[k].shape == shared[k].shape for k in own)  # nothing to slice at max widths
    net.load_state_dict(slice_state_dict(m, net))
    x = inputs()
    assert torch.equal(m(x, h), net(x))
    assert torch.equal(m(x), m(x, h))  # None = max widths, full depth, base resolution


@pytest.mark.parametrize("factory", FACTORIES)
def test_smaller_architectures_equal_build_with_the_weight_slices(factory):
    torch.manual_seed(0)
    m = factory()
    rng = random.Random(0)
    x = inputs()
    for _ in range(3):
        h = random_hparams(m, rng)
        net = m.extract(h).train()
        # the copy is the leading slice of every shared weight (nes2019 fig. 1(b))
        stem = h["stem.out"]
        assert torch.equal(net.stem.weight, m.stem.weight[:stem, :3])
        assert torch.equal(net.stem_bn.weight, m.stem_bn.weight[:stem])
        assert torch.equal(net.classifier.weight, m.classifier.weight[:, : net.classifier.in_features])
        # bit-equal on CPU here; a tolerance because a sliced (non-contiguous) weight may take another
        # kernel than its contiguous copy on other backends
        torch.testing.assert_close(m(x, h), net(x), rtol=1e-5, atol=1e-6)


def test_supernet_batchnorm_uses_batch_statistics_in_eval_mode_too():
    torch.manual_seed(0)
    m = mobilenet()
    x = inputs()
    train_out = m.train()(x)
    assert torch.equal(m.eval()(x), train_out)
    assert not any(buf.numel() for buf in m.buffers())  # no running statistics to corrupt


# -- depth and resolution -----------------------------------------------------------------------------


@pytest.mark.parametrize("factory", FACTORIES)
def test_a_stage_of_depth_d_runs_exactly_d_blocks(factory):
    m = factory()
    calls = {}
    for s, stage in enumerate(m.stages, 1):
        for b, block in enumerate(stage, 1):
            block.register_forward_hook(lambda *_, key=(s, b): calls.__setitem__(key, calls.get(key, 0) + 1))
    h = m.max_hparams()
    h["stage3.depth"] = 1
    h["stage2.depth"] = 2
    m(inputs(), h)
    ran = sorted(calls)
    assert [b for s, b in ran if s == 3] == [1]  # blocks 2 and 3 skipped through the shortcut
    assert [b for s, b in ran if s == 2] == [1, 2]
    assert all(count == 1 for count in calls.values())
    assert len(ran) == sum(h.get(f"stage{s}.depth", len(st)) for s, st in enumerate(m.stages, 1))
    # the stand-alone network holds only the blocks that run
    assert [len(stage) for stage in m.build(h).stages] == [h.get(f"stage{s}.depth", len(st))
                                                           for s, st in enumerate(m.stages, 1)]


@pytest.mark.parametrize("factory", FACTORIES)
def test_the_stem_sees_the_sampled_resolution(factory):
    m = factory()
    seen = []
    m.stem.register_forward_pre_hook(lambda _, args: seen.append(tuple(args[0].shape[-2:])))
    h = m.max_hparams()
    for r in (m.hyperparameters()["resolution"].low, 11, 16):
        h["resolution"] = r
        m(inputs(size=16), h)
        assert seen[-1] == (r, r)
    m(inputs(size=20))  # None: base resolution, whatever the input size
    assert seen[-1] == (16, 16)
    net = m.build(h | {"resolution": 9})
    net.stem.register_forward_pre_hook(lambda _, args: seen.append(tuple(args[0].shape[-2:])))
    net(inputs())
    assert seen[-1] == (9, 9)


def test_resolution_not_searched_leaves_the_input_alone():
    m = ResNetSupernet(width_mult=0.125)
    seen = []
    m.stem.register_forward_pre_hook(lambda _, args: seen.append(tuple(args[0].shape[-2:])))
    m(inputs(size=12))
    assert seen == [(12, 12)]


# -- checks --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("factory", FACTORIES)
def test_off_range_and_off_grid_hparams_raise_with_the_rule(factory):
    m = factory()
    space = m.hyperparameters()
    h = m.base_hparams()
    bad_range = h | {"stage2.out": space["stage2.out"].high + space["stage2.out"].step}
    for method in (m.build, m.layers, lambda hp: m(inputs(), hp)):
        with pytest.raises(ValueError, match=r"`stage2.out` must be in \[\d+, \d+\], but got stage2.out=\d+"):
            method(bad_range)
    step_names = [n for n, r in space.items() if r.step > 1]
    assert step_names
    name = step_names[0]
    with pytest.raises(ValueError, match=rf"`{name}` must be on the grid .* but got {name}={h[name] + 1}\."):
        m.build(h | {name: h[name] + 1})
    with pytest.raises(ValueError, match=r"`stage2.depth` must be in \[1, 2\], but got stage2.depth=0"):
        m.build(h | {"stage2.depth": 0})
    with pytest.raises(ValueError, match=r"unknown \['stage9.out'\] and missing \[\]"):
        m.build(h | {"stage9.out": 3})
    missing = dict(h)
    del missing["stem.out"]
    with pytest.raises(ValueError, match=r"unknown \[\] and missing \['stem.out'\]"):
        m(inputs(), missing)
    with pytest.raises(ValueError, match="`stem.out` must be an integer"):
        m.build(h | {"stem.out": float(h["stem.out"])})
    with pytest.raises(TypeError, match="`hparams` must be a mapping"):
        m.build([1, 2])


def test_constructor_arguments_are_checked_eagerly():
    with pytest.raises(ValueError, match="`width_mult` must be positive, but got width_mult=0"):
        MobileNetV2Supernet(width_mult=0)
    with pytest.raises(ValueError, match="`in_channels` must be an integer >= 1, but got in_channels=0"):
        ResNetSupernet(in_channels=0)
    with pytest.raises(ValueError, match="`min_scale` <= 1 <= `max_scale`"):
        ResNetSupernet(max_scale=0.9)
    with pytest.raises(ValueError, match=r"`stages\[1\]` must be a 4-tuple"):
        MobileNetV2Supernet(stages=((1, 16, 1, 1), (6, 24, 0, 1)))
    with pytest.raises(ValueError, match="`min_resolution` must be <= `resolution`"):
        MobileNetV2Supernet(resolution=16, min_resolution=20)
    with pytest.raises(ValueError, match="`search_depth` must be a bool"):
        ResNetSupernet(search_depth=1)


def test_slim_layers_check_active_channels():
    conv = SlimConv2d(4, 6, 3)
    with pytest.raises(ValueError, match=r"`out_channels` must be in \[1, 6\]"):
        conv(torch.randn(1, 4, 5, 5), 7)
    with pytest.raises(ValueError, match=r"`in_channels` must be in \[1, 4\]"):
        conv(torch.randn(1, 5, 5, 5), 3)
    with pytest.raises(ValueError, match="keeps the channel count"):
        SlimConv2d(4, 4, 3, depthwise=True)(torch.randn(1, 3, 5, 5), 2)
    with pytest.raises(ValueError, match="keeps the channel count"):
        SlimConv2d(4, 6, 3, depthwise=True)
    assert SlimConv2d(4, 4, 3, stride=2, depthwise=True)(torch.randn(2, 3, 5, 5), 3).shape == (2, 3, 3, 3)
    assert SlimLinear(8, 2)(torch.randn(3, 5)).shape == (3, 2)
    assert SlimBatchNorm2d(8)(torch.randn(2, 5, 3, 3)).shape == (2, 5, 3, 3)


# -- gradients -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("factory", FACTORIES)
def test_gradients_reach_only_the_active_slices(factory):
    torch.manual_seed(0)
    m = factory()
    h = m.min_hparams() | {"resolution": 16}
    h = {k: v for k, v in h.items() if k in m.hyperparameters()}
    loss = F.cross_entropy(m(inputs(), h), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    net = m.build(h)
    active = {name: p.shape for name, p in net.named_parameters()}
    for name, p in m.named_parameters():
        if name not in active:  # a block past the sampled depth: never ran
            assert p.grad is None, name
            continue
        inside = tuple(slice(0, n) for n in active[name])
        grad = p.grad.clone()
        assert grad[inside].abs().sum() > 0, name
        grad[inside] = 0
        assert torch.count_nonzero(grad) == 0, name  # the rest of the weight is untouched
    assert any(name not in active for name, _ in m.named_parameters())  # depth 1 skipped something


def test_snap_rounds_a_continuous_sample_onto_the_grids():
    m = mobilenet()
    space = m.hyperparameters()
    noisy = {name: r.base + 0.4 * r.step for name, r in space.items()}
    assert m.snap(noisy) == m.base_hparams()
    far = {name: r.high + 10.0 * r.step for name, r in space.items()}
    assert m.snap(far) == m.max_hparams()
    assert m.validate(m.snap({name: r.low - 3.7 for name, r in space.items()})) == m.min_hparams()
