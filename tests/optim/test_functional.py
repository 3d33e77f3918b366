"""The functional core against closed forms: the key identity, Fisher factors, projections."""

import math

import pyro.distributions as pdist
import pytest
import torch

from bayesnas.optim import (
    adaptive_lr_update,
    bernoulli_fisher_sqrt_image,
    bernoulli_natural_gradient,
    categorical_fisher_sqrt_image,
    categorical_natural_gradient,
    evolution_path_update,
    fisher_trace,
    gaussian_natural_gradient,
    gaussian_variance_natural_gradient,
    project_bernoulli,
    project_box,
    project_categorical,
    shared_bernoulli_fisher_sqrt_image,
    shared_bernoulli_natural_gradient,
)

DT = torch.float64


def _simplex(*shape: int, generator: torch.Generator) -> torch.Tensor:
    x = torch.rand(*shape, generator=generator, dtype=DT) + 0.05
    return x / x.sum(-1, keepdim=True)


# -- the key identity (DESIGN.md): inverse Fisher ∘ autograd of the surrogate = T(M) − θ -----


@pytest.mark.parametrize("k", [2, 3, 5])
def test_categorical_identity_natural_gradient_is_onehot_minus_theta(k):
    g = torch.Generator().manual_seed(k)
    lam, d = 4, 3
    theta = _simplex(d, k, generator=g).requires_grad_()
    h = torch.randint(0, k, (lam, d), generator=g)
    u = torch.tensor([1.0, 0.0, 0.0, -1.0], dtype=DT)
    # torch / Pyro normalise probs, which adds a gradient along 1; the inverse Fisher drops it.
    log_p = pdist.Categorical(probs=theta).log_prob(h)  # (λ, d)
    surrogate = -(u[:, None] * log_p).sum() / lam
    (grad,) = torch.autograd.grad(surrogate, theta)
    natural = categorical_natural_gradient(theta.detach(), grad)
    onehot = torch.nn.functional.one_hot(h, k).to(DT)
    expected = -(u[:, None, None] * (onehot - theta.detach())).sum(0) / lam
    torch.testing.assert_close(natural, expected)
    torch.testing.assert_close(natural.sum(-1), torch.zeros(d, dtype=DT))


def test_categorical_full_theta_formula_is_app_a_eq7_in_the_reduced_parameter():
    g = torch.Generator().manual_seed(0)
    theta = _simplex(5, generator=g)
    grad = torch.randn(5, generator=g, dtype=DT)
    tb = theta[:-1]
    reduced_grad = grad[:-1] - grad[-1]  # chain rule through θ_K = 1 − Σθ̄
    expected = (torch.diag(tb) - torch.outer(tb, tb)) @ reduced_grad  # app. A eq. (7)
    torch.testing.assert_close(categorical_natural_gradient(theta, grad)[:-1], expected)


def test_bernoulli_identity_with_complexity_penalty():
    g = torch.Generator().manual_seed(1)
    lam, d, eps = 2, 7, 0.3
    theta = (torch.rand(d, generator=g, dtype=DT) * 0.8 + 0.1).requires_grad_()
    m = torch.randint(0, 2, (lam, d), generator=g).to(DT)
    u = torch.tensor([1.0, -1.0], dtype=DT)
    c = torch.rand(d, generator=g, dtype=DT)
    log_p = pdist.Bernoulli(probs=theta).log_prob(m)  # (λ, d)
    surrogate = -(u[:, None] * log_p).sum() / lam + eps * (c * theta).sum()
    (grad,) = torch.autograd.grad(surrogate, theta)
    t = theta.detach()
    expected = -(u[:, None] * (m - t)).sum(0) / lam + eps * c * t * (1 - t)  # saito2018 eq. (7)
    torch.testing.assert_close(bernoulli_natural_gradient(t, grad), expected)


@pytest.mark.parametrize("group_size", [1, 7])
def test_shared_rate_identity_is_mean_of_units_minus_theta(group_size):
    """shirakawa2018 §III: U i.i.d. bits per rate; the natural gradient is (1/U) Σⱼ mⱼ − θ."""
    g = torch.Generator().manual_seed(group_size)
    lam, groups = 3, 4
    theta = (torch.rand(groups, generator=g, dtype=DT) * 0.8 + 0.1).requires_grad_()
    m = torch.randint(0, 2, (lam, groups, group_size), generator=g).to(DT)
    u = torch.tensor([1.0, 0.0, -1.0], dtype=DT)
    probs = theta[:, None].expand(groups, group_size)
    log_p = pdist.Bernoulli(probs=probs).log_prob(m).sum(-1)  # (λ, groups)
    (grad,) = torch.autograd.grad(-(u[:, None] * log_p).sum() / lam, theta)
    natural = shared_bernoulli_natural_gradient(theta.detach(), grad, group_size)
    expected = -(u[:, None] * (m.mean(-1) - theta.detach())).sum(0) / lam
    torch.testing.assert_close(natural, expected)
    if group_size == 1:
        assert torch.equal(natural, bernoulli_natural_gradient(theta.detach(), grad))


def test_gaussian_mean_identity_is_minus_mean_utility_times_noise():
    """nes2019 eq. (7): σ² ∇μ of −(1/M) Σ uᵢ log N(xᵢ; μ, σ²) is −(1/M) Σ uᵢ (xᵢ − μ), whether
    σ is one number or given as a σ² per entry."""
    g = torch.Generator().manual_seed(4)
    m, sigma = 16, 0.7
    mu = torch.randn(3, generator=g, dtype=DT).requires_grad_()
    x = mu.detach() + sigma * torch.randn(m, 3, generator=g, dtype=DT)
    u = torch.randn(m, generator=g, dtype=DT)
    log_p = pdist.Normal(mu, sigma).log_prob(x).sum(-1)
    (grad,) = torch.autograd.grad(-(u * log_p).mean(), mu)
    expected = -(u[:, None] * (x - mu.detach())).mean(0)
    torch.testing.assert_close(gaussian_natural_gradient(grad, sigma), expected)
    variance = torch.full((3,), sigma * sigma, dtype=DT)
    assert torch.equal(gaussian_natural_gradient(grad, variance=variance),
                       gaussian_natural_gradient(grad, sigma))
    for bad in ({}, {"sigma": sigma, "variance": variance}):
        with pytest.raises(ValueError, match="Give exactly one of `sigma` and `variance`"):
            gaussian_natural_gradient(grad, **bad)


def test_gaussian_variance_identity_moves_toward_the_spread_of_the_better_samples():
    g = torch.Generator().manual_seed(5)
    m = 32
    mu = torch.randn(2, generator=g, dtype=DT)
    variance = (torch.rand(2, generator=g, dtype=DT) + 0.5).requires_grad_()
    x = mu + variance.detach().sqrt() * torch.randn(m, 2, generator=g, dtype=DT)
    u = torch.randn(m, generator=g, dtype=DT)
    log_p = pdist.Normal(mu, variance.sqrt()).log_prob(x).sum(-1)
    (grad,) = torch.autograd.grad(-(u * log_p).mean(), variance)
    expected = -(u[:, None] * ((x - mu) ** 2 - variance.detach())).mean(0)
    torch.testing.assert_close(gaussian_variance_natural_gradient(grad, variance.detach()), expected)


# -- F^{1/2}-images (pdas2019 app. C eq. (14)) -------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 5])
def test_fisher_factor_gives_the_fisher_norm(k):
    g = torch.Generator().manual_seed(10 + k)
    theta = _simplex(k, generator=g)
    delta = torch.randn(k, generator=g, dtype=DT)
    delta -= delta.mean()
    tb, tk = theta[:-1], theta[-1]
    fisher = torch.diag(1 / tb) + torch.ones(k - 1, k - 1, dtype=DT) / tk  # app. A eq. (6)
    v = categorical_fisher_sqrt_image(theta, delta)
    assert v.shape == (k - 1,)
    db = delta[:-1]
    assert float(v @ v) == pytest.approx(float(db @ fisher @ db), rel=1e-12)


def test_bernoulli_fisher_image_is_the_categorical_one_with_k2():
    g = torch.Generator().manual_seed(2)
    theta = torch.rand(4, 3, generator=g, dtype=DT) * 0.9 + 0.05
    delta = torch.randn(4, 3, generator=g, dtype=DT)
    full_theta = torch.stack([theta, 1 - theta], -1)
    full_delta = torch.stack([delta, -delta], -1)
    torch.testing.assert_close(
        bernoulli_fisher_sqrt_image(theta, delta),
        categorical_fisher_sqrt_image(full_theta, full_delta)[..., 0],
    )


def test_shared_rate_fisher_image_gives_the_fisher_norm():
    g = torch.Generator().manual_seed(6)
    theta = torch.rand(5, generator=g, dtype=DT) * 0.9 + 0.05
    delta = torch.randn(5, generator=g, dtype=DT)
    v = shared_bernoulli_fisher_sqrt_image(theta, delta, 9)
    fisher = 9 / (theta * (1 - theta))  # F(θ) = U/(θ(1 − θ)), shirakawa2018 §III
    assert float(v @ v) == pytest.approx(float((delta * fisher * delta).sum()), rel=1e-12)
    assert torch.equal(shared_bernoulli_fisher_sqrt_image(theta, delta, 1),
                       bernoulli_fisher_sqrt_image(theta, delta))


def test_fisher_images_are_finite_on_the_boundary():
    theta = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=DT)
    v = categorical_fisher_sqrt_image(theta, torch.zeros_like(theta))
    assert torch.equal(v, torch.zeros(2, 2, dtype=DT))
    vb = bernoulli_fisher_sqrt_image(torch.tensor([0.0, 1.0]), torch.zeros(2))
    assert torch.equal(vb, torch.zeros(2))


# -- projections (shirakawa2018 §2; pdas2019 app. B) --------------------------------------------


def test_project_bernoulli_clips_and_leaves_its_input_alone():
    theta = torch.tensor([-3.0, 0.05, 0.5, 0.97, 2.0])
    out = project_bernoulli(theta, 0.1)
    torch.testing.assert_close(out, torch.tensor([0.1, 0.1, 0.5, 0.9, 0.9]))
    assert theta[0] == -3.0


def test_project_box_clips_and_leaves_its_input_alone():
    mu = torch.tensor([-1.0, 0.0, 4.5, 9.0, 12.0])
    torch.testing.assert_close(project_box(mu, 0.0, 9.0), torch.tensor([0.0, 0.0, 4.5, 9.0, 9.0]))
    assert mu[0] == -1.0


def _literal_app_b(theta: torch.Tensor, theta_min: float) -> torch.Tensor:
    theta = torch.maximum(theta, torch.tensor(theta_min, dtype=theta.dtype))  # eq. (11)
    excess = (theta - theta_min).sum(-1, keepdim=True)
    return theta + (1 - theta.sum(-1, keepdim=True)) / excess * (theta - theta_min)  # eq. (12)


def test_project_categorical_is_app_b_eqs_11_12():
    g = torch.Generator().manual_seed(3)
    theta = _simplex(6, 4, generator=g) + 0.3 * torch.randn(6, 4, generator=g, dtype=DT)
    out = project_categorical(theta, 0.05)
    torch.testing.assert_close(out, _literal_app_b(theta, 0.05))
    torch.testing.assert_close(out.sum(-1), torch.ones(6, dtype=DT))
    assert float(out.min()) >= 0.05 - 1e-15
    # A point already in the clipped simplex is fixed.
    inside = _simplex(6, 4, generator=g) * 0.8 + 0.05
    torch.testing.assert_close(project_categorical(inside, 0.05), inside)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_project_categorical_stays_exact_after_huge_steps(dtype):
    theta = torch.tensor([[1e7, -1e7, 0.5], [3e6, 3e6, -1e6], [-5.0, -5.0, -5.0]], dtype=dtype)
    out = project_categorical(theta, 0.1)
    assert out.dtype == dtype
    assert float((out.sum(-1) - 1).abs().max()) <= 1e-6
    assert float(out.min()) >= 0.1 - 1e-7
    torch.testing.assert_close(out[2], torch.full((3,), 1 / 3, dtype=dtype))


# -- adaptive step size (pdas2019 app. C) -------------------------------------------------------


def test_fisher_trace_is_half_the_free_parameters_for_two_samples():
    assert fisher_trace(7, 2) == pytest.approx(3.5)
    assert fisher_trace(7, 8) == pytest.approx(2 * 2 / 64 * 7)  # ⌈8/4⌉ = 2 utilities of ±1


def test_adaptive_updates_never_produce_nan_or_overflow():
    s = torch.ones(3)
    for lr in (0.0, 1e-300, 0.5, 2.0, 3.0, 50.0):
        assert torch.isfinite(evolution_path_update(s, s, lr=lr, trace=1.0)).all()
        for s_norm_sq in (0.0, 1.0, 1e308, math.inf):
            for gamma in (0.0, 1.0, 1e6):
                new_lr, new_gamma = adaptive_lr_update(
                    lr=lr, gamma=gamma, s_norm_sq=s_norm_sq, alpha=1.5, lr_min=0.0, lr_max=0.5
                )
                assert 0.0 <= new_lr <= 0.5 and math.isfinite(new_gamma), (lr, s_norm_sq, gamma)
    # A tiny η with a large exponent must not overflow exp().
    new_lr, _ = adaptive_lr_update(
        lr=5e-324, gamma=0.0, s_norm_sq=1e3, alpha=1e-3, lr_min=0.0, lr_max=1.0
    )
    assert 0.0 <= new_lr <= 1.0


def test_adaptive_lr_update_is_eq_13():
    lr, gamma, sq = 0.3, 0.4, 0.9
    new_gamma = 0.7**2 * 0.4 + 0.3 * 1.7
    new_lr = 0.3 * math.exp(0.3 * (0.9 / 1.5 - new_gamma))
    assert adaptive_lr_update(
        lr=lr, gamma=gamma, s_norm_sq=sq, alpha=1.5, lr_min=0.0, lr_max=1.0
    ) == pytest.approx((new_lr, new_gamma))
    assert adaptive_lr_update(lr=lr, gamma=gamma, s_norm_sq=sq, alpha=1.5, lr_min=0.295,
                              lr_max=1.0)[0] == 0.295
