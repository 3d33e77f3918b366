"""Local reparameterization handler: moments against weight sampling, exact plain behaviour."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import SVI, TraceMeanField_ELBO

from bayesnas.distributions import LogUniform, log_alpha
from bayesnas.handlers import (
    LocalReparameterizationMessenger,
    local_reparameterization,
    lrt_moments,
    nonzero_after_pruning,
    prune_mask,
    split_draw,
)
from bayesnas.handlers.local_reparameterization import registered
from bayesnas.nn import lrt

N = 20_000
# Outputs are Gaussian in w, so the sample mean has standard error sqrt(var/N) and the sample
# variance relative standard error sqrt(2/(N−1)) ≈ 0.01; 5 standard errors bound every element
# of these small layers (fixed seeds make it deterministic anyway).
Z = 5.0

CASES = {
    "linear": (F.linear, lrt.linear, (3, 6), (4, 6), {}),
    "conv2d": (F.conv2d, lrt.conv2d, (2, 3, 6, 6), (4, 3, 3, 3), {"stride": 2, "padding": 1}),
    "depthwise": (F.conv2d, lrt.conv2d, (2, 4, 5, 5), (4, 1, 3, 3), {"padding": 1, "groups": 4}),
    "dilated": (F.conv2d, lrt.conv2d, (2, 2, 7, 7), (3, 2, 3, 3), {"dilation": 2, "padding": 2}),
}


def _params(case, seed=0):
    op, helper, x_shape, w_shape, kwargs = CASES[case]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(x_shape, generator=g, dtype=torch.float64)
    loc = torch.randn(w_shape, generator=g, dtype=torch.float64)
    scale = 0.2 + torch.rand(w_shape, generator=g, dtype=torch.float64)
    bias = torch.randn(w_shape[0], generator=g, dtype=torch.float64)
    return op, helper, x, loc, scale, bias, kwargs


def _weight_mc(op, x, loc, scale, bias, kwargs, bias_scale=None, seed=1):
    g = torch.Generator().manual_seed(seed)
    w = loc + scale * torch.randn((N, *loc.shape), generator=g, dtype=loc.dtype)
    if bias_scale is None:
        out = torch.vmap(lambda wi: op(x, wi, bias, **kwargs))(w)
    else:
        b = bias + bias_scale * torch.randn((N, *bias.shape), generator=g, dtype=bias.dtype)
        out = torch.vmap(lambda wi, bi: op(x, wi, bi, **kwargs))(w, b)
    return out.mean(0), out.var(0)


def _assert_moments(mean, var, mc_mean, mc_var, *, estimates=1):
    # ``estimates=2`` compares two independent Monte-Carlo estimates: √2 times the error.
    se = math.sqrt(estimates)
    assert (mc_mean - mean).abs().max() <= Z * se * (var / N).sqrt().max()
    assert ((mc_var - var).abs() / var).max() <= Z * se * math.sqrt(2 / (N - 1))


@pytest.mark.parametrize("case", list(CASES))
def test_analytic_moments_match_weight_sampling(case):
    op, _, x, loc, scale, bias, kwargs = _params(case)
    mean, var = lrt_moments(op, x, loc, scale, bias, **kwargs)
    _assert_moments(mean, var, *_weight_mc(op, x, loc, scale, bias, kwargs))


def test_analytic_moments_with_a_normal_bias():
    op, _, x, loc, scale, bias, kwargs = _params("conv2d")
    bias_scale = torch.full_like(bias, 0.5)
    mean, var = lrt_moments(op, x, loc, scale, bias, bias_scale, **kwargs)
    _assert_moments(mean, var, *_weight_mc(op, x, loc, scale, bias, kwargs, bias_scale=bias_scale))


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("case", list(CASES))
def test_handler_output_matches_weight_sampling(case, device):
    """End to end: a Normal site under the handler, the helper on N copies of each input.

    The LRT draws fresh noise per output element, so N identical inputs are N independent
    draws of the output distribution, which must match that of sampling the weight.
    """
    op, helper, x, loc, scale, bias, kwargs = _params(case)
    mc_mean, mc_var = _weight_mc(op, x, loc, scale, bias, kwargs)
    xs = x.unsqueeze(0).expand(N, *x.shape).reshape(N * x.shape[0], *x.shape[1:])
    torch.manual_seed(2)
    with local_reparameterization():
        w = pyro.sample("w", dist.Normal(loc.to(device), scale.to(device)).to_event(loc.dim()))
        out = helper(xs.to(device), w, bias.to(device), **kwargs)
    assert out.device.type == device
    out, w = out.cpu().reshape(N, x.shape[0], *out.shape[1:]), w.cpu()
    mean, var = lrt_moments(op, x, loc, scale, bias, **kwargs)
    _assert_moments(mean, var, out.mean(0), out.var(0))  # handler output has the analytic moments
    _assert_moments(out.mean(0), out.var(0), mc_mean, mc_var, estimates=2)  # and matches weight sampling
    assert not torch.equal(out[0], op(x, w, bias, **kwargs))  # the sampled weight was not used


def test_handler_with_normal_weight_and_bias_sites():
    op, helper, x, loc, scale, bias, kwargs = _params("depthwise")
    bias_scale = torch.full_like(bias, 0.5)
    xs = x.unsqueeze(0).expand(N, *x.shape).reshape(N * x.shape[0], *x.shape[1:])
    torch.manual_seed(3)
    with local_reparameterization():
        w = pyro.sample("w", dist.Normal(loc, scale).to_event(4))
        b = pyro.sample("b", dist.Normal(bias, bias_scale).to_event(1))
        out = helper(xs, w, b, **kwargs)
    out = out.reshape(N, x.shape[0], *out.shape[1:])
    mean, var = lrt_moments(op, x, loc, scale, bias, bias_scale, **kwargs)
    _assert_moments(mean, var, out.mean(0), out.var(0))


@pytest.mark.parametrize("case", list(CASES))
def test_helpers_are_exactly_the_plain_ops_outside_the_handler(case):
    op, helper, x, loc, _, bias, kwargs = _params(case)
    assert torch.equal(helper(x, loc, bias, **kwargs), op(x, loc, bias, **kwargs))
    assert torch.equal(helper(x, loc, None, **kwargs), op(x, loc, None, **kwargs))
    # Under the handler (and under other Pyro handlers) a plain weight is also untouched.
    with local_reparameterization(), poutine.trace():
        assert torch.equal(helper(x, loc, bias, **kwargs), op(x, loc, bias, **kwargs))


def test_conditioned_or_observed_normal_sites_are_not_reparameterized():
    x, loc = torch.randn(3, 4), torch.randn(2, 4)
    fixed = torch.randn(2, 4)

    def model():
        w = pyro.sample("w", dist.Normal(loc, 1.0).to_event(2))
        return lrt.linear(x, w)

    with local_reparameterization():
        out = poutine.condition(model, {"w": fixed})()
    assert torch.equal(out, F.linear(x, fixed))


def _bayesian_regression():
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([1.0, 0.0, -2.0]) + 0.1 * torch.randn(64)

    def model(x, y):
        w = pyro.sample("w", LogUniform((1, 3)).to_event(2))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Normal(lrt.linear(x, w).squeeze(-1), 0.1), obs=y)

    def guide(x, y):
        loc = pyro.param("loc", torch.full((1, 3), 0.5))
        log_scale = pyro.param("log_scale", torch.full((1, 3), -3.0))
        pyro.sample("w", dist.Normal(loc, log_scale.exp()).to_event(2))

    return x, y, model, guide


@pytest.mark.parametrize("wrap", ["outer_with", "separate_instances"])
def test_svi_with_lrt_gets_gradients_through_the_guide_moments(wrap):
    pyro.clear_param_store()
    x, y, model, guide = _bayesian_regression()
    elbo = TraceMeanField_ELBO()
    if wrap == "outer_with":
        with local_reparameterization():
            loss = elbo.differentiable_loss(model, guide, x, y)
    else:
        loss = elbo.differentiable_loss(
            local_reparameterization(model), local_reparameterization(guide), x, y
        )
    loss.backward()
    store = pyro.get_param_store()
    assert store.get_param("loc").grad.abs().sum() > 0
    assert store.get_param("log_scale").grad.abs().sum() > 0


def test_svi_with_lrt_recovers_the_regression_weights():
    pyro.clear_param_store()
    x, y, model, guide = _bayesian_regression()
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), TraceMeanField_ELBO())
    with local_reparameterization():
        for _ in range(300):
            svi.step(x, y)
    store = pyro.get_param_store()
    loc = store.get_param("loc").detach()
    torch.testing.assert_close(loc, torch.tensor([[1.0, 0.0, -2.0]]), atol=0.1, rtol=0)
    # The log-uniform prior drives the irrelevant weight towards pure noise (large α).
    la = log_alpha(loc, 2 * store.get_param("log_scale").detach(), clip=False)[0]
    assert la[1] > 0 and la[0] < -5 and la[2] < -5


def test_model_sees_the_guide_sample_of_another_handler_instance():
    """``replay`` hands the model the guide's tensor; the registry is shared by all instances."""
    x = torch.randn(5, 3)

    def guide():
        pyro.sample("w", dist.Normal(torch.zeros(2, 3), torch.ones(2, 3)).to_event(2))

    def model():
        w = pyro.sample("w", LogUniform((2, 3)).to_event(2))
        return w, lrt.linear(x, w)

    guide_trace = poutine.trace(local_reparameterization(guide)).get_trace()
    w, out = poutine.replay(local_reparameterization(model), trace=guide_trace)()
    assert w is guide_trace.nodes["w"]["value"]
    assert not torch.equal(out, F.linear(x, w))  # LRT: fresh noise, not the guide's draw
    w, out = poutine.replay(model, trace=guide_trace)()  # no handler around the model: plain
    assert torch.equal(out, F.linear(x, w))


def test_deterministic_mode_evaluates_at_the_pruned_means_and_counts_nonzeros():
    loc = torch.tensor([[1.0, -0.5, 0.2], [0.0, 2.0, 0.1]])
    # log α = log σ² − log μ²: kept below 3, pruned from 3 on (±0.01 keeps clear of the ε in log(μ² + ε))
    hand_log_alpha = torch.tensor([[2.0, 3.01, 5.0], [0.0, 2.99, -1.0]])
    log_sigma2 = hand_log_alpha + torch.log(loc * loc)
    log_sigma2[1, 0] = -20.0  # μ = 0: log α = −20 − log(1e-8) ≈ −1.6, kept, but it is zero anyway
    expected_mask = torch.tensor([[True, False, False], [True, True, True]])
    assert torch.equal(prune_mask(loc, log_sigma2), expected_mask)
    assert torch.equal(prune_mask(loc, log_sigma2, threshold=5.5), torch.ones(2, 3, dtype=torch.bool))
    assert nonzero_after_pruning(loc, log_sigma2) == 3  # 1.0, 2.0, 0.1
    pruned = torch.where(expected_mask, loc, 0.0)

    x = torch.randn(4, 3)
    msngr = LocalReparameterizationMessenger(deterministic=True, threshold=3.0)
    with msngr:
        w = pyro.sample("w", dist.Normal(loc, (0.5 * log_sigma2).exp()).to_event(2))
        out = lrt.linear(x, w)
    assert torch.equal(w, pruned)
    assert torch.equal(out, F.linear(x, pruned))
    assert msngr.pruning == {"w": (3, 6)} and msngr.nonzero_count() == 3
    # A weight drawn earlier in sampling mode (a guide's sample) is also evaluated at its pruned mean.
    with local_reparameterization():
        w = pyro.sample("w", dist.Normal(loc, (0.5 * log_sigma2).exp()).to_event(2))
    with local_reparameterization(deterministic=True, threshold=3.0):
        torch.testing.assert_close(lrt.linear(x, w), F.linear(x, pruned))
    with local_reparameterization(deterministic=True):  # no threshold: the plain means
        w = pyro.sample("w", dist.Normal(loc, (0.5 * log_sigma2).exp()).to_event(2))
    assert torch.equal(w, loc)


def test_views_of_one_flat_site_get_the_lrt_of_their_own_slice_of_mu_and_sigma():
    """One site over two layers' weights: each view is registered with its slice of (μ, σ), so
    a layer fed a view computes exactly what it computes from a site of its own."""
    torch.manual_seed(0)
    shapes = [torch.Size([4, 2, 3, 3]), torch.Size([5, 4])]
    loc, scale = torch.randn(72 + 20), torch.rand(92) + 0.1
    x = torch.randn(3, 2, 6, 6)
    with local_reparameterization():
        conv_w, lin_w = split_draw(pyro.sample("w", dist.Normal(loc, scale).to_event(1)), shapes)
        assert torch.equal(registered(lin_w)[0], loc[72:].view(5, 4))
        assert torch.equal(registered(conv_w)[1], scale[:72].view(shapes[0]))
        torch.manual_seed(5)
        flat_out = lrt.conv2d(x, conv_w, padding=1)
        own_loc, own_scale = loc[:72].view(shapes[0]), scale[:72].view(shapes[0])
        own = pyro.sample("own", dist.Normal(own_loc, own_scale).to_event(4))
        torch.manual_seed(5)
        own_out = lrt.conv2d(x, own, padding=1)
    assert torch.equal(flat_out, own_out)
    # Deterministic mode: the views are those of the pruned means; the one site is counted once.
    msngr = LocalReparameterizationMessenger(deterministic=True, threshold=3.0)
    with msngr:
        conv_w, lin_w = split_draw(pyro.sample("w", dist.Normal(loc, scale).to_event(1)), shapes)
        out = lrt.linear(torch.ones(1, 4), lin_w)
    kept = torch.where(prune_mask(loc, 2 * scale.log()), loc, 0.0)
    assert torch.equal(out, F.linear(torch.ones(1, 4), kept[72:].view(5, 4)))
    assert msngr.pruning == {"w": (int((kept != 0).sum()), 92)}
    # A plain tensor splits into plain views.
    assert all(registered(v) is None for v in split_draw(torch.zeros(92), shapes))
    with pytest.raises(ValueError, match=r"A flat draw of 92 elements was expected .* shape \(91,\)"):
        split_draw(torch.zeros(91), shapes)


def test_layers_sharing_an_input_share_its_square_without_changing_values_or_gradients():
    """The ops of a mixed edge read one input: the handler squares it once per input (and
    again after an in-place change), with the same outputs and gradients as separate handlers."""
    torch.manual_seed(0)
    loc, scale = torch.randn(2, 3, 4), torch.rand(2, 3, 4) + 0.1
    x0 = torch.randn(5, 4)

    def run(shared: bool):
        x = x0.clone().requires_grad_()
        guide_loc = loc.clone().requires_grad_()
        torch.manual_seed(1)
        outs = []
        with local_reparameterization() as handler:
            w = pyro.sample("w", dist.Normal(guide_loc, scale).to_event(3))
            for k in range(2):
                if shared:
                    outs.append(lrt.linear(x, w[k]))
                else:
                    with local_reparameterization():  # a fresh cache per layer
                        outs.append(lrt.linear(x, w[k]))
        sum(o.pow(2).sum() for o in outs).backward()
        return outs, x.grad, guide_loc.grad, handler

    shared_outs, x_grad, loc_grad, handler = run(True)
    separate_outs, x_grad_sep, loc_grad_sep, _ = run(False)
    for a, b in zip(shared_outs, separate_outs, strict=True):
        assert torch.equal(a, b)
    torch.testing.assert_close(x_grad, x_grad_sep)
    torch.testing.assert_close(loc_grad, loc_grad_sep)
    # An input changed in place after its square was cached is squared anew.
    x = torch.ones(1, 4)
    with handler:
        assert torch.equal(handler._square(x), torch.ones(1, 4))
        x.mul_(3.0)
        assert torch.equal(handler._square(x), torch.full((1, 4), 9.0))


def test_invalid_arguments_state_the_rule_and_the_value():
    with pytest.raises(ValueError, match="deterministic=False"):
        local_reparameterization(threshold=3.0)
    with pytest.raises(ValueError, match="finite number.*threshold=nan"):
        local_reparameterization(deterministic=True, threshold=float("nan"))
    with pytest.raises(ValueError, match="threshold='3'"):
        prune_mask(torch.ones(1), torch.zeros(1), threshold="3")
