"""Posterior analysis against exact answers: enumeration of tiny spaces and closed forms."""

import itertools
import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesnas.analysis import (
    BernoulliMarginal,
    CategoricalMarginal,
    CollapseWarning,
    FixedMarginal,
    GaussianIntegerMarginal,
    NormalStrengthMarginal,
    Posterior,
    SharedBernoulliMarginal,
    check_collapse,
    collapse_report,
    convergence_curve,
    convergence_stats,
    marginal_from_summary,
    two_normal_winner_probability,
    winner_probabilities,
)
from bayesnas.guides import BernoulliGuide, CategoricalGuide, GuideList
from bayesnas.sites import SiteSpec


def _tiny_guide():
    """Three sites: 2 bits, one 3-way op, one 2×2 categorical; θ chosen with no ties."""
    bits = BernoulliGuide([SiteSpec("block.skip", "bernoulli", (2,), choices=("skip", "layer"))],
                          init={"block.skip": [0.83, 0.31]})
    ops = CategoricalGuide(
        [SiteSpec("cell.n0.op", "categorical", (), 3, ("conv", "pool", "skip")),
         SiteSpec("cell.n1.in", "categorical", (2,), 2)],
        init={"cell.n0.op": [0.57, 0.26, 0.17], "cell.n1.in": [[0.64, 0.36], [0.08, 0.92]]},
    )
    return GuideList(bits, ops)


def _enumerate(guide):
    """Every architecture with its probability, from the guide's own Pyro distributions."""
    specs = guide.specs
    supports = []
    for spec in specs.values():
        k = 2 if spec.family == "bernoulli" else spec.num_categories
        supports.append([torch.tensor(v).reshape(spec.shape)
                         for v in itertools.product(range(k), repeat=spec.numel)])
    dists = {n: d for g in guide.guides for n in g.specs for d in [g.distribution(n)]}
    out = []
    for combo in itertools.product(*supports):
        arch = dict(zip(specs, combo, strict=True))
        with torch.no_grad():
            logp = sum(float(dists[n].log_prob(v.to(dists[n].sample().dtype))) for n, v in arch.items())
        out.append(({n: v.tolist() for n, v in arch.items()}, math.exp(logp)))
    return out


def test_marginals_entropy_and_credible_set_match_exact_enumeration():
    guide = _tiny_guide()
    post = Posterior.from_guide(guide)
    joint = _enumerate(guide)
    assert sum(p for _, p in joint) == pytest.approx(1.0)
    # Per-variable marginals: sum the joint over everything else.
    for m in post:
        for i in range(m.num_variables):
            for j, value in enumerate(m.values):
                exact = sum(p for arch, p in joint
                            if torch.tensor(arch[m.name]).reshape(-1)[i].item() == value)
                assert m.flat_probs()[i, j].item() == pytest.approx(exact, abs=1e-6)  # float32 θ
    # Entropy of the joint = the posterior's (product) entropy.
    assert post.entropy() == pytest.approx(-sum(p * math.log(p) for _, p in joint), abs=1e-6)
    # Credible set: the k best of the enumeration, in order, with cumulative mass.
    ranked = sorted(joint, key=lambda ap: -ap[1])
    members = post.credible_set(k=len(joint))
    assert len(members) == len(joint) == 2 * 2 * 3 * 2 * 2
    for m, (arch, p) in zip(members, ranked, strict=True):
        assert m.probability == pytest.approx(p, abs=1e-6)
        assert m.architecture == arch
    assert [m.rank for m in members] == list(range(1, len(joint) + 1))
    assert members[-1].cumulative == pytest.approx(1.0)
    assert members[0].architecture == post.mode() == {
        "block.skip": [1, 0], "cell.n0.op": 0, "cell.n1.in": [0, 1]}
    assert post.log_prob(ranked[5][0]) == pytest.approx(math.log(ranked[5][1]), abs=1e-5)


def test_credible_set_stops_at_the_requested_mass():
    post = Posterior.from_guide(_tiny_guide())
    members = post.credible_set(k=100, mass=0.5)
    assert members[-1].cumulative >= 0.5 > members[-2].cumulative


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.0, 1.0).map(lambda t: round(t, 3)), min_size=1, max_size=6), st.integers(1, 20))
def test_credible_set_is_sorted_distinct_and_exact_for_any_bits(theta, k):
    post = Posterior([BernoulliMarginal("b", theta)])
    members = post.credible_set(k=k)
    probs = [m.probability for m in members]
    assert probs == sorted(probs, reverse=True)
    archs = [tuple(m.architecture["b"]) for m in members]
    assert len(set(archs)) == len(archs)
    enum = sorted((math.prod(t if b else 1 - t for t, b in zip(theta, bits, strict=True))
                   for bits in itertools.product([0, 1], repeat=len(theta))), reverse=True)
    nonzero = [p for p in enum if p > 0]
    assert len(members) == min(k, len(nonzero))
    assert probs == pytest.approx(nonzero[: len(members)], abs=1e-12)
    for m in members:
        assert post.log_prob(m.architecture) == pytest.approx(math.log(m.probability), abs=1e-9)
        assert m.log_probability == pytest.approx(math.log(m.probability), abs=1e-9)


def test_credible_set_scales_to_thousands_of_bits():
    theta = torch.linspace(0.02, 0.98, 3072)
    members = Posterior([BernoulliMarginal("act", theta.reshape(3, 1024))]).credible_set(k=50)
    probs = [m.probability for m in members]
    assert len(members) == 50 and probs == sorted(probs, reverse=True)
    # 3,072 undecided bits: each architecture's probability underflows, its log does not.
    assert members[0].probability == 0.0 and members[0].log_probability == pytest.approx(
        float(torch.maximum(theta, 1 - theta).double().log().sum()), rel=1e-9)
    # The runner-up flips the single most uncertain bit.
    (changes,) = members[1].differs_from_mode.values()
    assert len(changes) == 1 and abs(theta[changes[0][0]].item() - 0.5) < 0.01


def test_posterior_samples_follow_the_marginals():
    post = Posterior([BernoulliMarginal("b", [0.2, 0.9]), CategoricalMarginal("c", [[0.1, 0.6, 0.3]])])
    draws = post.sample(4000, generator=torch.Generator().manual_seed(0))
    b = torch.tensor([d["b"] for d in draws], dtype=torch.float64)
    c = torch.tensor([d["c"] for d in draws])
    assert b.mean(0).tolist() == pytest.approx([0.2, 0.9], abs=0.03)
    assert [(c == k).double().mean().item() for k in range(3)] == pytest.approx([0.1, 0.6, 0.3], abs=0.03)
    assert all(post.log_prob(d) > -math.inf for d in draws[:10])


def test_bernoulli_mode_keeps_a_bit_at_one_half():
    m = BernoulliMarginal("b", [0.5, 0.49, 0.51])
    assert m.mode().tolist() == [1, 0, 1]
    assert Posterior([m]).credible_set(k=1)[0].architecture == {"b": [1, 0, 1]}


def test_shared_rate_bits_are_units_with_one_rate_per_group():
    m = SharedBernoulliMarginal("drop", [0.8, 0.3], group_size=3)
    assert m.shape == (2, 3) and m.theta[1].tolist() == pytest.approx([0.3] * 3)
    h = lambda t: -(t * math.log(t) + (1 - t) * math.log(1 - t))  # noqa: E731
    assert float(m.entropy().sum()) == pytest.approx(3 * h(0.8) + 3 * h(0.3))
    again = marginal_from_summary("drop", m.to_summary())
    assert torch.equal(again.probs, m.probs) and again.group_size == 3


def test_gaussian_integer_marginal_is_the_floor_of_the_normal_clipped_to_its_range():
    mu, sigma, low, high = 3.4, 1.3, 1, 5
    m = GaussianIntegerMarginal("width", [mu], [sigma], low=low, high=high)
    normal = torch.distributions.Normal(torch.tensor(mu, dtype=torch.float64), sigma)
    cdf = lambda x: float(normal.cdf(torch.tensor(x, dtype=torch.float64)))  # noqa: E731
    expected = [cdf(low + 1)] + [cdf(v + 1) - cdf(v) for v in range(low + 1, high)] + [1 - cdf(high)]
    assert m.values == (1, 2, 3, 4, 5)
    assert m.probs[0].tolist() == pytest.approx(expected, abs=1e-12)
    assert m.mode().tolist() == [3]  # ⌊x⌋ = 3 for x in [3, 4), which holds μ = 3.4
    # Monte Carlo of the definition agrees.
    x = torch.randn(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * sigma + mu
    v = x.floor().clamp(low, high)
    freq = [(v == k).double().mean().item() for k in range(low, high + 1)]
    assert freq == pytest.approx(expected, abs=4e-3)


def test_mc_winner_probability_matches_the_closed_form_for_two_normals():
    mu = torch.tensor([[0.7, 0.2], [-0.1, 0.4], [1.0, 1.0]])
    sigma = torch.tensor([[0.5, 0.3], [0.2, 0.9], [0.4, 0.4]])
    n = 100_000
    p = winner_probabilities(mu, sigma, num_samples=n, generator=torch.Generator().manual_seed(1))
    for e in range(3):
        exact = two_normal_winner_probability(mu[e, 0].item(), sigma[e, 0].item(),
                                              mu[e, 1].item(), sigma[e, 1].item())
        # 5 standard errors of a binomial proportion.
        assert p[e, 0].item() == pytest.approx(exact, abs=5 * math.sqrt(exact * (1 - exact) / n))
        assert p[e].sum().item() == pytest.approx(1.0)
    assert two_normal_winner_probability(1.0, 0.4, 1.0, 0.4) == 0.5


def test_normal_strengths_give_snr_and_a_symmetric_winner_for_equal_ops():
    m = NormalStrengthMarginal("alpha", [[0.3, 0.3, 0.3], [2.0, 0.5, 0.1]],
                               [[0.2, 0.2, 0.2], [1.0, 0.1, 0.5]],
                               labels=("sep3x3", "skip", "zero"), num_samples=60_000)
    assert m.probs[0].tolist() == pytest.approx([1 / 3] * 3, abs=0.01)
    assert m.snr[1].tolist() == pytest.approx([2.0, 50.0, 0.4])
    assert m.snr_selection()[1].item() == 1  # SNR picks the sure op, the winner rule the strong one
    assert m.mode()[1].item() == 0
    again = marginal_from_summary("alpha", m.to_summary())
    assert torch.equal(again.probs, m.probs)  # seeded: the same estimate every time


def test_posterior_round_trips_through_its_summary():
    post = Posterior([
        BernoulliMarginal("b", [0.2, 0.9], labels=("off", "on"), edges=[("a", "b"), ("b", "c")]),
        CategoricalMarginal("c", [[0.1, 0.9]]),
        GaussianIntegerMarginal("w", [2.0], [0.5], low=1, high=3),
        NormalStrengthMarginal("n", [[0.1, 0.2]], [[0.1, 0.1]], num_samples=1000),
        FixedMarginal("f", [1, 0, 1]),
    ])
    again = Posterior.from_summary(post.to_summary())
    for m in post:
        assert torch.allclose(again[m.name].probs, m.probs) and again[m.name].labels == m.labels
        assert again[m.name].edges == m.edges
    assert again.mode() == post.mode()


def test_posterior_of_a_guide_agrees_with_the_guide():
    guide = _tiny_guide()
    post = Posterior.from_guide(guide)
    assert post.mode() == {k: v.long().tolist() for k, v in guide.mode().items()}
    assert post.entropy() == pytest.approx(float(guide.entropy()), abs=1e-6)
    assert post["block.skip"].labels == ("skip", "layer")


@pytest.mark.parametrize("bad, match", [
    (lambda: BernoulliMarginal("b", [1.2]), r"θ must lie in \[0, 1\]"),
    (lambda: GaussianIntegerMarginal("w", [1.0], [1.0], low=3, high=1),
     r"`low <= high` must hold, but got \(low=3, high=1\)"),
    (lambda: GaussianIntegerMarginal("w", [1.0], [0.0], low=0, high=1), "σ must be positive"),
    (lambda: CategoricalMarginal("c", [[0.5, 0.6]]), "must be a distribution"),
    (lambda: BernoulliMarginal("b", [0.5, 0.5], edges=[("a", "b")]), "has 2 variables, but got 1 edges"),
    (lambda: marginal_from_summary("x", {"family": "dirichlet"}), "Registered families"),
    (lambda: Posterior([]), "at least one arch site"),
    (lambda: Posterior([BernoulliMarginal("b", [0.5])]).credible_set(k=0), "k must be|`k` must be"),
])
def test_bad_input_states_the_rule_and_the_value(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_convergence_counts_undecided_variables_and_mean_max_probability():
    post = Posterior([BernoulliMarginal("b", [0.95, 0.05, 0.6, 0.5]),
                      CategoricalMarginal("c", [[0.92, 0.04, 0.04], [0.5, 0.3, 0.2]])])
    stats = convergence_stats(post)
    assert stats["undecided"] == 3 and stats["num_variables"] == 6
    assert stats["mean_max_prob"] == pytest.approx((0.95 + 0.95 + 0.6 + 0.5 + 0.92 + 0.5) / 6)
    assert stats["expected_active_bits"] == pytest.approx(2.1)
    curve = convergence_curve([(0, Posterior([BernoulliMarginal("b", [0.5, 0.5])])), (10, post)])
    assert curve["step"] == [0, 10] and curve["undecided"] == [2, 3]
    assert curve["entropy"][0] == pytest.approx(2 * math.log(2))


def _cell(probs):
    ops = ("sep_conv_3x3", "dil_conv_5x5", "max_pool", "skip", "zero")
    return Posterior([CategoricalMarginal("cell.normal.op", probs, labels=ops)])


def test_collapse_warning_fires_on_a_collapsed_posterior_and_not_on_a_uniform_one():
    # 3 of 5 ops are parameter-free: uniform puts 0.6 on them, yet has not drifted at all.
    collapsed = _cell([[0.05, 0.05, 0.1, 0.7, 0.1]] * 6 + [[0.7, 0.1, 0.1, 0.05, 0.05]] * 2)
    with pytest.warns(CollapseWarning, match="on 6 of 8 edges"):
        report = check_collapse(collapsed)
    assert report.fired and report.fraction == pytest.approx(0.75)
    assert report.edges[0][2:] == pytest.approx((0.9, 0.75))  # mass 0.9, (0.9 − 0.6)/(1 − 0.6)
    uniform = _cell([[0.2] * 5] * 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no CollapseWarning
        report = check_collapse(uniform)
    assert not report.fired and report.fraction == 0.0
    assert all(d == pytest.approx(0.0) for *_, d in report.edges)


def test_collapse_needs_most_edges_and_knows_bits_and_custom_labels():
    half = _cell([[0.05, 0.05, 0.1, 0.7, 0.1]] * 4 + [[0.2] * 5] * 4)
    assert not collapse_report(half).fired and collapse_report(half, most=0.49).fired
    post = Posterior([CategoricalMarginal("width", [[0.1, 0.9]], labels=("64", "128"))])
    assert not collapse_report(post).fired and collapse_report(post).edges == []
    assert collapse_report(post, parameter_free=["128"]).fired
    bits = lambda t: Posterior([BernoulliMarginal("layers", [t] * 5, labels=("skip", "layer"))])  # noqa: E731
    assert collapse_report(bits(0.02)).fired and not collapse_report(bits(0.5)).fired
    with pytest.raises(ValueError, match=r"`threshold` must lie in \[0, 1\), but got threshold=1.5"):
        collapse_report(bits(0.5), threshold=1.5)
