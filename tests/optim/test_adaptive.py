"""The adaptive step size against an independent NumPy transcription of pdas2019 app. C."""

import math

import numpy as np
import pytest
import torch

from bayesnas.optim import BernoulliNaturalGradient, CategoricalNaturalGradient

KS = [2, 3, 3, 5]  # the variables, in parameter order: (1, 2), (2, 3), (1, 5)
SHAPES = [(1, 2), (2, 3), (1, 5)]
STEPS = 6


def _app_c_transcription(thetas, samples, steps, alpha=1.5):
    """pdas2019 eq. (4), app. B eqs. (11)-(12) and app. C, written out per variable with
    λ = 2 and u = (+1, −1). Returns, per step, (θ per variable, s, γ, η after the step)."""
    thetas = [np.array(t, dtype=np.float64) for t in thetas]
    D = len(thetas)
    n_free = sum(len(t) - 1 for t in thetas)
    eta_max = n_free**-0.5
    eta, gamma, s = eta_max, 0.0, np.zeros(n_free)
    trace = (1**2 + (-1) ** 2) / 2**2 * n_free  # Tr(F Cov) = ½ Σ(K−1)
    history = []
    for step in range(steps):
        # Estimated natural gradient (1/λ) Σ uₙ (Mₙ − θ), eq. (4).
        grads = []
        for i, t in enumerate(thetas):
            m1 = np.eye(len(t))[samples[step][0][i]]
            m2 = np.eye(len(t))[samples[step][1][i]]
            grads.append((1.0 * (m1 - t) + (-1.0) * (m2 - t)) / 2)
        # v = Aᵀ Δθ̄ with the factor of eq. (14), element by element.
        v = []
        for t, g in zip(thetas, grads, strict=True):
            K = len(t)
            tk = t[K - 1]
            total = sum(g[j] for j in range(K - 1))
            for j in range(K - 1):
                v.append(g[j] / math.sqrt(t[j]) + math.sqrt(t[j]) * total / (tk + math.sqrt(tk)))
        v = np.array(v)
        # θ update (eq. (4)) and projection (app. B).
        for i, t in enumerate(thetas):
            K = len(t)
            t = t + eta * grads[i]
            tmin = 1.0 / (D * (K - 1))
            t = np.array([max(x, tmin) for x in t])  # eq. (11)
            t = t + (1 - t.sum()) / (t - tmin).sum() * (t - tmin)  # eq. (12)
            thetas[i] = t
        s = (1 - eta) * s + math.sqrt(eta * (2 - eta)) * v / math.sqrt(trace)
        gamma = (1 - eta) ** 2 * gamma + eta * (2 - eta)
        eta = min(eta_max, max(0.0, eta * math.exp(eta * (s @ s / alpha - gamma))))  # eq. (13)
        history.append(([t.copy() for t in thetas], s.copy(), gamma, eta))
    return history


def _split(variables):
    out, i = [], 0
    for shape in SHAPES:
        out.append(np.stack(variables[i : i + shape[0]]))
        i += shape[0]
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_adaptive_categorical_matches_a_direct_transcription_of_app_c(seed):
    rng = np.random.RandomState(seed)
    init = [rng.dirichlet(np.ones(k)) for k in KS]
    samples = [[[rng.randint(k) for k in KS] for _ in range(2)] for _ in range(STEPS)]
    expected = _app_c_transcription(init, samples, STEPS)

    params = [torch.nn.Parameter(torch.tensor(t)) for t in _split(init)]
    opt = CategoricalNaturalGradient(params, adaptive=True)
    assert opt.param_groups[0]["lr"] == pytest.approx(sum(k - 1 for k in KS) ** -0.5)
    u = torch.tensor([1.0, -1.0], dtype=torch.float64)
    for step in range(STEPS):
        opt.zero_grad()
        # Autograd of the surrogate −(1/λ) Σ uₙ log p_θ(Mₙ) (what the loss object hands over).
        h = np.array(samples[step])  # (λ, variables)
        cols = _split([h[:, i] for i in range(len(KS))])  # per param: (rows, λ)
        surrogate = 0.0
        for p, c in zip(params, cols, strict=True):
            log_p = torch.distributions.Categorical(probs=p).log_prob(torch.tensor(c).T)
            surrogate = surrogate - (u[:, None] * log_p).sum() / 2
        surrogate.backward()
        opt.step()

        thetas, s, gamma, eta = expected[step]
        for p, t in zip(params, _split(thetas), strict=True):
            np.testing.assert_allclose(p.detach().numpy(), t, rtol=1e-10, atol=1e-13)
        got_s = np.concatenate([opt.state[p]["s"].flatten().numpy() for p in params])
        np.testing.assert_allclose(got_s, s, rtol=1e-10, atol=1e-13)
        assert opt.param_groups[0]["gamma"] == pytest.approx(gamma, rel=1e-12)
        assert opt.param_groups[0]["lr"] == pytest.approx(eta, rel=1e-10)
    for p, (rows, k) in zip(params, SHAPES, strict=True):
        assert opt.state[p]["s"].shape == (rows, k - 1)  # shaped like the reduced parameter
        assert opt.state[p]["step"] == STEPS


def test_bernoulli_adaptive_agrees_with_categorical_k2():
    """Bernoulli = categorical with K = 2, θ̄ = θ, θ_K = 1 − θ: same θ, s, γ, η (and the
    clipping ranges [1/d, 1 − 1/d] and θ ≥ 1/(D(K − 1)) = 1/d coincide)."""
    g = torch.Generator().manual_seed(0)
    d = 6
    theta_b = torch.nn.Parameter(torch.rand(d, generator=g, dtype=torch.float64) * 0.6 + 0.2)
    theta_c = torch.nn.Parameter(torch.stack([theta_b.detach(), 1 - theta_b.detach()], -1))
    ob = BernoulliNaturalGradient([theta_b], adaptive=True)
    oc = CategoricalNaturalGradient([theta_c], adaptive=True)
    assert ob.param_groups[0]["lr"] == oc.param_groups[0]["lr"]
    u = torch.tensor([1.0, -1.0], dtype=torch.float64)
    for _ in range(8):
        m = torch.randint(0, 2, (2, d), generator=g)
        ob.zero_grad()
        oc.zero_grad()
        (-(u[:, None] * torch.distributions.Bernoulli(probs=theta_b).log_prob(m.double())).sum()
         / 2).backward()
        # category 0 of the categorical is the bit's 1.
        (-(u[:, None] * torch.distributions.Categorical(probs=theta_c).log_prob(1 - m)).sum()
         / 2).backward()
        ob.step()
        oc.step()
        torch.testing.assert_close(theta_b.detach(), theta_c.detach()[:, 0])
        torch.testing.assert_close(ob.state[theta_b]["s"], oc.state[theta_c]["s"][:, 0])
        assert ob.param_groups[0]["lr"] == pytest.approx(oc.param_groups[0]["lr"], rel=1e-10)
        assert ob.param_groups[0]["gamma"] == pytest.approx(oc.param_groups[0]["gamma"])
    assert ob.state[theta_b]["s"].shape == theta_b.shape


def test_adaptive_lr_shrinks_under_pure_noise_and_stays_at_max_under_a_consistent_signal():
    d = 20
    noise = torch.nn.Parameter(torch.full((d,), 0.5, dtype=torch.float64))
    signal = torch.nn.Parameter(torch.full((d,), 0.5, dtype=torch.float64))
    on = BernoulliNaturalGradient([noise], adaptive=True)
    os_ = BernoulliNaturalGradient([signal], adaptive=True)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        # noise: M ~ p_θ with ±1 utilities unrelated to M; signal: M₁ = 1, M₂ = 0 always.
        m = torch.bernoulli(noise.detach().expand(2, d), generator=g)
        noise.grad = -(m[0] - m[1]) / 2 / (noise.detach() * (1 - noise.detach()))
        signal.grad = -torch.full((d,), 0.5, dtype=torch.float64) / (
            signal.detach() * (1 - signal.detach())
        )
        on.step()
        os_.step()
    assert on.param_groups[0]["lr"] < 0.5 * d**-0.5
    assert os_.param_groups[0]["lr"] == pytest.approx(d**-0.5)
