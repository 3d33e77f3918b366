import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesnas.optim import (
    BernoulliNaturalGradient,
    CategoricalNaturalGradient,
    fisher_sqrt_image,
)

floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(grads=st.lists(floats, min_size=5, max_size=5), lr=st.floats(1e-6, 50.0),
       adaptive=st.booleans())
def test_bernoulli_theta_stays_in_its_clipped_domain(grads, lr, adaptive):
    theta = torch.nn.Parameter(torch.full((5,), 0.5, dtype=torch.float64))
    opt = BernoulliNaturalGradient([theta], lr=lr, adaptive=adaptive, lr_max=1.0)
    for _ in range(3):
        theta.grad = torch.tensor(grads, dtype=torch.float64)
        opt.step()
        assert bool((theta >= 1 / 5 - 1e-12).all() and (theta <= 1 - 1 / 5 + 1e-12).all())
        assert math.isfinite(opt.param_groups[0]["lr"])


@settings(max_examples=60, deadline=None)
@given(grads=st.lists(floats, min_size=7, max_size=7), lr=st.floats(1e-6, 50.0),
       adaptive=st.booleans())
def test_categorical_theta_stays_on_the_clipped_simplex(grads, lr, adaptive):
    a = torch.nn.Parameter(torch.tensor([[0.2, 0.3, 0.5]], dtype=torch.float64))
    b = torch.nn.Parameter(torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=torch.float64))
    opt = CategoricalNaturalGradient([a, b], lr=lr, adaptive=adaptive, lr_max=1.0)
    d = 2
    for _ in range(3):
        a.grad = torch.tensor([grads[:3]], dtype=torch.float64)
        b.grad = torch.tensor([grads[3:]], dtype=torch.float64)
        opt.step()
        for p, k in ((a, 3), (b, 4)):
            assert abs(float(p.detach().sum()) - 1) < 1e-6
            assert float(p.detach().min()) >= 1 / (d * (k - 1)) - 1e-7


def test_default_step_sizes_are_one_over_d_and_over_free_parameters():
    assert BernoulliNaturalGradient([torch.full((31,), 0.5)]).param_groups[0]["lr"] == 1 / 31
    opt = CategoricalNaturalGradient([torch.full((4, 5), 0.2), torch.full((2, 3), 1 / 3)])
    assert opt.param_groups[0]["lr"] == pytest.approx(1 / (4 * 4 + 2 * 2))
    ad = CategoricalNaturalGradient([torch.full((4, 5), 0.2)], adaptive=True)
    assert ad.param_groups[0]["lr"] == pytest.approx(16 ** -0.5)


def test_fisher_factor_gives_the_fisher_norm():
    theta = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    delta = torch.tensor([0.05, -0.02, 0.04, -0.07], dtype=torch.float64)
    tb, tk = theta[:-1], theta[-1]
    fisher = torch.diag(1 / tb) + torch.ones(3, 3, dtype=torch.float64) / tk  # app. A eq. 6
    v = fisher_sqrt_image(theta, delta)
    assert float(v @ v) == pytest.approx(float(delta[:-1] @ fisher @ delta[:-1]), rel=1e-12)


def _transcription(thetas, samples, steps):
    """pdas2019 app. C written out directly in NumPy, u = (+1, −1), λ = 2."""
    thetas = [t.copy() for t in thetas]
    n_free = sum(len(t) - 1 for t in thetas)
    D = len(thetas)
    eta = n_free ** -0.5
    s = np.zeros(n_free)
    gamma = 0.0
    history = []
    for step in range(steps):
        ng = []
        for i, t in enumerate(thetas):
            m1 = np.eye(len(t))[samples[step][0][i]]
            m2 = np.eye(len(t))[samples[step][1][i]]
            ng.append(0.5 * (1 * (m1 - t) + (-1) * (m2 - t)))
        vs = []
        for t, g in zip(thetas, ng, strict=True):
            tb, tk = t[:-1], t[-1]
            vs.append(g[:-1] / np.sqrt(tb) + np.sqrt(tb) * g[:-1].sum() / (tk + np.sqrt(tk)))
        v = np.concatenate(vs)
        for i, t in enumerate(thetas):
            t = t + eta * ng[i]
            tmin = 1 / (D * (len(t) - 1))
            t = np.maximum(t, tmin)
            t = t + (1 - t.sum()) / (t - tmin).sum() * (t - tmin)
            thetas[i] = t
        s = (1 - eta) * s + np.sqrt(eta * (2 - eta)) * v / np.sqrt(0.5 * n_free)
        gamma = (1 - eta) ** 2 * gamma + eta * (2 - eta)
        eta = min(n_free ** -0.5, max(0.0, eta * np.exp(eta * (s @ s / 1.5 - gamma))))
        history.append(([t.copy() for t in thetas], eta, gamma))
    return history


def test_adaptive_step_matches_a_direct_transcription_of_pdas2019_appendix_c():
    rng = np.random.RandomState(0)
    ks = [2, 3, 5]
    init = [rng.dirichlet(np.ones(k)) for k in ks]
    samples = [[[rng.randint(k) for k in ks] for _ in range(2)] for _ in range(6)]
    expected = _transcription(init, samples, 6)
    params = [torch.nn.Parameter(torch.tensor(t)[None]) for t in init]
    opt = CategoricalNaturalGradient(params, adaptive=True)
    for step in range(6):
        for i, p in enumerate(params):
            # Euclidean gradient of −(1/λ) Σ u log p_θ(M) in the full θ: −(1/2)(m1 − m2)/θ.
            m1 = torch.eye(ks[i], dtype=torch.float64)[samples[step][0][i]]
            m2 = torch.eye(ks[i], dtype=torch.float64)[samples[step][1][i]]
            p.grad = (-0.5 * (m1 - m2) / p.detach()[0])[None]
        opt.step()
        thetas, eta, gamma = expected[step]
        for p, t in zip(params, thetas, strict=True):
            np.testing.assert_allclose(p.detach()[0].numpy(), t, rtol=1e-10, atol=1e-12)
        assert opt.param_groups[0]["lr"] == pytest.approx(eta, rel=1e-10)
        assert opt.param_groups[0]["gamma"] == pytest.approx(gamma, rel=1e-10)


def test_bernoulli_adaptive_agrees_with_categorical_k2():
    torch.manual_seed(0)
    theta_b = torch.nn.Parameter(torch.rand(6, dtype=torch.float64) * 0.6 + 0.2)
    theta_c = torch.nn.Parameter(torch.stack([theta_b.detach(), 1 - theta_b.detach()], -1))
    ob = BernoulliNaturalGradient([theta_b], adaptive=True)
    oc = CategoricalNaturalGradient([theta_c], adaptive=True)
    oc.param_groups[0]["lr_max"] = ob.param_groups[0]["lr_max"]
    for _ in range(5):
        m = torch.randint(0, 2, (2, 6)).double()
        u = torch.tensor([1.0, -1.0], dtype=torch.float64)
        nat = -(u[:, None] * (m - theta_b.detach())).mean(0)
        theta_b.grad = nat / (theta_b.detach() * (1 - theta_b.detach()))
        theta_c.grad = torch.stack([nat / theta_c.detach()[:, 0], -nat / theta_c.detach()[:, 1]], -1)
        ob.step()
        oc.step()
        torch.testing.assert_close(theta_b.detach(), theta_c.detach()[:, 0])
        assert ob.param_groups[0]["lr"] == pytest.approx(oc.param_groups[0]["lr"])


def test_state_dict_round_trip_continues_identically():
    def make(theta):
        return CategoricalNaturalGradient([theta], adaptive=True)

    torch.manual_seed(1)
    grads = [torch.randn(3, 4, dtype=torch.float64) for _ in range(8)]
    a = torch.nn.Parameter(torch.full((3, 4), 0.25, dtype=torch.float64))
    opt_a = make(a)
    for g in grads[:4]:
        a.grad = g.clone()
        opt_a.step()
    buf = io.BytesIO()
    torch.save({"opt": opt_a.state_dict(), "theta": a.detach().clone()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    b = torch.nn.Parameter(saved["theta"])
    opt_b = make(b)
    opt_b.load_state_dict(saved["opt"])
    for g in grads[4:]:
        a.grad, b.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    assert torch.equal(a, b)
    assert opt_a.param_groups[0]["lr"] == opt_b.param_groups[0]["lr"]
    assert torch.equal(opt_a.state[a]["s"], opt_b.state[b]["s"])


def test_bad_inputs_state_the_rule_and_the_value():
    with pytest.raises(ValueError, match=r"`lr` must be positive, but got lr=-1.0"):
        BernoulliNaturalGradient([torch.full((2,), 0.5)], lr=-1.0)
    with pytest.raises(ValueError, match=r"θ must lie in \[0, 1\], but got values in \[0.5, 1.5\]"):
        BernoulliNaturalGradient([torch.tensor([0.5, 1.5])])
    with pytest.raises(ValueError, match=r"rows must be non-negative and sum to 1"):
        CategoricalNaturalGradient([torch.tensor([[0.5, 0.6]])])
    with pytest.raises(ValueError, match=r"K >= 2, but got shape \(3, 1\)"):
        CategoricalNaturalGradient([torch.ones(3, 1)])
    with pytest.raises(ValueError, match=r"`lr_max` must be <= 2.*lr_max=3"):
        BernoulliNaturalGradient([torch.full((2,), 0.5)], adaptive=True, lr_max=3)
    with pytest.raises(ValueError, match=r"`alpha` must be positive, but got alpha=0"):
        BernoulliNaturalGradient([torch.full((2,), 0.5)], alpha=0)


def test_degenerate_clip_range_needs_an_explicit_theta_min():
    with pytest.raises(ValueError, match=r"d >= 3 bits.*got d=1; pass theta_min"):
        BernoulliNaturalGradient([torch.full((1,), 0.5)])
    theta = torch.nn.Parameter(torch.full((1,), 0.5))
    opt = BernoulliNaturalGradient([theta], theta_min=0.05)
    theta.grad = torch.full((1,), 1e3)
    opt.step()
    assert float(theta) == pytest.approx(0.05)


def test_pyro_optim_can_wrap_it():
    from pyro.optim import PyroOptim

    theta = torch.nn.Parameter(torch.full((10,), 0.5))
    wrapped = PyroOptim(BernoulliNaturalGradient, {"lr": 0.1, "dim": 10})
    theta.grad = -torch.ones(10) / 0.25  # pushes every θ up
    wrapped([theta])
    assert bool((theta > 0.5).all())
