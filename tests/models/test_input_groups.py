"""The input-groups space: bit g gates exactly the features of group g."""

import pytest
import torch
from pyro import poutine

from bayesnas.models import get_space
from bayesnas.sites import arch_plate, discover_sites


def _logits(net, x, bits):
    with arch_plate(1):
        return poutine.condition(net, data={"inputs": torch.tensor([bits])})(x)[0]


def test_a_dropped_group_does_not_reach_the_output_and_a_kept_one_does():
    torch.manual_seed(0)
    net = get_space("input-groups").build((80,), 10)
    assert discover_sites(net, torch.zeros(1, 80))["inputs"].shape == (10,)
    x = torch.randn(5, 80)
    changed = x.clone()
    changed[:, 64:72] += 10.0  # group 8: the first noise group
    bits = [1] * 8 + [0, 1]
    assert torch.equal(_logits(net, x, bits), _logits(net, changed, bits))
    bits[8] = 1
    assert not torch.allclose(_logits(net, x, bits), _logits(net, changed, bits))


def test_groups_must_divide_the_features():
    with pytest.raises(ValueError, match="must divide the 80 input features, but got group_size=7"):
        get_space("input-groups").build((80,), 10, group_size=7)
