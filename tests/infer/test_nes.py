"""nes2019's family: integer sites, the Gaussian guide, the NES loss and natural gradient, and
algorithm 1 on a toy whose optimum is known by enumeration."""

import itertools
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from bayesnas import sites
from bayesnas.analysis import GaussianIntegerMarginal, marginal_from_summary
from bayesnas.guides import GaussianGuide, auto_guide
from bayesnas.infer.losses import guide_log_prob
from bayesnas.infer.nes import NESArchitectureSearch, NESLoss, grid_values
from bayesnas.infer.schedules import linear_decay
from bayesnas.infer.utility import baseline_difference_utility
from bayesnas.optim import GaussianNaturalGradient
from bayesnas.sites import IntegerGrid, arch_plate, discover_sites

TARGET = {"a": 25, "b": 14}
SCALE = 5.0


def toy(x=None, y=None):
    """L_c = mean over the sites of ((v − target)/5)², plus a constant (a Normal likelihood)."""
    a = sites.integer("a", 0, 40, base=5)
    b = sites.integer("b", 0, 40, step=2, base=30)
    pred = torch.stack([a, b], -1).to(torch.get_default_dtype()) / SCALE
    target = torch.tensor([TARGET["a"], TARGET["b"]], dtype=pred.dtype) / SCALE
    pyro.sample("obs", dist.Normal(pred, math.sqrt(0.5)).to_event(1), obs=target.expand_as(pred))


def _guide(**options):
    return GaussianGuide(discover_sites(toy), **options)


def test_integer_grid_rounds_down_and_clips_every_real_into_range():
    grid = IntegerGrid(3, 48, 3, base=24)
    assert grid.size == 16 and grid.base_index() == 7
    u = torch.cat([torch.linspace(-50, 50, 2001), torch.tensor([-1e9, 1e9, 15.0, 15.999, 16.0])])
    values = grid.value(grid.index(u))
    assert bool(((values >= 3) & (values <= 48) & ((values - 3) % 3 == 0)).all())
    assert values[-3].item() == 48 and values[-2].item() == 48  # the top cell and above it
    assert grid.value(grid.index(torch.tensor([0.0, 0.999, 1.0, -0.001]))).tolist() == [3, 3, 6, 3]
    # A value on the grid is its own coordinate's value: exported architectures replay exactly.
    on_grid = torch.arange(3, 49, 3, dtype=torch.float32)
    assert torch.equal(grid.value(grid.index(grid.coordinate(on_grid))), on_grid.long())
    assert grid.contains([3, 48]) and not grid.contains([4]) and not grid.contains([51])
    with pytest.raises(ValueError, match=r"`low <= high` with `high - low` a multiple of `step` must hold, "
                                         r"but got \(low=3, high=10, step=3\)"):
        IntegerGrid(3, 10, 3)
    with pytest.raises(ValueError, match="`base` must be one of the values 3, 6, ..., 48, but got base=5"):
        IntegerGrid(3, 48, 3, base=5)


def test_integer_sites_are_discovered_and_the_model_sees_grid_values_only():
    specs = discover_sites(toy)
    assert {n: (s.family, s.grid) for n, s in specs.items()} == {
        "a": ("gaussian-integer", IntegerGrid(0, 40, 1, 5)),
        "b": ("gaussian-integer", IntegerGrid(0, 40, 2, 30))}
    seen = {}

    def model():
        seen["b"] = sites.integer("b", 0, 40, step=2)

    for x in (-7.3, 0.0, 13.9, 39.99, 41.5, 1e6):
        with arch_plate(1):
            poutine.condition(model, data={"b": torch.tensor([x])})()
        assert seen["b"].dtype == torch.long
        assert seen["b"].item() == min(max(2 * math.floor(x / 2), 0), 40)
    assert auto_guide(sites=specs).__class__ is GaussianGuide
    with pytest.raises(ValueError, match="Integer site 'a' takes the values 0, 1, ..., 40, but got 41"):
        sites.architecture_to_tensors({"a": 41, "b": 2}, specs)


def test_guide_starts_at_the_base_architecture_and_its_mode_is_floor_mu():
    guide = _guide()
    assert guide.mode() == {"a": torch.tensor(5.0), "b": torch.tensor(30.0)}
    assert guide.theta("b").item() == 15.0  # grid coordinates: (30 − 0) / 2
    with torch.no_grad():
        guide.theta("a").fill_(7.9)
    assert guide.mode()["a"].item() == 7.0
    fn = guide.distribution("b")
    assert not fn.has_rsample  # a score-function sample, a constant for autograd
    assert getattr(fn, "base_dist", fn).scale.item() == pytest.approx(2 * 1.25)  # σ in grid steps × step
    with pytest.raises(ValueError, match=r"`sigma` must be a positive finite number \(grid steps\), but got "
                                         "sigma=0"):
        guide.set_sigma(0)
    with pytest.raises(ValueError, match=r"Initial μ of site 'a' must lie in \[0, 40\], but got 50.0"):
        _guide(init={"a": 50})


def test_natural_gradient_through_the_surrogate_is_the_closed_form_nes_gradient():
    """σ² ∇μ of −(1/M) Σ uᵢ log N(xᵢ; μ, σ²) is −(1/M) Σ uᵢ nᵢ (grid coordinates), and with
    uᵢ = −ΔLᵢ/σ one step of α is nes2019 eq. (9) with G of eq. (7)."""
    torch.manual_seed(0)
    guide = _guide(sigma=0.8)
    m = 64
    with arch_plate(m):
        trace = poutine.trace(guide).get_trace()
    x = {n: trace.nodes[n]["value"] for n in ("a", "b")}
    assert not any(v.requires_grad for v in x.values())
    mu0 = {n: guide.theta(n).detach().clone() for n in ("a", "b")}
    noise = {n: guide.specs[n].grid.coordinate(x[n]) - mu0[n] for n in x}  # nᵢ in grid steps
    delta_loss = torch.randn(m)
    utility = baseline_difference_utility(delta_loss + 3.0, 3.0, sigma=0.8)
    torch.testing.assert_close(utility, -delta_loss / 0.8)
    (-(utility * guide_log_prob(trace)).mean()).backward()
    for n in x:
        natural = 0.8**2 * guide.theta(n).grad
        torch.testing.assert_close(natural, -(utility * noise[n]).mean())
    alpha = 0.3
    (opt,) = guide.make_optimizers(lr=alpha)
    opt.step()
    for n in x:
        nes_g = (delta_loss * noise[n]).sum() / (0.8 * m)  # G = (1/(σM)) Σ ΔLᵢ nᵢ
        torch.testing.assert_close(guide.theta(n).detach(), mu0[n] - alpha * nes_g)


def test_optimizer_keeps_mu_in_the_grid_box_for_any_gradient():
    mu = torch.nn.Parameter(torch.tensor([0.5, 9.0, 4.0]))
    opt = GaussianNaturalGradient([{"params": [mu], "upper": 9.0}], lr=5.0, sigma=1.25)
    for g in (1e6, -1e6, float("1e30")):
        mu.grad = torch.full_like(mu, g)
        opt.step()
        assert bool(((mu >= 0) & (mu <= 9)).all())
    with pytest.raises(ValueError, match="`sigma` must be positive, but got sigma=-1"):
        GaussianNaturalGradient([mu], sigma=-1)
    with pytest.raises(ValueError, match=r"`lower <= upper` must hold, but got \(lower=2.0, upper=1.0\)"):
        GaussianNaturalGradient([mu], lower=2.0, upper=1.0)


def _enumerated_optimum(rho, budget):
    best = None
    for a, b in itertools.product(range(0, 41), range(0, 41, 2)):
        loss = (((a - 25) / SCALE) ** 2 + ((b - 14) / SCALE) ** 2) / 2
        if rho:
            loss += rho * (a * b / 100.0 - budget) ** 2
        best = min(best or (math.inf,), (loss, a, b))
    return best[1:]


@pytest.mark.parametrize("rho", [0.0, 2.0])
def test_search_lands_within_one_step_of_the_enumerated_optimum(rho):
    """A loss quadratic in H plus a budget ρ(R − R_t)², R = a·b/100: algorithm 1's H updates
    (no weights to train) end within one grid step of the optimum found by enumeration."""
    budget = 2.0
    a_opt, b_opt = _enumerated_optimum(rho, budget)
    torch.manual_seed(0)
    guide = _guide()
    loss = NESLoss(num_samples=100, resource=lambda v: (v["a"] * v["b"]).double() / 100.0, target=budget,
                   rho=rho) if rho else NESLoss(num_samples=100)
    dummy = torch.nn.Parameter(torch.zeros(1))
    steps = 150
    search = NESArchitectureSearch(toy, guide, loss, weight_optimizer=torch.optim.SGD([dummy], lr=0.1),
                                   arch_optimizer=guide.make_optimizers()[0],
                                   generator=torch.Generator().manual_seed(0), total_arch_steps=steps,
                                   lr=5.0)
    for _ in range(steps):
        metrics = search.arch_step(())
    assert metrics["sigma"] == pytest.approx(1.25 / steps) and metrics["lr"] == pytest.approx(5.0 / steps)
    mode = guide.mode()
    assert abs(mode["a"].item() - a_opt) <= 1 and abs(mode["b"].item() - b_opt) <= 2, (mode, a_opt, b_opt)
    with pytest.raises(ValueError, match="All 150 H updates are done"):
        search.arch_step(())


def test_a_resumed_search_repeats_the_uninterrupted_one_exactly():
    def make():
        torch.manual_seed(0)
        guide = _guide()
        dummy = torch.nn.Parameter(torch.zeros(1))
        return NESArchitectureSearch(toy, guide, NESLoss(num_samples=8),
                                     arch_optimizer=guide.make_optimizers()[0],
                                     weight_optimizer=torch.optim.SGD([dummy], lr=0.1),
                                     generator=torch.Generator().manual_seed(1), total_arch_steps=6)

    full = make()
    for _ in range(6):
        full.arch_step(())
    first = make()
    for _ in range(3):
        first.arch_step(())
    state = first.state_dict()
    resumed = make()
    resumed.load_state_dict(state)
    for _ in range(3):
        resumed.arch_step(())
    for n in ("a", "b"):
        assert torch.equal(resumed.guide.theta(n), full.guide.theta(n))


def test_the_summary_reads_as_a_marginal_over_the_grid_values():
    guide = _guide(sigma=0.5)
    with torch.no_grad():
        guide.theta("b").fill_(7.25)  # b = 14.5 in value units, σ = 1 value unit
    entry = guide.summary()["b"]
    assert entry["family"] == "gaussian-integer" and entry["mode"] == 14.0 and entry["step"] == 2
    m = marginal_from_summary("b", entry)
    assert isinstance(m, GaussianIntegerMarginal)
    assert list(m.labels) == [str(v) for v in range(0, 41, 2)]
    probs = m.flat_probs()[0]
    # P(14) = P(14 <= x < 16) for x ~ N(14.5, 1).
    phi = torch.distributions.Normal(14.5, 1.0).cdf
    expected = float(phi(torch.tensor(16.0)) - phi(torch.tensor(14.0)))
    assert probs[7].item() == pytest.approx(expected, rel=1e-5)
    assert probs.sum().item() == pytest.approx(1.0)


def test_linear_decay_is_exactly_linear_and_validates():
    assert [linear_decay(1.25, t, 5) for t in range(5)] == [1.25 * (1 - t / 5) for t in range(5)]
    with pytest.raises(ValueError, match=r"`0 <= step < total` must hold, but got \(step=5, total=5\)"):
        linear_decay(1.0, 5, 5)


def test_grid_values_and_loss_errors():
    guide = _guide()
    values = grid_values(guide, {"a": torch.tensor([-3.0, 12.7, 99.0]), "b": torch.tensor([3.9, 4.0, 41.0])})
    assert values["a"].tolist() == [0, 12, 40] and values["b"].tolist() == [2, 4, 40]
    with pytest.raises(ValueError, match="needs both `resource` and `target`"):
        NESLoss(resource=lambda v: v["a"])
    with pytest.raises(ValueError, match=r"`num_samples` \(M\) must be an integer >= 1, but got num_samples"):
        NESLoss(num_samples=0)


def test_adaptive_sigma_natural_gradient_is_the_closed_form_and_stays_in_bounds():
    """Beyond nes2019: σ² per hyper-parameter by the natural gradient, 2σ⁴ ∇σ² =
    −(1/M) Σ uᵢ ((xᵢ − μ)² − σ²) (grid coordinates), clipped into [min_sigma², max_sigma²]."""
    torch.manual_seed(0)
    guide = _guide(sigma=0.8, adapt_sigma=True)
    assert len(guide.arch_parameters()) == 4  # μ and σ² of both sites
    m = 64
    with arch_plate(m):
        trace = poutine.trace(guide).get_trace()
    mu0 = {n: guide.theta(n).detach().clone() for n in ("a", "b")}
    noise = {n: guide.specs[n].grid.coordinate(trace.nodes[n]["value"]) - mu0[n] for n in mu0}
    utility = torch.randn(m)
    (-(utility * guide_log_prob(trace)).mean()).backward()
    for i, n in enumerate(("a", "b")):
        var = guide.variances[i]
        expected = -(utility * (noise[n] ** 2 - 0.64)).mean()
        torch.testing.assert_close(2 * var.detach() ** 2 * var.grad, expected)
    (opt,) = guide.make_optimizers(lr=0.3, sigma_lr=0.2)
    opt.step()
    for i, n in enumerate(("a", "b")):
        expected = 0.64 + 0.2 * (utility * (noise[n] ** 2 - 0.64)).mean()
        torch.testing.assert_close(guide.variances[i].detach(), expected.clamp(0.05**2, 10.0**2))
        # μ's step used σ² from before the variance moved.
        torch.testing.assert_close(guide.theta(n).detach(), mu0[n] + 0.3 * (utility * noise[n]).mean())
    for g in (1e9, -1e9):
        for p in guide.arch_parameters():
            p.grad = torch.full_like(p, g)
        opt.step()
        assert all(0.05**2 - 1e-8 <= float(v.detach()) <= 100.0 + 1e-5 for v in guide.variances)
    with pytest.raises(ValueError, match="adapt_sigma=True\\): it has no σ to set"):
        guide.set_sigma(1.0)


def test_search_with_adaptive_sigma_lands_within_one_step_of_the_optimum():
    a_opt, b_opt = _enumerated_optimum(0.0, 2.0)
    torch.manual_seed(0)
    guide = _guide(adapt_sigma=True)
    dummy = torch.nn.Parameter(torch.zeros(1))
    steps = 150
    search = NESArchitectureSearch(toy, guide, NESLoss(num_samples=100),
                                   weight_optimizer=torch.optim.SGD([dummy], lr=0.1),
                                   arch_optimizer=guide.make_optimizers(sigma_lr=0.05)[0],
                                   generator=torch.Generator().manual_seed(0), total_arch_steps=steps)
    for _ in range(steps):
        search.arch_step(())
    mode = guide.mode()
    assert abs(mode["a"].item() - a_opt) <= 1 and abs(mode["b"].item() - b_opt) <= 2, (mode, a_opt, b_opt)
    assert all(float(v.detach().max()) < 1.25**2 for v in guide.variances)  # σ shrank around the optimum
