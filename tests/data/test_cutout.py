"""Cutout: one clipped square per image, reproducible, on the weights' data only."""

import pytest
import torch

from bayesnas.data.cutout import cutout


def test_one_square_per_image_clipped_at_the_borders():
    x = torch.ones(200, 3, 9, 7)
    out = cutout(x, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, torch.ones_like(x))  # the input is left alone
    zero = out == 0
    assert torch.equal(zero[:, 0], zero[:, 1]) and torch.equal(zero[:, 0], zero[:, 2])  # every channel
    for img in zero[:, 0]:
        rows, cols = img.any(1).nonzero().flatten(), img.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4
        assert rows.tolist() == list(range(int(rows[0]), int(rows[-1]) + 1))  # contiguous
        assert int(img.sum()) == len(rows) * len(cols)  # a full rectangle
    full = [int(img.sum()) for img in zero[:, 0]]
    assert 16 in full and min(full) < 16  # whole squares inside, clipped ones at the borders


def test_the_same_generator_state_gives_the_same_squares():
    x = torch.randn(8, 1, 6, 6)
    a = cutout(x, 3, generator=torch.Generator().manual_seed(4))
    b = cutout(x, 3, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)


@pytest.mark.parametrize("x, size, message", [
    (torch.ones(2, 8), 2, r"cutout takes images \(N, C, H, W\), but got shape \(2, 8\)"),
    (torch.ones(2, 1, 4, 4), 0, "`size` must be an integer >= 1, but got size=0"),
])
def test_bad_input_states_the_rule(x, size, message):
    with pytest.raises(ValueError, match=message):
        cutout(x, size, generator=torch.Generator())
