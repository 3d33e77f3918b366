"""Shared-rate Bernoulli sites, guide and optimizer, and the stochastic-network space
(shirakawa2018 §III: ∇̃θ_l ln p = (1/U) Σᵢ m_li − θ_l for a rate shared by U units)."""

import io
import math

import pyro
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyro import poutine

from bayesnas import sites
from bayesnas.analysis import Posterior, SharedBernoulliMarginal
from bayesnas.families import NaturalGradientOptions
from bayesnas.guides import BernoulliGuide, GuideList, SharedBernoulliGuide, auto_guide
from bayesnas.handlers import seeded_arch
from bayesnas.infer import ArchitectureSearch, RankingNaturalGradientLoss
from bayesnas.infer.predict import predict_deterministic
from bayesnas.models.stochastic_net import StochasticNetMLP
from bayesnas.optim import BernoulliNaturalGradient, SharedBernoulliNaturalGradient
from bayesnas.sites import SiteSpec, arch_plate, architecture_to_tensors, discover_sites

G, U, B = 3, 5, 4  # groups (rates), units per group, plain bits


class SharedToy(torch.nn.Module):
    """``B`` plain bits and ``G`` rates of ``U`` units; the loss is linear in the bits,
    ``loss = w_bits · b + Σ_g w_units[g] · (units kept in g)``, plus optional noise."""

    def __init__(self, w_bits, w_units, noise=0.0, seed=0):
        super().__init__()
        self.register_buffer("w_bits", torch.as_tensor(w_bits, dtype=torch.float32))
        self.register_buffer("w_units", torch.as_tensor(w_units, dtype=torch.float32))
        self.noise = noise
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x=None):
        bits = sites.bernoulli("bits", self.w_bits.shape[0])
        units = sites.shared_bernoulli("units", self.w_units.shape[0], U, choices=("drop", "keep"))
        loss = (bits * self.w_bits).sum(-1) + (units.sum(-1) * self.w_units).sum(-1)
        if self.noise:
            loss = loss + self.noise * torch.randn(loss.shape, generator=self.generator)
        pyro.factor("neg_loss", -loss)
        return loss


def _toy_guide(theta_bits, theta_units):
    model = SharedToy(torch.linspace(-1, 1, B), torch.tensor([0.3, -0.7, 1.1]))
    guide = auto_guide(model)
    bern, shared = guide.guides
    with torch.no_grad():
        bern.theta("bits").copy_(torch.as_tensor(theta_bits))
        shared.theta("units").copy_(torch.as_tensor(theta_units))
    return model, guide, bern, shared


def _run(loss, model, guide, seed):
    for p in guide.parameters():
        p.grad = None
    with seeded_arch(generator=torch.Generator().manual_seed(seed)):
        return loss.loss_and_grads(model, guide)


# -- (a) the natural gradient and the step against their closed forms -------------------------


@pytest.mark.parametrize("lam", [2, 4, 7])
def test_shared_rate_natural_gradient_is_mean_of_units_minus_theta(lam):
    model, guide, bern, shared = _toy_guide([0.2, 0.4, 0.6, 0.8], [0.3, 0.5, 0.65])
    out = _run(RankingNaturalGradientLoss(num_samples=lam), model, guide, seed=lam)
    u, m, b = out["utility"], out["samples"]["units"], out["samples"]["bits"]
    assert m.shape == (lam, G, U) and set(m.unique().tolist()) <= {0.0, 1.0}
    theta = shared.theta("units").detach()
    natural = theta * (1 - theta) / U * shared.theta("units").grad
    closed = -(u[:, None] * (m.mean(-1) - theta)).mean(0)  # −(1/λ) Σ uᵢ((1/U) Σⱼ mᵢⱼ − θ)
    torch.testing.assert_close(natural, closed, rtol=1e-5, atol=1e-7)
    tb = bern.theta("bits").detach()
    natural_b = tb * (1 - tb) * bern.theta("bits").grad
    torch.testing.assert_close(natural_b, -(u[:, None] * (b - tb)).mean(0), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("lam", [2, 5])
def test_optimizer_step_is_theta_plus_eta_times_the_closed_form(lam):
    model, guide, bern, shared = _toy_guide([0.2, 0.4, 0.6, 0.8], [0.3, 0.5, 0.65])
    (opt,) = guide.make_optimizers()  # one optimizer, one d = B + G (shirakawa2018 §III)
    assert isinstance(opt, SharedBernoulliNaturalGradient)
    d = B + G
    assert opt.param_groups[0]["lr"] == 1 / d and opt.param_groups[0]["group_size"] == (1, U)
    tu, tb = shared.theta("units").detach().clone(), bern.theta("bits").detach().clone()
    out = _run(RankingNaturalGradientLoss(num_samples=lam), model, guide, seed=11 + lam)
    opt.step()
    u, m, b = out["utility"], out["samples"]["units"], out["samples"]["bits"]
    eta = 1 / d
    want_u = tu + eta * (u[:, None] * (m.mean(-1) - tu)).sum(0) / lam
    want_b = tb + eta * (u[:, None] * (b - tb)).sum(0) / lam
    for want in (want_u, want_b):  # the check is of the step before clipping: none happened
        assert bool(((want > 1 / d) & (want < 1 - 1 / d)).all())
    torch.testing.assert_close(shared.theta("units").detach(), want_u, rtol=0, atol=1e-7)
    torch.testing.assert_close(bern.theta("bits").detach(), want_b, rtol=0, atol=1e-7)


def test_penalty_is_preconditioned_by_theta_one_minus_theta_over_u():
    g = torch.Generator().manual_seed(0)
    lam, eps, lr, sizes = 3, 0.4, 0.05, (1, U)
    bits = torch.nn.Parameter(torch.tensor([0.3, 0.55, 0.7], dtype=torch.float64))
    rates = torch.nn.Parameter(torch.tensor([0.35, 0.6], dtype=torch.float64))
    before = [bits.detach().clone(), rates.detach().clone()]
    mb = torch.randint(0, 2, (lam, 3), generator=g).double()
    mu = torch.randint(0, 2, (lam, 2, U), generator=g).double()
    u = torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)
    cb, cu = torch.tensor([1.0, 2.0, 3.0]).double(), torch.tensor([5.0, 7.0]).double()
    opt = SharedBernoulliNaturalGradient([bits, rates], group_size=sizes, lr=lr)
    log_p = (torch.distributions.Bernoulli(probs=bits).log_prob(mb).sum(-1)
             + torch.distributions.Bernoulli(probs=rates[:, None].expand(2, U)).log_prob(mu).sum((-2, -1)))
    (-(u * log_p).sum() / lam + eps * ((cb * bits).sum() + (cu * rates).sum())).backward()
    opt.step()
    tb, tu = before
    want_b = tb + lr * ((u[:, None] * (mb - tb)).sum(0) / lam - eps * cb * tb * (1 - tb))
    want_u = tu + lr * ((u[:, None] * (mu.mean(-1) - tu)).sum(0) / lam - eps * cu * tu * (1 - tu) / U)
    torch.testing.assert_close(bits.detach(), want_b.clamp(1 / 5, 4 / 5))
    torch.testing.assert_close(rates.detach(), want_u.clamp(1 / 5, 4 / 5))


@pytest.mark.parametrize("adaptive", [False, True])
def test_group_size_one_is_exactly_the_bernoulli_optimizer(adaptive):
    g = torch.Generator().manual_seed(5)
    a = torch.nn.Parameter(torch.linspace(0.2, 0.8, 6, dtype=torch.float64))
    b = torch.nn.Parameter(a.detach().clone())
    opt_a = BernoulliNaturalGradient([a], adaptive=adaptive)
    opt_b = SharedBernoulliNaturalGradient([b], group_size=1, adaptive=adaptive)
    for _ in range(6):
        grad = torch.randn(6, generator=g, dtype=torch.float64) * 3
        a.grad, b.grad = grad.clone(), grad.clone()
        opt_a.step()
        opt_b.step()
        assert torch.equal(a, b) and opt_a.param_groups[0]["lr"] == opt_b.param_groups[0]["lr"]


def test_adaptive_evolution_path_uses_the_shared_fisher():
    theta = torch.nn.Parameter(torch.tensor([0.3, 0.5, 0.8], dtype=torch.float64))
    opt = SharedBernoulliNaturalGradient([theta], group_size=U, adaptive=True)
    eta = opt.param_groups[0]["lr"]
    assert eta == opt.param_groups[0]["lr_max"] == 3**-0.5  # ηmax = d^(−1/2), d = 3 rates
    before = theta.detach().clone()
    grad = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    theta.grad = grad.clone()
    opt.step()
    delta = -before * (1 - before) / U * grad  # the ascent direction Δθ = −natural
    torch.testing.assert_close(theta.detach(), (before + eta * delta).clamp(1 / 3, 2 / 3))
    v = delta * (U / (before * (1 - before))).sqrt()  # ‖v‖² = Δθᵀ F Δθ, F = U/(θ(1−θ))
    trace = 2 / 4 * 3  # (Σu²/λ²) d with λ = 2
    torch.testing.assert_close(opt.state[theta]["s"], math.sqrt(eta * (2 - eta) / trace) * v)


def test_state_dict_round_trip_with_per_tensor_group_sizes():
    def make():
        return [torch.nn.Parameter(torch.tensor([0.4, 0.6, 0.5])),
                torch.nn.Parameter(torch.tensor([0.45, 0.7]))]

    g = torch.Generator().manual_seed(2)
    grads = [[torch.randn(3, generator=g), torch.randn(2, generator=g)] for _ in range(6)]
    a = make()
    opt_a = SharedBernoulliNaturalGradient(a, group_size=[1, 64], adaptive=True)
    for gs in grads[:3]:
        for p, gr in zip(a, gs, strict=True):
            p.grad = gr.clone()
        opt_a.step()
    buf = io.BytesIO()
    torch.save({"opt": opt_a.state_dict(), "theta": [p.detach().clone() for p in a]}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    b = [torch.nn.Parameter(t) for t in saved["theta"]]
    opt_b = SharedBernoulliNaturalGradient(b, group_size=[1, 64], adaptive=True)
    opt_b.load_state_dict(saved["opt"])
    for gs in grads[3:]:
        for p, q, gr in zip(a, b, gs, strict=True):
            p.grad, q.grad = gr.clone(), gr.clone()
        opt_a.step()
        opt_b.step()
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert opt_a.param_groups[0]["lr"] == opt_b.param_groups[0]["lr"]


# -- (b) θ stays in its clipped domain -----------------------------------------------------------

grad_values = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.0, 1e6, -1e6, 1e-30]))


@settings(max_examples=60, deadline=None)
@given(
    start=st.lists(st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0])), min_size=7, max_size=7),
    grads=st.lists(st.lists(grad_values, min_size=7, max_size=7), min_size=3, max_size=3),
    sizes=st.tuples(st.integers(1, 2048), st.integers(1, 2048)),
    lr=st.floats(1e-6, 1e3),
    adaptive=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_theta_stays_within_one_over_d(start, grads, sizes, lr, adaptive, dtype):
    a = torch.nn.Parameter(torch.tensor(start[:4], dtype=dtype))
    b = torch.nn.Parameter(torch.tensor(start[4:], dtype=dtype))
    opt = SharedBernoulliNaturalGradient([a, b], group_size=list(sizes), lr=lr, adaptive=adaptive)
    for g in grads:
        a.grad = torch.tensor(g[:4], dtype=dtype)
        b.grad = torch.tensor(g[4:], dtype=dtype)
        opt.step()
        group = opt.param_groups[0]
        assert math.isfinite(group["lr"]) and math.isfinite(group["gamma"])
        for p in (a, b):
            assert p.dtype == dtype and torch.isfinite(p).all()
            assert bool(((p >= 1 / 7 - 1e-7) & (p <= 1 - 1 / 7 + 1e-7)).all()), p
            if "s" in opt.state[p]:
                assert torch.isfinite(opt.state[p]["s"]).all()


# -- (c) the guide's summary, mode and entropy through bayesnas.analysis ------------------------


def test_summary_round_trips_through_the_posterior():
    spec = SiteSpec("units", "shared-bernoulli", (2, 3, 4), choices=("drop", "keep"), group_size=4)
    assert spec.theta_shape == (2, 3) and spec.numel == 24
    guide = SharedBernoulliGuide([spec], init={"units": [[0.2, 0.5, 0.7], [0.49, 0.9, 0.05]]})
    summary = guide.summary()["units"]
    assert set(summary) == {"family", "shape", "theta", "group_size", "entropy", "choices"}
    assert summary["shape"] == [2, 3] and summary["group_size"] == 4
    post = Posterior.from_guide(guide)
    m = post["units"]
    assert isinstance(m, SharedBernoulliMarginal) and m.shape == (2, 3, 4)
    torch.testing.assert_close(m.group_theta, guide.theta("units").detach().double())
    assert post.mode() == {"units": guide.mode()["units"].long().tolist()}
    assert guide.mode()["units"][0, 1].tolist() == [1.0] * 4  # θ = 0.5 keeps (θ ≥ 0.5)
    assert guide.mode()["units"][1, 0].tolist() == [0.0] * 4
    h = lambda t: -(t * math.log(t) + (1 - t) * math.log(1 - t))  # noqa: E731
    want = 4 * sum(h(t) for t in [0.2, 0.5, 0.7, 0.49, 0.9, 0.05])
    assert post.entropy() == pytest.approx(want, rel=1e-6)
    assert float(guide.entropy()) == pytest.approx(want, rel=1e-6)
    assert guide.expected_active() == pytest.approx(post.expected_active(), rel=1e-6)
    again = post.to_summary()["units"]
    assert set(again) == set(summary) and again["group_size"] == 4 and again["shape"] == [2, 3]
    assert again["theta"] == summary["theta"]  # float32 θ is exact in the float64 analysis
    # log p of a sampled architecture: the guide's own distribution = the posterior's product.
    with seeded_arch(generator=torch.Generator().manual_seed(0)), arch_plate(1):
        tr = poutine.trace(guide).get_trace()
    value = tr.nodes["units"]["value"]
    assert value.shape == (1, 2, 3, 4)
    lp = float(guide.distribution("units").log_prob(value[0]).detach())
    assert post.log_prob({"units": value[0].long().tolist()}) == pytest.approx(lp, rel=1e-5)


def test_guidelist_and_learnable_false():
    model = SharedToy(torch.zeros(B), torch.zeros(G))
    guide = auto_guide(model)
    assert isinstance(guide, GuideList)
    assert [type(g) for g in guide.guides] == [BernoulliGuide, SharedBernoulliGuide]
    assert guide.summary()["units"]["theta"] == [0.5] * G
    cost = guide.expected_cost({"bits": torch.ones(B), "units": torch.tensor([1.0, 2.0, 3.0])})
    assert float(cost.detach()) == 0.5 * B + 0.5 * 6  # Σ cθ, c of a rate shaped like θ
    with arch_plate(6):
        out = guide()
    assert out["bits"].shape == (6, B) and out["units"].shape == (6, G, U)
    specs = discover_sites(model)
    fixed = GuideList(BernoulliGuide([specs["bits"]], learnable=False),
                      SharedBernoulliGuide([specs["units"]], init=0.5, learnable=False))
    assert fixed.make_optimizers() == []  # the stochastic-network baseline: θ held at 0.5
    alone = SharedBernoulliGuide([specs["units"]])
    (opt,) = alone.make_optimizers(adaptive=True)
    assert opt.param_groups[0]["group_size"] == (U,) and opt.param_groups[0]["lr"] == G**-0.5


# -- (d) the stochastic-network space ---------------------------------------------------------------


def test_discover_sites_and_auto_guide_on_the_paper_sized_net():
    torch.manual_seed(0)
    net = StochasticNetMLP.for_data((1, 28, 28), 10)
    assert (net.depth, net.width, net.in_features) == (10, 1024, 784)
    specs = discover_sites(net, torch.zeros(1, 784))
    layers, units = specs["layers"], specs["units"]
    assert (layers.family, layers.shape, layers.choices) == ("bernoulli", (9,), ("skip", "layer"))
    assert layers.edges[0] == ("h1", "h2") and layers.edges[-1] == ("h9", "h10")
    assert (units.family, units.shape, units.group_size, units.choices, units.edges) == (
        "shared-bernoulli", (10, 1024), 1024, ("drop", "keep"), None,
    )
    assert units.theta_shape == (10,) and units.numel == 10 * 1024
    guide = auto_guide(sites=specs)
    assert [g.family for g in guide.guides] == ["bernoulli", "shared-bernoulli"]
    (opt,) = guide.make_optimizers()
    group = opt.param_groups[0]
    assert group["group_size"] == (1, 1024) and group["lr"] == 1 / 19  # d = 2L − 1 = 19
    assert sum(p.numel() for p in group["params"]) == 19
    costs = net.complexity_costs()
    assert set(costs) == {"layers"} and costs["layers"].tolist() == [1024.0 * 1024 + 1024] * 9
    total = sum(p.numel() for p in net.parameters())
    mode = Posterior.from_guide(guide).mode()  # θ = 0.5: everything kept
    assert net.num_weights_used(mode) == total


def _small_net():
    torch.manual_seed(3)
    return StochasticNetMLP(12, 3, depth=5, width=16).double()


def test_num_weights_used_counts_kept_rows_and_columns():
    net = _small_net()
    total = sum(p.numel() for p in net.parameters())
    ones = {"layers": [1] * 4, "units": [[1] * 16] * 5}
    assert net.num_weights_used(ones) == total
    assert net.num_weights_used({**ones, "layers": [1, 0, 1, 1]}) == total - (16 * 16 + 16)
    units = [[1] * 16 for _ in range(5)]
    units[0] = [1] * 10 + [0] * 6  # layer 1 keeps 10 units: 10 rows of W1, 10 columns of W2
    assert net.num_weights_used({"layers": [1] * 4, "units": units}) == (
        (10 * 12 + 10) + (16 * 10 + 16) + 3 * (16 * 16 + 16) + (3 * 16 + 3)
    )
    units[2] = [0] * 16  # layer 3 outputs zeros: nothing before it reaches the output
    assert net.num_weights_used({"layers": [1] * 4, "units": units}) == (
        (16 * 0 + 16) + (16 * 16 + 16) + (3 * 16 + 3)
    )


# -- (f) one batched pass equals each architecture alone ----------------------------------------


def _plan(num_arch, full_layers=False):
    g = torch.Generator().manual_seed(1)
    layers = torch.tensor([[1, 0, 1, 1], [1, 0, 0, 1], [1, 0, 1, 0], [1, 0, 0, 1], [1, 0, 1, 1],
                           [1, 0, 1, 0]], dtype=torch.float64)[:num_arch]  # all / none / runs
    units = (torch.rand(num_arch, 5, 16, generator=g) < 0.7).double()
    if full_layers:  # masks of all ones: for every sample (layers 1, 4), for some (layer 3)
        units[:, 0] = units[:, 3] = 1.0
        units[:2, 2] = 1.0
    return {"layers": layers, "units": units}


@pytest.mark.parametrize("full_layers", [False, True])
@pytest.mark.parametrize("per_sample", [False, True])
def test_batched_pass_equals_each_architecture_alone(per_sample, full_layers):
    net = _small_net()
    S, n = 6, 7
    data = _plan(S, full_layers)
    x = torch.randn((S, n, 12) if per_sample else (n, 12), generator=torch.Generator().manual_seed(2),
                    dtype=torch.float64)
    with arch_plate(S):
        batched = poutine.condition(net, data=data)(x)
    assert batched.shape == (S, n, 3)
    for s in range(S):
        one = {k: v[s : s + 1] for k, v in data.items()}
        with arch_plate(1):
            alone = poutine.condition(net, data=one)(x[s] if per_sample else x)
        torch.testing.assert_close(batched[s], alone[0], rtol=1e-12, atol=1e-12)


def test_masks_drop_units_without_rescaling_and_skips_forward():
    net = _small_net()
    x = torch.randn(4, 12, dtype=torch.float64)
    data = _plan(1)
    with arch_plate(1):
        out = poutine.condition(net, data=data)(x)[0]
    mask = data["units"][0]
    h = torch.relu(net.input(x)) * mask[0]
    for j, layer in enumerate(net.hidden):
        if data["layers"][0, j]:
            h = torch.relu(layer(h)) * mask[j + 1]
    torch.testing.assert_close(out, net.output(h), rtol=1e-12, atol=1e-12)


def test_deterministic_prediction_is_the_unscaled_mode():
    net = _small_net()
    specs = discover_sites(net, torch.zeros(1, 12, dtype=torch.float64))
    guide = auto_guide(sites=specs).double()
    bern, shared = guide.guides
    with torch.no_grad():
        bern.theta("layers").copy_(torch.tensor([0.9, 0.2, 0.5, 0.7]))
        shared.theta("units").copy_(torch.tensor([0.6, 0.95, 0.5, 0.8, 0.99]))
    x = torch.randn(5, 12, dtype=torch.float64)
    h = torch.relu(net.input(x))  # every rate ≥ 0.5: no unit dropped, nothing rescaled
    for j in (0, 2, 3):
        h = torch.relu(net.hidden[j](h))
    torch.testing.assert_close(predict_deterministic(net, guide, x), net.output(h))
    with torch.no_grad():
        shared.theta("units")[3] = 0.3  # layer 4 (kept) drops every unit: only the biases after it
    want = net.output(torch.relu(net.hidden[3](torch.zeros(5, 16, dtype=torch.float64))))
    torch.testing.assert_close(predict_deterministic(net, guide, x), want)


# -- (e) a short search moves θ_unit the right way ---------------------------------------------------


@pytest.mark.parametrize("adaptive", [False, True])
def test_search_raises_a_useful_rate_and_lowers_a_harmful_one(adaptive):
    # Keeping units of group 0 lowers the loss, of group 1 raises it; group 2 does not matter.
    model = SharedToy(torch.zeros(B), torch.tensor([-1.0, 1.0, 0.0]), noise=0.3, seed=4)
    guide = auto_guide(model)
    search = ArchitectureSearch(
        model, guide, RankingNaturalGradientLoss(num_samples=2),
        weight_optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1),
        arch_optimizers=guide.make_optimizers(
            {"shared-bernoulli": NaturalGradientOptions(adaptive=adaptive)}),
        generator=torch.Generator().manual_seed(0),
    )
    for _ in range(100):
        search.step()
    theta = guide.guides[1].theta("units").detach()
    d = B + G
    assert float(theta[0]) > 0.75 and float(theta[1]) < 0.25, theta  # from 0.5, within [1/7, 6/7]
    assert float(theta.min()) >= 1 / d - 1e-6 and float(theta.max()) <= 1 - 1 / d + 1e-6
    assert guide.mode()["units"][0].tolist() == [1.0] * U and guide.mode()["units"][1].tolist() == [0.0] * U


def test_stochastic_net_search_step_runs_end_to_end():
    net = StochasticNetMLP(12, 3, depth=4, width=8)
    x, y = torch.randn(16, 12), torch.randint(0, 3, (16,))
    guide = auto_guide(net, x)
    loss = RankingNaturalGradientLoss(num_samples=2, penalty=0.01, costs=net.complexity_costs())
    search = ArchitectureSearch(
        net, guide, loss, weight_optimizer=torch.optim.SGD(net.parameters(), lr=0.01),
        arch_optimizers=guide.make_optimizers(), generator=torch.Generator().manual_seed(0),
    )
    before = guide.guides[1].theta("units").detach().clone()
    for _ in range(3):
        out = search.step(x, y)
    assert out["samples"]["units"].shape == (2, 4, 8) and torch.isfinite(out["loss"])
    assert not torch.equal(guide.guides[1].theta("units").detach(), before)


# -- (g) bad inputs state the rule and the value ------------------------------------------------


def _declare(**kw):
    with arch_plate(1):
        return sites.shared_bernoulli("u", **kw)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: _declare(shape=2, group_size=0),
         r"`group_size` must be an integer >= 1, but got group_size=0\."),
        (lambda: _declare(shape=2, group_size=True), r"but got group_size=True\."),
        (lambda: _declare(shape=0, group_size=3), r"positive sizes, but got shape=\(0,\)"),
        (lambda: _declare(shape=2, group_size=3, probs=1.5),
         r"`probs` must lie in \[0, 1\], but got probs=1.5"),
        (lambda: _declare(shape=2, group_size=3, choices=("a",)), r"names its 2 values 0 and 1"),
        (lambda: _declare(shape=2, group_size=3, edges=[("a", "b")] * 2),
         r"has 6 variables, so `edges` needs 6 \(source, target\) pairs, but got 2\."),
        (lambda: SharedBernoulliGuide([SiteSpec("u", "shared-bernoulli", (2, 3), group_size=3)], init=1.5),
         r"`init` must lie in \[0.0, 1.0\], but got init=1.5"),
        (lambda: SharedBernoulliGuide([SiteSpec("u", "shared-bernoulli", (2, 3), group_size=3)],
                                      init={"u": [0.5, 0.5, 0.5]}),
         r"must broadcast to its group shape \(2,\), but got shape \(3,\)"),
        (lambda: SharedBernoulliGuide([SiteSpec("u", "shared-bernoulli", (2, 3), group_size=4)]),
         r"needs shape \(\*groups, group_size\), but got shape=\(2, 3\), group_size=4"),
        (lambda: SharedBernoulliGuide([SiteSpec("b", "bernoulli", (2,))]),
         r"takes shared-bernoulli sites only, but got \['b'\]"),
        (lambda: SharedBernoulliGuide([SiteSpec("u", "shared-bernoulli", (3, 2), group_size=2)])
         .expected_cost({"u": torch.ones(3, 2)}),
         r"must have the shape of its θ \(3,\) \(one per group\), but got \(3, 2\)"),
        (lambda: SharedBernoulliNaturalGradient([torch.full((4,), 0.5)], group_size=0),
         r"`group_size` must be an integer >= 1, but got group_size=0\."),
        (lambda: SharedBernoulliNaturalGradient([torch.full((4,), 0.5)], group_size=[1, 2]),
         r"one size per θ tensor of the group, but got 2 sizes for 1 tensors: group_size=\[1, 2\]"),
        (lambda: SharedBernoulliNaturalGradient([torch.full((4,), 0.5), torch.full((2,), 0.5)],
                                                     group_size=[1, 0]),
         r"`group_size` must hold integers >= 1, but got group_size=\[1, 0\]\."),
        (lambda: SharedBernoulliNaturalGradient([torch.full((2,), 0.5)], group_size=8),
         r"d >= 3 θ entries.*but got d=2; pass theta_min"),
        (lambda: SharedBernoulliNaturalGradient([torch.tensor([0.5, 1.5, 0.2])], group_size=8),
         r"θ must lie in \[0, 1\], but got values in \[0.2\d*, 1.5\]"),
        (lambda: SharedBernoulliNaturalGradient([torch.full((4,), 0.5)], group_size=8, lr=-1.0),
         r"`lr` must be positive, but got lr=-1.0\."),
        (lambda: StochasticNetMLP(depth=1), r"`depth` must be an integer >= 2 .*but got depth=1\."),
        (lambda: StochasticNetMLP(width=0), r"`width` must be an integer >= 1, but got width=0\."),
        (lambda: StochasticNetMLP(num_classes=1),
         r"`num_classes` must be an integer >= 2, but got num_classes=1"),
    ],
)
def test_bad_inputs_state_the_rule_and_the_value(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_architectures_and_inputs_of_the_space():
    net = StochasticNetMLP(12, 3, depth=3, width=4)
    specs = discover_sites(net, torch.zeros(1, 12))
    good = {"layers": [1, 0], "units": [[1, 0, 1, 1]] * 3}
    assert architecture_to_tensors(good, specs)["units"].shape == (1, 3, 4)
    with pytest.raises(ValueError, match=r"Shared-rate Bernoulli site 'units' takes 0/1 values, but got"):
        architecture_to_tensors({**good, "units": [[2, 0, 1, 1]] * 3}, specs)
    with pytest.raises(ValueError, match=r"'units' has shape \(3, 4\), but the architecture gives a value "
                                         r"of shape \(3,\)"):
        architecture_to_tensors({**good, "units": [1, 1, 1]}, specs)
    with pytest.raises(ValueError, match=r"`units` of shape \(3, 4\), but got \(2,\) and \(3, 3\)"):
        net.num_weights_used({"layers": [1, 0], "units": [[1, 1, 1]] * 3})
    with pytest.raises(ValueError, match=r"inputs \(N, 12\) or \(S, n, 12\), but got x of shape \(2, 10\)"):
        with arch_plate(1):
            net(torch.zeros(2, 10))
    with pytest.raises(ValueError, match=r"need S = 2 architectures, but got x of shape \(3, 4, 12\)"):
        with arch_plate(2):
            net(torch.zeros(3, 4, 12))
