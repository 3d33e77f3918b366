"""Guide state keyed by site name: a reorder loads by name, a mismatch raises naming the sites."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import pytest
import torch
from torch import nn

from bayesnas import sites
from bayesnas.guides import (
    BernoulliGuide,
    CategoricalGuide,
    FixedGuide,
    GaussianGuide,
    GuideList,
    NormalGuide,
    NormalWeightGuide,
    SharedBernoulliGuide,
    auto_guide,
)
from bayesnas.guides.state import check_site_order, site_order
from bayesnas.sites import SiteSpec, discover_sites

# -- models -------------------------------------------------------------------------------
#: How each site is declared; a model declares some of them in a given order.
DECLARE: dict[str, Callable[[], object]] = {
    "cell.a": lambda: sites.bernoulli("cell.a", 2),
    "cell.b": lambda: sites.bernoulli("cell.b", 3),
    "cell.normal.n2.op0": lambda: sites.categorical("cell.normal.n2.op0", ["conv", "pool", "skip"], 2),
    "width": lambda: sites.integer("width", 8, 64, step=8, base=32),
    "depth": lambda: sites.integer("depth", 1, 6, shape=2),
}


def model_of(order: Sequence[str]) -> Callable[..., None]:
    def model(x: object = None) -> None:
        for name in order:
            DECLARE[name]()

    return model


def guide_of(order: Sequence[str]) -> nn.Module:
    return auto_guide(sites=discover_sites(model_of(order)))


def randomize(guide: nn.Module, seed: int) -> None:
    """Distinct values in every tensor of the state (in their domains: θ of Bernoulli and
    categorical sites stay probabilities, μ grid coordinates, σ positive)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in guide.state_dict(keep_vars=True).values():
            value = torch.rand(t.shape, generator=gen, dtype=t.dtype)
            t.copy_(value / value.sum(-1, keepdim=True) if t.dim() and t.shape[-1] == 3 else value)


def by_site(guide: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in guide.state_dict().items()}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def save_load(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# -- keys ---------------------------------------------------------------------------------
def test_keys_carry_site_names_while_parameters_keep_their_names_order_and_tensors():
    g = BernoulliGuide([SiteSpec("cell.a", "bernoulli", (2,)), SiteSpec("cell.b", "bernoulli", (3,))])
    params = list(g.parameters())
    state = g.state_dict(keep_vars=True)
    assert list(state) == ["sites.cell.a.theta", "sites.cell.b.theta"]
    assert [v for v in state.values()] == params  # the same tensors, in parameter order
    # Only the state keys changed: names (pyro.module) and order (optimizers) are torch's.
    assert [n for n, _ in g.named_parameters()] == ["thetas.0", "thetas.1"]
    assert params[0] is g.theta("cell.a") and params[1] is g.theta("cell.b")
    assert site_order(state) == ["cell.a", "cell.b"]


def test_every_guide_keys_its_state_by_site():
    bern = SiteSpec("cell.a", "bernoulli", (2,))
    assert list(SharedBernoulliGuide([SiteSpec("drop", "shared-bernoulli", (3, 4), group_size=4)])
                .state_dict()) == ["sites.drop.theta"]
    cat = CategoricalGuide([SiteSpec("c.op", "categorical", (), 3)])
    assert list(cat.state_dict()) == ["sites.c.op.theta"]
    assert list(NormalGuide([SiteSpec("alpha", "normal", (2, 3), 3)]).state_dict()) == [
        "sites.alpha.loc", "sites.alpha.log_sigma2"]
    int_spec = discover_sites(model_of(["width"]))["width"]
    assert list(GaussianGuide([int_spec]).state_dict()) == ["sigma", "sites.width.mu"]
    assert list(GaussianGuide([int_spec], adapt_sigma=True).state_dict()) == [
        "sigma", "sites.width.mu", "sites.width.variance"]
    net = nn.Linear(3, 2)
    assert list(NormalWeightGuide(net, prefix="fc").state_dict()) == [
        "sites.fc.weight.loc", "sites.fc.bias.loc", "sites.fc.weight.log_sigma2", "sites.fc.bias.log_sigma2"]
    assert list(NormalWeightGuide(net, prefix="w", flat=True).state_dict()) == [
        "sites.w.loc", "sites.w.log_sigma2"]
    assert list(FixedGuide({"cell.a": [1, 0]}, {"cell.a": bern}).state_dict()) == ["sites.cell.a.value"]


# -- a reorder loads by name --------------------------------------------------------------
def test_a_reordered_model_loads_theta_by_site_name_not_by_position():
    old = guide_of(["cell.a", "cell.b"])
    with torch.no_grad():
        old.theta("cell.a").copy_(torch.tensor([0.1, 0.2]))
        old.theta("cell.b").copy_(torch.tensor([0.7, 0.8, 0.9]))
    state = save_load(old.state_dict())

    new = guide_of(["cell.b", "cell.a"])
    assert new.site_names == ["cell.b", "cell.a"]
    params = list(new.parameters())
    new.load_state_dict(state)
    assert new.theta("cell.a").tolist() == pytest.approx([0.1, 0.2])
    assert new.theta("cell.b").tolist() == pytest.approx([0.7, 0.8, 0.9])
    assert all(p is q for p, q in zip(new.parameters(), params, strict=True))  # loaded in place


def test_the_same_sites_equal_shapes_reordered_still_load_by_name():
    # Equal shapes are the dangerous case: positional keys would have matched and swapped.
    specs = [SiteSpec("x", "bernoulli", (2,)), SiteSpec("y", "bernoulli", (2,))]
    old = BernoulliGuide(specs, init={"x": [0.1, 0.2], "y": [0.8, 0.9]})
    new = BernoulliGuide(specs[::-1])
    new.load_state_dict(old.state_dict())
    assert torch.equal(new.theta("x"), old.theta("x")) and torch.equal(new.theta("y"), old.theta("y"))


# -- a mismatch raises, naming the sites --------------------------------------------------
def test_a_missing_site_raises_naming_it():
    state = guide_of(["cell.a"]).state_dict()
    with pytest.raises(ValueError, match=r"missing sites \(declared by the guide, absent from the state\): "
                                         r"\['cell.b'\]"):
        guide_of(["cell.b", "cell.a"]).load_state_dict(state)


def test_an_extra_site_raises_naming_it():
    state = guide_of(["cell.a", "cell.b"]).state_dict()
    with pytest.raises(ValueError, match=r"extra sites \(in the state, not declared by the guide\): "
                                         r"\['cell.b'\]"):
        guide_of(["cell.a"]).load_state_dict(state)


def test_a_reshaped_site_raises_naming_it_and_both_shapes():
    state = BernoulliGuide([SiteSpec("cell.a", "bernoulli", (2,))]).state_dict()
    g = BernoulliGuide([SiteSpec("cell.a", "bernoulli", (5,))])
    with pytest.raises(ValueError, match=r"reshaped sites: 'cell.a' theta: shape \(2,\) in the state, "
                                         r"\(5,\) in the guide"):
        g.load_state_dict(state)


def test_a_failed_load_changes_nothing():
    old = guide_of(["cell.a", "cell.b", "width"])
    randomize(old, 0)
    state = old.state_dict()
    state["sites.width.mu"] = torch.zeros(3)  # reshaped: nothing at all may be copied
    new = guide_of(["cell.a", "cell.b", "width"])
    before = by_site(new)
    with pytest.raises(ValueError, match=r"'width' mu: shape \(3,\) in the state, \(\) in the guide"):
        new.load_state_dict(state)
    assert_same_state(by_site(new), before)


def test_a_mismatch_raises_whatever_strict_says():
    state = guide_of(["cell.a", "cell.b"]).state_dict()
    with pytest.raises(ValueError, match=r"extra sites .*\['cell.b'\]"):
        guide_of(["cell.a"]).load_state_dict(state, strict=False)


def test_every_problem_is_named_at_once():
    state = guide_of(["cell.a", "width"]).state_dict()
    state["sites.width.mu"] = torch.zeros(2)
    with pytest.raises(ValueError) as err:
        guide_of(["cell.b", "width", "depth"]).load_state_dict(state)
    msg = str(err.value)
    assert "missing sites (declared by the guide, absent from the state): ['cell.b', 'depth']" in msg
    assert "extra sites (in the state, not declared by the guide): ['cell.a']" in msg
    assert "'width' mu: shape (2,) in the state, () in the guide" in msg


# -- a state from before named sites ------------------------------------------------------
def positional(guide: nn.Module) -> dict[str, torch.Tensor]:
    """The state torch's own ``state_dict`` gives: what guides saved before named sites."""
    return {k: v.detach().clone() for k, v in nn.Module.state_dict(guide).items()}


def test_a_positional_state_raises_rather_than_swapping():
    old = BernoulliGuide([SiteSpec("x", "bernoulli", (2,)), SiteSpec("y", "bernoulli", (2,))])
    state = positional(old)
    assert list(state) == ["thetas.0", "thetas.1"]
    new = BernoulliGuide([SiteSpec("y", "bernoulli", (2,)), SiteSpec("x", "bernoulli", (2,))])
    with pytest.raises(ValueError, match=r"it predates named sites\. Its keys \['thetas.0', 'thetas.1'\] "
                                         r"give .* by position.*expects the sites \['y', 'x'\]"):
        new.load_state_dict(state)


def test_a_positional_guide_list_state_raises():
    old = guide_of(["cell.a", "cell.normal.n2.op0", "width"])
    state = {}
    for i, g in enumerate(old.guides):  # torch's keys all the way down
        state.update({f"guides.{i}.{k}": v for k, v in positional(g).items()})
    assert "guides.0.thetas.0" in state
    with pytest.raises(ValueError, match=r"GuideList: it predates named sites.*'guides.0.thetas.0'"):
        guide_of(["width", "cell.normal.n2.op0", "cell.a"]).load_state_dict(state)


def test_a_positional_state_upgrades_when_the_order_is_known_to_be_the_same():
    old = guide_of(["cell.a", "cell.b", "cell.normal.n2.op0", "width"])
    randomize(old, 1)
    legacy = {}
    for i, g in enumerate(old.guides):
        legacy.update({f"guides.{i}.{k}": v for k, v in positional(g).items()})
    new = guide_of(["cell.a", "cell.b", "cell.normal.n2.op0", "width"])
    new.load_state_dict(new.upgrade_positional_state(legacy))
    assert_same_state(by_site(new), by_site(old))


# -- GuideList: mixed families ------------------------------------------------------------
MIXED = ["cell.a", "cell.normal.n2.op0", "width", "cell.b", "depth"]


def test_a_mixed_guide_list_round_trips_exactly_through_a_checkpoint():
    old = guide_of(MIXED)
    assert isinstance(old, GuideList) and [type(g) for g in old.guides] == [
        BernoulliGuide, CategoricalGuide, GaussianGuide]
    randomize(old, 2)
    old.guides[2].set_sigma(0.75)
    state = save_load(old.state_dict())
    assert set(state) == {"sites.cell.a.theta", "sites.cell.b.theta", "sites.cell.normal.n2.op0.theta",
                          "sites.width.mu", "sites.depth.mu", f"{GaussianGuide.family}.sigma"}
    new = guide_of(MIXED)
    new.load_state_dict(state)
    assert_same_state(by_site(new), by_site(old))
    assert float(new.guides[2].sigma) == 0.75


def test_a_mixed_guide_list_survives_a_site_reorder():
    old = guide_of(MIXED)
    randomize(old, 3)
    old.guides[2].set_sigma(0.5)
    new = guide_of(["depth", "cell.b", "width", "cell.normal.n2.op0", "cell.a"])
    assert new.guides[0].site_names == ["cell.b", "cell.a"]
    params = list(new.parameters())
    new.load_state_dict(old.state_dict())
    for name in MIXED:
        for g_old, g_new in zip(old.guides, new.guides, strict=True):
            if name in g_old.specs:
                assert torch.equal(g_new.theta(name), g_old.theta(name)), name
    assert float(new.guides[2].sigma) == 0.5
    assert all(p is q for p, q in zip(new.parameters(), params, strict=True))


def test_sites_moving_between_guides_and_guides_reordered_load_by_name():
    a, b = SiteSpec("cell.a", "bernoulli", (2,)), SiteSpec("cell.b", "bernoulli", (3,))
    grid = discover_sites(model_of(["width"]))["width"]
    old = GuideList(BernoulliGuide([a, b]), GaussianGuide([grid], adapt_sigma=True))
    randomize(old, 4)
    # b is now held fixed in a guide of its own, and the Gaussian guide comes first.
    new = GuideList(GaussianGuide([grid], adapt_sigma=True), BernoulliGuide([a]),
                    BernoulliGuide([b], learnable=False))
    new.load_state_dict(old.state_dict())
    assert torch.equal(new.guides[1].theta("cell.a"), old.guides[0].theta("cell.a"))
    assert torch.equal(new.guides[2].theta("cell.b"), old.guides[0].theta("cell.b"))
    assert torch.equal(new.guides[0].theta("width"), old.guides[1].theta("width"))
    assert torch.equal(new.guides[0].variances[0], old.guides[1].variances[0])
    assert torch.equal(new.guides[0].sigma, old.guides[1].sigma)


def test_a_guide_list_mismatch_names_the_sites():
    state = guide_of(["cell.a", "cell.normal.n2.op0", "width", "depth"]).state_dict()
    expected = r"GuideList.*missing sites .*\['cell.b'\].*extra sites .*\['depth'\]"
    with pytest.raises(ValueError, match=expected):
        guide_of(["cell.a", "cell.normal.n2.op0", "width", "cell.b"]).load_state_dict(state)


# -- other guides -------------------------------------------------------------------------
def test_normal_guide_round_trips_and_reorders_by_name():
    x, y = SiteSpec("x", "normal", (2, 3), 3), SiteSpec("y", "normal", (4, 3), 3)
    old = NormalGuide([x, y], generator=torch.Generator().manual_seed(0))
    randomize(old, 5)
    new = NormalGuide([y, x])
    new.load_state_dict(save_load(old.state_dict()))
    for name in ("x", "y"):
        assert torch.equal(new.loc(name), old.loc(name))
        assert torch.equal(new.log_sigma2(name), old.log_sigma2(name))


def test_normal_weight_guide_round_trips_and_refuses_another_module():
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    old = NormalWeightGuide(net, prefix="w")
    randomize(old, 6)
    new = NormalWeightGuide(net, prefix="w")
    new.load_state_dict(save_load(old.state_dict()))
    assert_same_state(by_site(new), by_site(old))
    flat = NormalWeightGuide(net, prefix="w", flat=True).state_dict()
    other = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1, bias=False))
    no_bias = NormalWeightGuide(other, prefix="w", flat=True)
    with pytest.raises(ValueError, match=r"reshaped sites: 'w' loc: shape \(11,\) in the state, \(10,\)"):
        no_bias.load_state_dict(flat)


def test_a_guide_inside_another_module_saves_and_loads_by_name():
    class Holder(nn.Module):
        def __init__(self, order: Sequence[str]) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(2))
            self.arch = guide_of(order)

    old = Holder(MIXED)
    randomize(old.arch, 7)
    state = save_load(old.state_dict())
    assert "arch.sites.cell.normal.n2.op0.theta" in state and f"arch.{GaussianGuide.family}.sigma" in state
    new = Holder(MIXED[::-1])
    new.load_state_dict(state)
    assert_same_state(by_site(new.arch), by_site(old.arch))
    with pytest.raises(ValueError, match=r"extra sites .*\['depth'\]"):
        Holder(MIXED[:-1]).load_state_dict(state)


def test_fixed_guide_loads_by_name_and_its_older_named_keys():
    specs = discover_sites(model_of(["cell.a", "cell.normal.n2.op0"]))
    old = FixedGuide({"cell.a": [1, 0], "cell.normal.n2.op0": [2, 1]}, specs)
    new = FixedGuide({"cell.a": [0, 0], "cell.normal.n2.op0": [0, 0]}, dict(reversed(specs.items())))
    new.load_state_dict(old.state_dict())
    assert new.mode()["cell.a"].tolist() == [1, 0] and new.mode()["cell.normal.n2.op0"].tolist() == [2, 1]
    older = positional(old)  # value_<site, "." as "__">: named already, so it loads
    assert set(older) == {"value_cell__a", "value_cell__normal__n2__op0"}
    other = FixedGuide({"cell.a": [0, 0], "cell.normal.n2.op0": [0, 0]}, specs)
    other.load_state_dict(older)
    assert other.mode()["cell.a"].tolist() == [1, 0]


def test_check_site_order_guards_the_positional_optimizer_states():
    old = guide_of(MIXED)
    state = old.state_dict()
    check_site_order(guide_of(MIXED), state)  # same order: the optimizers' states line up
    reordered = guide_of(["cell.b", "cell.a", "cell.normal.n2.op0", "width", "depth"])
    reordered.load_state_dict(state)  # the guide itself loads by name ...
    with pytest.raises(ValueError, match=r"another order.*Saved sites: \['cell.a', 'cell.b',.*"
                                         r"now: \['cell.b', 'cell.a',"):
        check_site_order(reordered, state)  # ... its optimizers' states would not
