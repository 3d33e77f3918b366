"""The NAS-Bench-201 cell space: the cell computes its DAG exactly, `none` cuts paths, and the
costs are the closed forms."""

import pytest
import torch
from pyro import poutine

from bayesnas.models import get_space
from bayesnas.models.nb201_cell import NB201_EDGES, NB201_OPS, SITE
from bayesnas.sites import arch_plate, discover_sites

NONE, SKIP, CONV1, CONV3, POOL = range(5)


def _space(**options):
    torch.manual_seed(0)
    return get_space("nb201-cell").build((1, 8, 8), 10, **options).eval()


def _logits(net, x, ops):
    with arch_plate(1):
        return poutine.condition(net, data={SITE: torch.tensor([ops])})(x)[0]


def test_one_categorical_site_of_six_edges_and_five_ops():
    spec = discover_sites(_space(), torch.zeros(1, 1, 8, 8))[SITE]
    assert spec.shape == (6,) and spec.num_categories == 5 and tuple(spec.choices) == NB201_OPS
    assert [tuple(e) for e in spec.edges] == [(f"n{i}", f"n{j}") for i, j in NB201_EDGES]


def test_the_cell_is_the_sum_over_its_edges_of_each_op():
    net = _space()
    h = torch.randn(3, 16, 8, 8)
    ops = [CONV3, SKIP, CONV1, POOL, NONE, CONV3]
    conv = net.convs[0]
    n1 = conv[0]["nor_conv_3x3"](h)
    n2 = h + conv[2]["nor_conv_1x1"](n1)
    pool = torch.nn.functional.avg_pool2d(h, 3, stride=1, padding=1, count_include_pad=False)
    n3 = pool + conv[5]["nor_conv_3x3"](n2)  # edge 1 -> 3 is none
    assert torch.allclose(net.cell(0, h, [NB201_OPS[k] for k in ops]), n3)


def test_a_cell_whose_output_receives_only_none_predicts_the_same_for_every_image():
    net = _space()
    x = torch.randn(4, 1, 8, 8)
    logits = _logits(net, x, [CONV3, CONV3, CONV3, NONE, NONE, NONE])
    assert torch.allclose(logits, net.classifier.bias.expand(4, 10))
    assert not torch.allclose(_logits(net, x, [CONV3] * 6), net.classifier.bias.expand(4, 10))


def test_the_arch_string_is_nas_bench_201s():
    net = _space()
    arch = {SITE: [CONV3, SKIP, NONE, POOL, CONV1, CONV3]}
    assert net.arch_string(arch) == ("|nor_conv_3x3~0|+|skip_connect~0|none~1|+"
                                     "|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|")


def test_parameters_and_macs_are_the_closed_forms():
    net = _space(channels=4, cells=2)
    arch = {SITE: [CONV3, CONV1, NONE, SKIP, POOL, CONV3]}  # kernels 9 + 1 + 9 = 19 per cell
    stem, cell, head = 1 * 4 * 9, 2 * 19 * 4 * 4, 4 * 10 + 10
    assert net.num_weights_used(arch) == stem + cell + head
    assert net.macs(arch) == stem * 64 + cell * 64 + 4 * 10
    # Every weight of the conv edges the architecture uses trains; the others stay untouched.
    with arch_plate(1):
        poutine.condition(net.train(), data={SITE: torch.tensor([arch[SITE]])})(
            torch.randn(2, 1, 8, 8)).sum().backward()
    used = sum(p.numel() for p in net.parameters() if p.grad is not None and p.grad.abs().sum() > 0)
    assert used == net.num_weights_used(arch)


def test_bad_options_and_inputs_are_one_line_naming_them():
    with pytest.raises(ValueError, match=r"`channels` must be an integer >= 1, but got channels=0"):
        get_space("nb201-cell").build((1, 8, 8), 10, channels=0)
    with pytest.raises(ValueError, match=r"takes images \(C, H, W\), but got input_shape=\(64,\)"):
        get_space("nb201-cell").build((64,), 10)
