"""The inpainting masks of pdas2019 §4.2: exact pixel fractions, one mask per image, seeded."""

import re

import pytest
import torch

from bayesnas.data.masks import apply_mask, make_masks


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("side", [8, 16, 64])
def test_center_masks_a_central_square_of_half_the_side(side):
    m = make_masks("center", 3, side, side, generator=_gen())
    assert m.shape == (3, 1, side, side) and m.dtype == torch.bool
    assert all(float(f) == 0.25 for f in m.float().mean((1, 2, 3)))
    q = side // 4
    assert bool(m[:, :, q : q + side // 2, q : q + side // 2].all())  # the block is centred
    assert not bool(m[:, :, :q].any()) and not bool(m[:, :, :, q + side // 2 :].any())


@pytest.mark.parametrize("h, w", [(10, 10), (16, 16), (7, 9)])
def test_pixel_masks_exactly_eighty_percent_of_each_image(h, w):
    m = make_masks("pixel", 50, h, w, generator=_gen())
    counts = m.flatten(1).sum(1)
    assert bool((counts == round(0.8 * h * w)).all())
    assert len({tuple(x.flatten().tolist()) for x in m}) == 50  # one mask per image
    # Every pixel is masked about 80 % of the time over many images (uniform choice).
    freq = make_masks("pixel", 4000, h, w, generator=_gen(1)).float().mean(0)
    assert float((freq - round(0.8 * h * w) / (h * w)).abs().max()) < 0.04


def test_half_masks_a_random_vertical_or_horizontal_half():
    m = make_masks("half", 400, 16, 16, generator=_gen())
    assert all(float(f) == 0.5 for f in m.float().mean((1, 2, 3)))
    halves = {"top": m[:, 0, :8].all((1, 2)), "bottom": m[:, 0, 8:].all((1, 2)),
              "left": m[:, 0, :, :8].all((1, 2)), "right": m[:, 0, :, 8:].all((1, 2))}
    assert bool(sum(h.long() for h in halves.values()).eq(1).all())  # exactly one half each
    assert all(60 < int(h.sum()) < 140 for h in halves.values())  # each about 1/4 of the time


@pytest.mark.parametrize("kind", ["center", "pixel", "half"])
def test_masks_repeat_with_the_seed(kind):
    a = make_masks(kind, 8, 12, 12, generator=_gen(3))
    b = make_masks(kind, 8, 12, 12, generator=_gen(3))
    assert torch.equal(a, b)
    if kind != "center":
        assert not torch.equal(a, make_masks(kind, 8, 12, 12, generator=_gen(4)))


def test_apply_mask_zeroes_the_masked_pixels_of_every_channel():
    x = torch.rand(4, 3, 8, 8) + 0.1
    m = make_masks("pixel", 4, 8, 8, generator=_gen())
    y = apply_mask(x, m)
    assert bool((y[m.expand_as(y)] == 0).all())
    assert torch.equal(y[~m.expand_as(y)], x[~m.expand_as(x)])


@pytest.mark.parametrize("args, message", [
    (("square", 1, 8, 8), "`kind` must be one of ('center', 'pixel', 'half'), but got kind='square'"),
    (("pixel", 1, 1, 8), "`height` must be an integer >= 2, but got height=1"),
])
def test_bad_mask_arguments_state_the_rule_and_the_value(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_masks(*args)
