"""The one base of the optimizers: per-parameter options read from the param group, the
shared step skeleton and its error handling."""

import pytest
import torch

from bayesnas.optim import (
    AdaptiveNaturalGradient,
    BernoulliNaturalGradient,
    CategoricalNaturalGradient,
    GaussianNaturalGradient,
    NaturalGradientOptimizer,
    SharedBernoulliNaturalGradient,
)

DT = torch.float64


def test_every_optimizer_derives_from_the_one_base():
    for cls in (BernoulliNaturalGradient, CategoricalNaturalGradient, SharedBernoulliNaturalGradient):
        assert issubclass(cls, AdaptiveNaturalGradient)
    for cls in (AdaptiveNaturalGradient, GaussianNaturalGradient):
        assert issubclass(cls, NaturalGradientOptimizer)


def _rates(*values: float) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor(values, dtype=DT))


def test_shared_rate_group_sizes_are_read_from_each_param_group():
    """U per parameter and per group, including a group added later with the constructor's U."""
    a, b, c, d = _rates(0.3, 0.6), _rates(0.4, 0.5, 0.7), _rates(0.45, 0.55), _rates(0.35, 0.65)
    groups = [{"params": [a, b], "group_size": [1, 16]}, {"params": [c]}]
    opt = SharedBernoulliNaturalGradient(groups, group_size=4, lr=0.1, theta_min=0.01)
    assert groups[1] == {"params": [c]}  # the caller's dicts are left alone
    opt.add_param_group({"params": [d]})
    assert [g["group_size"] for g in opt.param_groups] == [[1, 16], 4, 4]
    before = [p.detach().clone() for p in (a, b, c, d)]
    grads = [torch.linspace(-1.0, 2.0, p.numel(), dtype=DT) for p in (a, b, c, d)]
    for p, g in zip((a, b, c, d), grads, strict=True):
        p.grad = g.clone()
    opt.step()
    for p, t, g, u in zip((a, b, c, d), before, grads, (1, 16, 4, 4), strict=True):
        torch.testing.assert_close(p.detach(), t - 0.1 * t * (1 - t) / u * g, rtol=0, atol=1e-15)


def test_a_shared_rate_state_dict_keeps_its_group_sizes():
    a, b = _rates(0.3, 0.6, 0.5), _rates(0.4, 0.5)
    opt = SharedBernoulliNaturalGradient([a, b], group_size=[1, 8], adaptive=True)
    a.grad, b.grad = torch.ones(3, dtype=DT), -torch.ones(2, dtype=DT)
    opt.step()
    state = opt.state_dict()
    assert state["param_groups"][0]["group_size"] == (1, 8)
    other = SharedBernoulliNaturalGradient([_rates(0.3, 0.6, 0.5), _rates(0.4, 0.5)], group_size=1)
    other.load_state_dict(state)
    assert other.param_groups[0]["group_size"] == (1, 8)


@pytest.mark.parametrize(
    ("make", "shapes"),
    [
        (lambda ps: BernoulliNaturalGradient(ps, dim=5), [(3,), (2,)]),
        (lambda ps: SharedBernoulliNaturalGradient(ps, group_size=[1, 3]), [(3,), (2,)]),
        (lambda ps: GaussianNaturalGradient(ps), [(3,), (2,)]),
    ],
)
def test_a_sparse_gradient_is_rejected_before_anything_moves(make, shapes):
    params = [torch.nn.Parameter(torch.full(s, 0.5, dtype=DT)) for s in shapes]
    opt = make(params)
    params[0].grad = torch.ones(shapes[0], dtype=DT)
    params[1].grad = torch.ones(shapes[1], dtype=DT).to_sparse()
    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        opt.step()
    assert all(torch.equal(p.detach(), torch.full_like(p, 0.5)) for p in params)
    assert len(opt.state) == 0


def test_gaussian_variance_group_steps_each_tensor_that_has_a_gradient():
    """In a group [μ, σ²] μ's step uses σ² before σ² moves; a tensor without a gradient is
    left alone, like any other parameter."""
    mu = torch.nn.Parameter(torch.tensor([2.0, 3.0], dtype=DT))
    var = torch.nn.Parameter(torch.tensor([0.5, 2.0], dtype=DT))
    opt = GaussianNaturalGradient([{"params": [mu, var], "adapt_sigma": True}], lr=0.5, sigma_lr=0.1)
    mu.grad, var.grad = torch.tensor([1.0, -1.0], dtype=DT), torch.tensor([0.2, 0.1], dtype=DT)
    opt.step()
    torch.testing.assert_close(mu.detach(), torch.tensor([2.0 - 0.5 * 0.5, 3.0 + 0.5 * 2.0], dtype=DT))
    torch.testing.assert_close(var.detach(), torch.tensor([0.5 - 0.1 * 0.2 * 2 * 0.25,
                                                          2.0 - 0.1 * 0.1 * 2 * 4.0], dtype=DT))
    mu.grad = None
    before = mu.detach().clone()
    opt.step()
    assert torch.equal(mu.detach(), before)
    assert opt.state[mu]["step"] == 1 and opt.state[var]["step"] == 2
