import math

import pytest
import torch

from bayesnas.infer import ranking_utility


@pytest.mark.parametrize("lam", [2, 3, 4, 5, 8, 9, 32])
def test_best_and_worst_quarter_get_plus_minus_one(lam):
    losses = torch.randperm(lam).double()
    u = ranking_utility(losses)
    k = math.ceil(lam / 4)
    order = torch.argsort(losses)
    assert torch.equal(u[order[:k]], torch.ones(k, dtype=u.dtype))
    assert torch.equal(u[order[lam - k :]], -torch.ones(k, dtype=u.dtype))
    assert torch.equal(u[order[k : lam - k]], torch.zeros(lam - 2 * k, dtype=u.dtype))


def test_ties_share_the_utility_of_the_ranks_they_occupy():
    assert ranking_utility(torch.tensor([1.0, 1.0])).tolist() == [0.0, 0.0]
    # λ = 4, k = 1: ranks utilities (+1, 0, 0, -1); the two best tie → both get (1 + 0) / 2.
    u = ranking_utility(torch.tensor([0.5, 0.5, 2.0, 3.0]))
    assert u.tolist() == [0.5, 0.5, 0.0, -1.0]
    # Equal-loss groups are invariant to their order.
    v = ranking_utility(torch.tensor([3.0, 0.5, 2.0, 0.5]))
    assert v.tolist() == [-1.0, 0.5, 0.0, 0.5]


def test_utility_is_invariant_to_order_preserving_transformations():
    losses = torch.tensor([0.3, 2.0, 0.1, 5.0, 0.7])
    assert torch.equal(ranking_utility(losses), ranking_utility(torch.exp(3 * losses) - 7))


def test_bad_inputs_state_the_rule_and_the_value():
    with pytest.raises(ValueError, match=r"λ >= 2 samples, but got λ=1"):
        ranking_utility(torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"vector of λ values, but got shape \(2, 2\)"):
        ranking_utility(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="finite"):
        ranking_utility(torch.tensor([1.0, float("nan")]))
