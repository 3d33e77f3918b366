"""LogUniform prior and the analytic KL(Normal ‖ LogUniform) of Molchanov et al. (2017) eq. 14."""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from scipy import integrate
from torch.distributions import kl_divergence

from bayesnas.distributions import (
    K1,
    LOG_ALPHA_MAX,
    LOG_ALPHA_MIN,
    LogUniform,
    kl_from_log_alpha,
    kl_normal_log_uniform,
    log_alpha,
)


def _exact_kl_up_to_constant(log_alpha: float) -> float:
    """KL(N(μ, σ²) ‖ 1/|w|) + const = E_ε log|ε + α^{-1/2}|, ε ~ N(0, 1).

    −H(N) = −½ log(2πe) − ½ log α − log|μ| and E log|w| = log|μ| + ½ log α + E log|ε + α^{-1/2}|
    with w = μ(1 + √α ε); the log|μ| and log α terms cancel.
    """
    m = math.exp(-0.5 * log_alpha)

    def integrand(e: float) -> float:
        return math.exp(-0.5 * e * e) / math.sqrt(2 * math.pi) * math.log(abs(e + m))

    # The integrable log singularity at ε = −m is a breakpoint; beyond |ε| = 40 φ(ε) < 1e-340.
    value, abserr = integrate.quad(integrand, -40.0, 40.0, points=[-m], limit=400)
    assert abserr < 1e-6
    return value


def test_kl_approximation_matches_numerical_integration_up_to_its_constant():
    grid = np.linspace(-6.0, 6.0, 49)
    exact = np.array([_exact_kl_up_to_constant(x) for x in grid])
    approx = kl_from_log_alpha(torch.tensor(grid, dtype=torch.float64)).numpy()
    diff = exact - approx
    # The same constant everywhere, up to the fit's error (Molchanov et al. report ~0.01).
    assert diff.max() - diff.min() < 0.02
    # And that constant is C = −k₁: the exact KL tends to E log|ε| = −(γ + log 2)/2 ≈ −0.6352
    # as α → ∞, where the approximation tends to 0.
    np.testing.assert_allclose(diff, -K1, atol=0.01)
    assert abs(-(np.euler_gamma + math.log(2)) / 2 + K1) < 1e-3


def test_kl_is_decreasing_in_alpha_and_vanishes_for_pure_noise():
    la = torch.linspace(LOG_ALPHA_MIN, LOG_ALPHA_MAX, 201, dtype=torch.float64)
    kl = kl_from_log_alpha(la)
    assert torch.all(kl[1:] < kl[:-1])
    assert 0 < kl[-1] < 1e-4
    # At small α the KL grows like −½ log α (the softplus term), checked without overflow.
    assert torch.isclose(kl_from_log_alpha(torch.tensor(-50.0, dtype=torch.float64)),
                         torch.tensor(25.0 + K1, dtype=torch.float64), atol=1e-6)


def test_log_alpha_is_stable_and_clipped():
    loc = torch.tensor([1.0, 0.0, 2.0, 1e-3])
    log_sigma2 = torch.tensor([0.0, 0.0, math.log(4.0) + 3.0, -30.0])
    raw = log_alpha(loc, log_sigma2, clip=False)
    assert torch.isfinite(raw).all()  # μ = 0 does not divide by zero
    assert raw[2].item() == pytest.approx(3.0, abs=1e-5)
    clipped = log_alpha(loc, log_sigma2)
    assert clipped[1] == LOG_ALPHA_MAX and clipped[3] == LOG_ALPHA_MIN
    assert clipped[2] == raw[2]


def test_kl_normal_log_uniform_uses_alpha_only():
    loc = torch.tensor([0.5, -2.0, 10.0])
    scale = 0.3 * loc.abs()  # α = 0.09 for all three
    kl = kl_normal_log_uniform(loc, scale)
    torch.testing.assert_close(kl, kl[:1].expand(3))
    torch.testing.assert_close(kl[0], kl_from_log_alpha(torch.tensor(math.log(0.09))))


@pytest.mark.filterwarnings("error")  # no "Ambiguous kl_divergence" dispatch warning
def test_registered_kl_is_found_for_pyro_and_torch_normals_and_to_event():
    loc, scale = torch.randn(3, 4), torch.rand(3, 4) + 0.1
    expected = kl_normal_log_uniform(loc, scale)
    torch.testing.assert_close(kl_divergence(dist.Normal(loc, scale), LogUniform((3, 4))), expected)
    torch.testing.assert_close(kl_divergence(torch.distributions.Normal(loc, scale), LogUniform()), expected)
    # Independent pairs reduce to their bases (Pyro's own rule) and sum the event dims.
    torch.testing.assert_close(
        kl_divergence(dist.Normal(loc, scale).to_event(1), LogUniform((3, 4)).to_event(1)), expected.sum(-1)
    )
    torch.testing.assert_close(
        kl_divergence(dist.Normal(loc, scale).to_event(2), LogUniform((3, 4)).to_event(2)), expected.sum()
    )


def _model():
    pyro.sample("w", LogUniform((5,)).to_event(1))


def _guide():
    loc = pyro.param("loc", torch.linspace(-1.0, 1.0, 5))
    scale = pyro.param("scale", torch.full((5,), 0.2), constraint=dist.constraints.positive)
    pyro.sample("w", dist.Normal(loc, scale).to_event(1))


def test_trace_mean_field_elbo_uses_the_analytic_kl():
    pyro.clear_param_store()
    expected = kl_normal_log_uniform(torch.linspace(-1.0, 1.0, 5), torch.full((5,), 0.2)).sum().item()
    losses = []
    for seed in range(4):
        pyro.set_rng_seed(seed)
        losses.append(TraceMeanField_ELBO().loss(_model, _guide))
    # Analytic: the same value for every seed. The Monte-Carlo fallback (log q − log p of
    # one draw, as Trace_ELBO computes) differs from seed to seed.
    assert losses == pytest.approx([expected] * 4, rel=1e-6)
    mc = []
    for seed in range(4):
        pyro.set_rng_seed(seed)
        mc.append(Trace_ELBO().loss(_model, _guide))
    assert max(mc) - min(mc) > 1e-3


def test_trace_mean_field_elbo_with_a_likelihood_adds_the_kl_to_the_nll():
    y = torch.tensor(0.7)

    def model():
        w = pyro.sample("w", LogUniform((5,)).to_event(1))
        pyro.sample("y", dist.Normal(w.sum(), 1.0), obs=y)

    pyro.clear_param_store()
    pyro.set_rng_seed(3)
    loss = TraceMeanField_ELBO().loss(model, _guide)
    pyro.set_rng_seed(3)
    w = pyro.poutine.trace(_guide).get_trace().nodes["w"]["value"]
    nll = -dist.Normal(w.sum(), 1.0).log_prob(y).item()
    kl = kl_normal_log_uniform(torch.linspace(-1.0, 1.0, 5), torch.full((5,), 0.2)).sum().item()
    assert loss == pytest.approx(nll + kl, rel=1e-6)


def test_log_prob_is_minus_log_abs_and_broadcasts():
    prior = LogUniform((2, 3))
    x = torch.tensor([0.5, -2.0, 4.0])
    lp = prior.log_prob(x)
    assert lp.shape == (2, 3)
    torch.testing.assert_close(lp, -torch.log(x.abs()).expand(2, 3))
    assert LogUniform().log_prob(torch.tensor(0.0)).item() == math.inf
    assert LogUniform().expand([4]).batch_shape == (4,)
    assert LogUniform((4,)).to_event(1).log_prob(torch.ones(4)).shape == ()
    assert LogUniform().support is dist.constraints.real


@pytest.mark.parametrize("method", ["sample", "rsample", "__call__"])
def test_sampling_is_refused_with_a_clear_message(method):
    with pytest.raises(NotImplementedError, match="improper prior.*cannot be sampled.*guide"):
        getattr(LogUniform((2,)), method)()


def test_sampling_the_prior_in_a_model_is_refused():
    with pytest.raises(NotImplementedError, match="improper"):
        pyro.poutine.trace(_model).get_trace()


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match="non-negative.*shape=\\(-1,\\)"):
        LogUniform((-1,))
    with pytest.raises(TypeError, match="sequence of ints"):
        LogUniform("ab")
