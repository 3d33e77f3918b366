"""Op strengths α with the log-uniform prior and their mean-field Normal guide (vinnas2020 §IV)."""

import json
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, TraceMeanField_ELBO
from pyro.nn import PyroModule, PyroSample
from torch import nn

from bayesnas import sites
from bayesnas.analysis.marginals import NormalStrengthMarginal
from bayesnas.analysis.posterior import Posterior
from bayesnas.distributions import LogUniform, kl_normal_log_uniform
from bayesnas.guides import CategoricalGuide, GuideList, NormalGuide, NormalWeightGuide, auto_guide
from bayesnas.handlers import local_reparameterization
from bayesnas.nn import lrt
from bayesnas.sites import SiteSpec, arch_plate, discover_sites

OPS = ("conv", "pool", "skip")
EDGES = [("n0", "n2"), ("n1", "n2")]


class StrengthToy(nn.Module):
    """Two edges with 3 ops each; y ~ N(0, 1) does not depend on α, so the ELBO is −log p(y) + KL."""

    def forward(self, y=None):
        alpha = sites.normal_strength("cell.alpha", (2, 3), labels=OPS, edges=EDGES)
        if y is not None:
            pyro.sample("obs", dist.Normal(0.0, 1.0), obs=y)
        return alpha


class MixedStrengthToy(nn.Module):
    def forward(self):
        sites.categorical("cell.n0.op", OPS)
        return sites.normal_strength("cell.alpha", (2, 3), labels=OPS)


def _spec(shape=(2, 3)):
    return SiteSpec("a", "normal", shape, shape[-1], OPS)


def test_discover_sites_finds_a_normal_site_with_its_k_labels_and_edges():
    specs = discover_sites(StrengthToy())
    spec = specs["cell.alpha"]
    assert (spec.family, spec.shape, spec.num_categories, spec.choices) == ("normal", (2, 3), 3, OPS)
    assert spec.edges == tuple(EDGES) and spec.theta_shape == (2, 3)
    mixed = discover_sites(MixedStrengthToy())
    assert mixed["cell.n0.op"].family == "categorical" and mixed["cell.alpha"].family == "normal"


def test_normal_strength_declaration_errors():
    with pytest.raises(ValueError, match=r"K >= 2 ops in the last dimension, but got shape=\(2, 1\)"):
        sites.normal_strength("a", (2, 1))
    with pytest.raises(ValueError, match=r"K=3 ops .* needs 3 names, but got 2"):
        sites.normal_strength("a", (2, 3), labels=["x", "y"])
    with pytest.raises(ValueError, match="has 2 variables, so `edges` needs 2"):
        sites.normal_strength("a", (2, 3), edges=EDGES[:1])
    # The prior is improper: without a guide or a condition the model cannot run.
    with pytest.raises(NotImplementedError, match="improper prior"):
        sites.normal_strength("a", (2, 3))


def test_auto_guide_builds_a_normal_guide_and_mixes_families():
    g = auto_guide(StrengthToy())
    assert isinstance(g, NormalGuide) and g.site_names == ["cell.alpha"]
    mixed = auto_guide(MixedStrengthToy())
    assert isinstance(mixed, GuideList)
    assert [type(x) for x in mixed.guides] == [CategoricalGuide, NormalGuide]


def test_log_sigma2_starts_at_minus_10_and_mu_as_the_paper_says():
    g = NormalGuide([_spec()], generator=torch.Generator().manual_seed(0))
    assert torch.equal(g.log_sigma2("a"), torch.full((2, 3), -10.0))
    # vinnas2020 §V-A: μ_α ~ N(0, 0.001), here a standard deviation of 1e-3.
    loc = g.loc("a").detach()
    assert float(loc.abs().max()) < 5e-3 and float(loc.abs().min()) > 0
    exact = NormalGuide([_spec()], init_loc=1.0, init_loc_std=0.0)
    assert torch.equal(exact.mode()["a"], torch.ones(2, 3))
    assert len(exact.arch_parameters()) == 2


def test_guide_samples_its_normal_directly_with_mu_and_sigma():
    mu = torch.tensor([[0.5, -1.0, 2.0], [0.0, 1.5, -0.5]])
    log_sigma2 = torch.tensor([[-2.0, 0.0, -1.0], [1.0, -3.0, 0.5]])
    g = NormalGuide([_spec()], init_loc={"a": mu}, init_loc_std=0.0, init_log_sigma2={"a": log_sigma2})
    pyro.set_rng_seed(0)
    with poutine.trace() as tr, arch_plate(40_000):
        out = g()
    node = tr.trace.nodes["a"]
    base = node["fn"].base_dist
    assert node["infer"]["arch"] and isinstance(base, dist.Normal)  # not Normal + Delta
    # The arch plate expands the guide's Normal to (S, 2, 3); every architecture sees μ and σ.
    sigma = (0.5 * log_sigma2).exp()
    assert bool((base.loc == mu).all()) and torch.allclose(base.scale, sigma.expand(base.scale.shape))
    x = out["a"]
    assert x.shape == (40_000, 2, 3)
    # Standard errors σ/√N of the mean and ≈ σ/√(2N) of the std: 5 of them bound every entry.
    se = sigma / math.sqrt(40_000)
    assert bool(((x.mean(0) - mu).abs() < 5 * se).all())
    assert bool(((x.std(0) - sigma).abs() < 5 * se).all())


def _hand_guide():
    mu = torch.tensor([[0.5, 1.0, -2.0], [2.0, 0.3, 1.0]])
    log_sigma2 = torch.tensor([[-2.0, -1.0, 0.0], [-0.5, -4.0, 1.0]])
    spec = SiteSpec("cell.alpha", "normal", (2, 3), 3, OPS, tuple(EDGES))
    g = NormalGuide([spec], init_loc={"cell.alpha": mu}, init_loc_std=0.0,
                    init_log_sigma2={"cell.alpha": log_sigma2})
    return g, mu, log_sigma2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_svi_loss_is_the_likelihood_plus_the_analytic_kl(seed):
    g, mu, log_sigma2 = _hand_guide()
    model, y, s = StrengthToy(), torch.tensor(0.7), 4

    def run_model(y):
        with arch_plate(s):
            model(y)

    def run_guide(y):
        with arch_plate(s):
            g()

    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    svi = SVI(run_model, run_guide, pyro.optim.Adam({"lr": 0.01}), TraceMeanField_ELBO())
    loss = svi.step(y)
    kl = kl_normal_log_uniform(mu, (0.5 * log_sigma2).exp()).sum()
    nll = -float(dist.Normal(0.0, 1.0).log_prob(y))
    # One likelihood and one KL per architecture of the plate; the likelihood ignores α, so the
    # loss has no Monte-Carlo noise: every seed gives the closed form.
    assert loss == pytest.approx(s * (nll + float(kl)), rel=1e-6)
    assert float(kl) > 0
    # The guide's parameters are not Pyro params: SVI left them as they were.
    assert torch.equal(g.loc("cell.alpha").detach(), mu)


def test_adam_from_make_optimizers_fits_mu_and_log_sigma2():
    g = NormalGuide([_spec((3,))], init_loc=1.0, init_loc_std=0.0)

    def model():
        with arch_plate(8):
            alpha = sites.normal_strength("a", (3,), labels=OPS)
            pyro.sample("obs", dist.Normal(alpha[..., 0], 0.1), obs=torch.full((8,), 3.0))

    def guide():
        with arch_plate(8):
            g()

    (opt,) = g.make_optimizers(lr=0.05)
    assert isinstance(opt, torch.optim.Adam) and len(opt.param_groups[0]["params"]) == 2
    elbo = TraceMeanField_ELBO()
    pyro.set_rng_seed(0)
    for _ in range(300):
        opt.zero_grad()
        elbo.differentiable_loss(model, guide).backward()
        opt.step()
    assert float(g.loc("a")[0].detach()) == pytest.approx(3.0, abs=0.1)
    assert float(g.log_sigma2("a")[0].detach()) != -10.0
    with pytest.raises(ValueError, match=r"`lr` must be a positive finite number, but got lr=-1"):
        g.make_optimizers(lr=-1)


def test_svi_steps_the_guide_once_registered_as_a_pyro_module():
    g = NormalGuide([_spec((3,))], init_loc=1.0, init_loc_std=0.0)

    def model():
        with arch_plate(8):
            alpha = sites.normal_strength("a", (3,))
            pyro.sample("obs", dist.Normal(alpha[..., 1], 0.1), obs=torch.full((8,), -2.0))

    def guide():
        pyro.module("arch_guide", g)
        with arch_plate(8):
            g()

    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), TraceMeanField_ELBO())
    for _ in range(300):
        svi.step()
    assert float(g.loc("a")[1].detach()) == pytest.approx(-2.0, abs=0.1)


def test_snr_selection_picks_the_known_winner_on_a_hand_set_guide():
    # Edge 0: SNR μ/σ² = (0.5/e⁻², 1/e⁻¹, −2/1) = (3.69, 2.72, −2): op 0, though op 1 has the
    # largest μ. Edge 1: (2/e^-0.5, 0.3/e⁻⁴, 1/e) = (3.30, 16.4, 0.37): op 1, the smallest μ.
    g, mu, log_sigma2 = _hand_guide()
    post = Posterior.from_guide(g)
    m = post["cell.alpha"]
    assert isinstance(m, NormalStrengthMarginal)
    assert m.snr_selection().tolist() == [0, 1]
    assert g.select()["cell.alpha"].tolist() == [0, 1]
    assert m.labels == OPS and m.edges == EDGES and m.shape == (2,)
    assert torch.allclose(m.mu, mu.double()) and torch.allclose(m.sigma, (0.5 * log_sigma2).double().exp())
    # Largest positive SNR, not magnitude: a strongly negative op never wins.
    g2 = NormalGuide([_spec((3,))], init_loc={"a": [0.2, 0.1, -5.0]}, init_loc_std=0.0,
                     init_log_sigma2={"a": [0.0, 0.0, -6.0]})
    assert Posterior.from_guide(g2)["a"].snr_selection().tolist() == 0


def test_summary_round_trips_through_json():
    g, _, _ = _hand_guide()
    summary = g.summary()
    again = json.loads(json.dumps(summary))
    assert again == summary
    entry = again["cell.alpha"]
    assert (entry["family"], entry["shape"], entry["choices"]) == ("normal", [2], list(OPS))
    a, b = Posterior.from_summary(again)["cell.alpha"], Posterior.from_guide(g)["cell.alpha"]
    assert torch.equal(a.probs, b.probs) and torch.equal(a.snr, b.snr)
    assert Posterior.from_summary(json.loads(json.dumps(Posterior.from_guide(g).to_summary()))).mode() == {
        "cell.alpha": b.mode().tolist()
    }


def test_architectures_of_a_normal_site_replay_as_strengths_or_one_hot_indices():
    model, specs = StrengthToy(), discover_sites(StrengthToy())
    g, mu, _ = _hand_guide()
    arch = sites.tensors_to_architecture(g.mode())
    assert json.loads(json.dumps(arch)) == arch and torch.allclose(torch.tensor(arch["cell.alpha"]), mu)
    with arch_plate(1):
        alpha = sites.fixed_architecture(model, arch, specs)()
        assert torch.allclose(alpha, mu.unsqueeze(0))
        chosen = sites.fixed_architecture(model, {"cell.alpha": [0, 2]}, specs)()
    assert chosen.tolist() == [[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]
    with pytest.raises(ValueError, match=r"op indices in \[0, 3\), but got \[0, 3\]"):
        sites.architecture_to_tensors({"cell.alpha": [0, 3]}, specs)
    with pytest.raises(ValueError, match=r"shape \(2, 3\) \(α\) or \(2,\) \(op indices\).*shape \(3,\)"):
        sites.architecture_to_tensors({"cell.alpha": [0, 1, 2]}, specs)


def test_entropy_and_expected_cost_are_those_of_the_normal():
    g, mu, log_sigma2 = _hand_guide()
    expect = 0.5 * (math.log(2 * math.pi) + 1 + log_sigma2).sum()
    assert float(g.entropy()) == pytest.approx(float(expect))
    costs = {"cell.alpha": torch.arange(6.0).reshape(2, 3)}
    assert float(g.expected_cost(costs).detach()) == pytest.approx(float((costs["cell.alpha"] * mu).sum()))


def test_bad_normal_guide_inputs():
    with pytest.raises(ValueError, match=r"takes normal sites only, but got \['c'\]"):
        NormalGuide([SiteSpec("c", "categorical", (), 2)])
    with pytest.raises(ValueError, match=r"`init_log_sigma2` of site 'a' must be finite"):
        NormalGuide([_spec()], init_log_sigma2=float("nan"))
    with pytest.raises(ValueError, match=r"init_loc_std=-1"):
        NormalGuide([_spec()], init_loc_std=-1)
    with pytest.raises(KeyError, match="Unknown arch site 'x'"):
        NormalGuide([_spec()]).log_sigma2("x")
    assert NormalGuide([_spec()], learnable=False).make_optimizers() == []


# -- Bayesian weights --------------------------------------------------------------------------


class BayesLinear(PyroModule):
    """y = x·w + b with w, b ~ LogUniform (vinnas2020 eq. 4), through the LRT layer."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.weight = PyroSample(LogUniform((d_out, d_in)).to_event(2))
        self.bias = PyroSample(LogUniform((d_out,)).to_event(1))

    def forward(self, x):
        return lrt.linear(x, self.weight, self.bias)


def test_normal_weight_guide_starts_at_the_module_init_with_log_sigma2_minus_10():
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    g = NormalWeightGuide(net, prefix="fc")
    assert g.site_names == ["fc.weight", "fc.bias"]
    assert torch.equal(g.mode()["fc.weight"], net.weight.detach())
    assert all(torch.equal(p, torch.full_like(p, -10.0)) for p in g.log_sigma2s)
    with poutine.trace() as tr:
        g()
    base = tr.trace.nodes["fc.weight"]["fn"].base_dist
    assert isinstance(base, dist.Normal) and torch.allclose(base.scale, torch.full((2, 3), math.exp(-5.0)))
    with pytest.raises(KeyError, match=r"Unknown parameters \['nope'\]"):
        NormalWeightGuide(net, include=["nope"])


def test_flat_normal_weight_guide_is_one_site_over_the_concatenated_parameters():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    per_tensor, flat = NormalWeightGuide(net, prefix="w"), NormalWeightGuide(net, prefix="w", flat=True)
    assert flat.site_names == ["w"] and flat.locs[0].shape == (8 + 3,)
    params = dict(net.named_parameters())
    assert all(torch.equal(v, params[n]) for n, v in flat.weights(flat.mode()).items())
    assert list(flat.weights(flat.mode())) == list(params)
    assert per_tensor.weights(per_tensor.mode()).keys() == params.keys()
    # The same q(w): the flat site's KL against the log-uniform prior is the per-tensor sum.
    with poutine.trace() as tr_flat:
        flat()
    with poutine.trace() as tr_sep:
        per_tensor()
    prior = LogUniform((11,)).to_event(1)
    kl_flat = torch.distributions.kl_divergence(tr_flat.trace.nodes["w"]["fn"], prior)
    kl_sep = sum(torch.distributions.kl_divergence(tr_sep.trace.nodes[s]["fn"],
                                                   LogUniform(params[s[2:]].shape).to_event(params[s[2:]].dim()))
                 for s in per_tensor.site_names)
    torch.testing.assert_close(kl_flat, kl_sep)
    with pytest.raises(ValueError, match="must not be empty, but got prefix=''"):
        NormalWeightGuide(net, flat=True)


def test_normal_weight_guide_trains_a_bayesian_linear_layer_with_the_lrt():
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    init = nn.Linear(3, 1)
    model_net = BayesLinear(3, 1)
    guide = NormalWeightGuide(init)  # site names "weight", "bias": those of the root PyroModule

    def model(x, y):
        pyro.sample("obs", dist.Normal(model_net(x).squeeze(-1), 0.1).to_event(1), obs=y)

    (opt,) = guide.make_optimizers(lr=0.05)
    elbo = TraceMeanField_ELBO()
    pyro.set_rng_seed(0)
    with local_reparameterization():
        for _ in range(400):
            opt.zero_grad()
            elbo.differentiable_loss(model, guide, x, y).backward()
            opt.step()
    mean = guide.mode()
    assert torch.allclose(mean["weight"], torch.tensor([[1.0, -2.0, 0.5]]), atol=0.1)
    assert float(mean["bias"]) == pytest.approx(0.3, abs=0.1)
