"""vinnas2020 eq. 8 and alg. 1: γ-weighted KLs, schedules, the entropy term, the search loop."""

from __future__ import annotations

import math
from functools import partial

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import TraceMeanField_ELBO
from pyro.nn import PyroModule, PyroSample
from torch import nn

from bayesnas import sites
from bayesnas.distributions import LogUniform, kl_normal_log_uniform
from bayesnas.guides import NormalGuide, NormalWeightGuide
from bayesnas.handlers import ScaleSitesMessenger, scale_sites, smoothed_categorical_log_prob
from bayesnas.infer import VariationalArchitectureSearch, VariationalSearchELBO
from bayesnas.infer.schedules import cosine_lr, linear_ramp
from bayesnas.nn import lrt
from bayesnas.runs import load_checkpoint, save_checkpoint
from bayesnas.sites import SiteSpec, arch_plate

OPS = ("a", "b", "c")

# -- the scale handler against the closed-form KL -------------------------------------------------

# float64, so that "exactly γ·KL" is checked to 1e-12 rather than to float32's rounding.
W_LOC = torch.tensor([[0.5, -1.0, 2.0], [0.1, 1.5, -0.3]], dtype=torch.float64)
W_LOG_S2 = torch.tensor([[-2.0, 0.0, -1.0], [1.0, -3.0, 0.5]], dtype=torch.float64)
A_LOC = torch.tensor([0.2, -0.7, 1.1], dtype=torch.float64)
A_LOG_S2 = torch.tensor([-1.0, -4.0, 0.3], dtype=torch.float64)
Y = torch.tensor(0.7, dtype=torch.float64)


def kl_model(y):
    # The likelihood ignores the latents, so the loss is −log p(y) + KLs with no Monte-Carlo noise.
    pyro.sample("w", LogUniform((2, 3)).to_event(2))
    pyro.sample("a", LogUniform((3,)).to_event(1))
    pyro.sample("obs", dist.Normal(0.0, 1.0), obs=y)


def kl_guide(y):
    pyro.sample("w", dist.Normal(W_LOC, (0.5 * W_LOG_S2).exp()).to_event(2))
    pyro.sample("a", dist.Normal(A_LOC, (0.5 * A_LOG_S2).exp()).to_event(1))


def _kl(loc, log_s2):
    return float(kl_normal_log_uniform(loc, (0.5 * log_s2).exp()).sum())


NLL = -float(dist.Normal(0.0, 1.0).log_prob(Y))
KL_W, KL_A = _kl(W_LOC, W_LOG_S2), _kl(A_LOC, A_LOG_S2)


@pytest.mark.parametrize("gamma", [0.0, 0.25, 1.0, 3.5])
def test_scale_sites_on_the_guide_weights_the_analytic_kl_by_exactly_gamma(gamma):
    elbo = TraceMeanField_ELBO()
    plain = elbo.loss(kl_model, kl_guide, Y)
    assert plain == pytest.approx(NLL + KL_W + KL_A, rel=1e-12)
    scaled = elbo.loss(kl_model, scale_sites(kl_guide, scales={"w": gamma}), Y)
    # loss(γ) − (loss without the w term) = γ·KL_w; γ = 0 drops the term exactly.
    assert scaled - (plain - KL_W) == pytest.approx(gamma * KL_W, rel=1e-12, abs=1e-12)
    both = elbo.loss(
        scale_sites(kl_model, scales={"w": gamma}), scale_sites(kl_guide, scales={"w": gamma}), Y
    )
    assert both == pytest.approx(scaled, rel=1e-9)


def test_scale_sites_predicate_weights_each_site_by_its_own_gamma_and_masks_zero():
    gammas = {"w": 0.0, "a": 2.0}
    guide = scale_sites(kl_guide, scales=lambda name: gammas.get(name))
    loss = TraceMeanField_ELBO().loss(kl_model, guide, Y)
    assert loss == pytest.approx(NLL + 2.0 * KL_A, rel=1e-12)
    tr = poutine.trace(guide).get_trace(Y)
    assert tr.nodes["w"]["mask"] is False and tr.nodes["w"]["scale"] == 1.0  # masked, not scale 0
    assert tr.nodes["a"]["scale"] == 2.0 and tr.nodes["a"]["mask"] is None
    # The draw still happens: only its term is dropped.
    assert tr.nodes["w"]["value"].shape == (2, 3)


def test_the_analytic_kl_reads_the_guide_scale_not_the_model_scale():
    # Why the handler must wrap the guide: TraceMeanField_ELBO scales KL(q‖p) by guide_site["scale"].
    only_model = TraceMeanField_ELBO().loss(scale_sites(kl_model, scales={"w": 5.0}), kl_guide, Y)
    assert only_model == pytest.approx(NLL + KL_W + KL_A, rel=1e-6)


def test_scale_sites_on_model_and_guide_weights_the_sampled_fallback_too():
    # No analytic KL(Laplace ‖ Normal): the ELBO falls back on log q(z) − log p(z) of the draw,
    # read from the guide's and the model's scales, so both must carry γ.
    def model(y):
        pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("obs", dist.Normal(0.0, 1.0), obs=y)

    def guide(y):
        pyro.sample("z", dist.Laplace(0.3, 0.5))

    elbo = TraceMeanField_ELBO()
    pyro.set_rng_seed(0)
    plain = elbo.loss(model, guide, Y)
    pyro.set_rng_seed(0)
    scaled = elbo.loss(scale_sites(model, scales={"z": 2.5}), scale_sites(guide, scales={"z": 2.5}), Y)
    assert scaled - NLL == pytest.approx(2.5 * (plain - NLL), rel=1e-6)


def test_scale_sites_leaves_observed_sites_and_rejects_bad_gammas():
    guide_trace = poutine.trace(kl_guide).get_trace(Y)
    model = poutine.replay(scale_sites(kl_model, scales=lambda n: 3.0), trace=guide_trace)
    tr = poutine.trace(model).get_trace(Y)
    assert tr.nodes["w"]["scale"] == 3.0
    assert tr.nodes["obs"]["scale"] == 1.0
    with pytest.raises(ValueError, match=r"γ of site 'w' must be a finite number >= 0, but got -1"):
        ScaleSitesMessenger({"w": -1.0})
    with pytest.raises(ValueError, match=r"but got nan"):
        poutine.trace(scale_sites(kl_guide, scales=lambda n: float("nan"))).get_trace(Y)
    with pytest.raises(TypeError, match="mapping site name → γ or a function"):
        ScaleSitesMessenger(3.0)


# -- schedules -------------------------------------------------------------------------------------


def test_linear_ramp_is_zero_then_exactly_linear_from_its_start_then_constant():
    ramp = partial(linear_ramp, start=3, end=8, final=2.0)
    values = [ramp(e) for e in range(12)]
    assert values[:4] == [0.0, 0.0, 0.0, 0.0]  # zero before start, and 0 at start (alg. 1, line 2)
    assert values[8:] == [2.0] * 4
    steps = [b - a for a, b in zip(values[3:9], values[4:9], strict=False)]
    assert all(s == pytest.approx(2.0 / 5, rel=1e-12) for s in steps)
    assert values[5] == 2.0 * 2 / 5
    assert linear_ramp(4, start=4, end=4, final=1.5) == 1.5 and linear_ramp(3, start=4, end=4, final=1.5) == 0
    with pytest.raises(ValueError, match=r"`start <= end` must hold, but got \(start=5, end=2\)"):
        linear_ramp(0, start=5, end=2, final=1.0)
    with pytest.raises(ValueError, match=r"`final` must be a finite number >= 0, but got final=-1"):
        linear_ramp(0, start=0, end=2, final=-1.0)
    with pytest.raises(ValueError, match=r"`epoch` must be an integer >= 0, but got epoch=-1"):
        linear_ramp(-1, start=0, end=2, final=1.0)


def test_cosine_lr_is_torch_cosine_annealing():
    p = nn.Parameter(torch.zeros(()))
    opt = torch.optim.Adam([p], lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.01)
    for epoch in range(10):
        assert cosine_lr(epoch, base=0.1, epochs=10, minimum=0.01) == pytest.approx(
            opt.param_groups[0]["lr"], rel=1e-9
        )
        opt.step()
        sched.step()
    with pytest.raises(ValueError, match=r"`epoch <= epochs` must hold, but got \(epoch=11, epochs=10\)"):
        cosine_lr(11, base=0.1, epochs=10)


# -- the eq. 8 objective -----------------------------------------------------------------------------


def test_smoothed_log_prob_is_minus_torch_label_smoothed_cross_entropy():
    torch.manual_seed(0)
    logits, y = torch.randn(7, 4), torch.randint(0, 4, (7,))
    ours = -smoothed_categorical_log_prob(logits, y, 0.1).sum()
    assert float(ours) == pytest.approx(
        float(F.cross_entropy(logits, y, label_smoothing=0.1, reduction="sum"))
    )
    assert torch.allclose(
        smoothed_categorical_log_prob(logits, y, 0.0), dist.Categorical(logits=logits).log_prob(y)
    )


LOGITS = torch.tensor([[[2.0, -1.0, 0.5], [0.1, 0.2, -0.3], [1.0, 1.0, -2.0], [-0.5, 0.0, 3.0]]])  # (1, 4, 3)
LABELS = torch.tensor([[0, 2, 1, 2]])
MU = torch.tensor([[1.0, -0.5, 0.3], [0.0, 2.0, -1.0]])


def eq8_model(y):
    pyro.sample("w", LogUniform((2, 3)).to_event(2))
    with arch_plate(1):
        sites.normal_strength("cell.alpha", (2, 3), labels=OPS)
        sites.classification_likelihood(LOGITS, y)


def eq8_guide(y):
    pyro.sample("w", dist.Normal(W_LOC, (0.5 * W_LOG_S2).exp()).to_event(2))
    with arch_plate(1):
        # σ = e⁻¹⁵: the α draw is μ to ~1e-7, so the entropy term is that of softmax(μ).
        pyro.sample("cell.alpha", dist.Normal(MU, math.exp(-15.0)).to_event(2), infer={"arch": True})


@pytest.mark.parametrize("num_data", [None, 100])
def test_eq8_loss_is_smoothed_nll_plus_gamma_weighted_kls_plus_gamma_entropy(num_data):
    g1, g2, g3, eps = 0.3, 2.0, 0.7, 0.1
    loss = VariationalSearchELBO(
        arch_sites=["cell.alpha"],
        gamma_weights=g1,
        gamma_arch=g2,
        gamma_entropy=g3,
        label_smoothing=eps,
        num_data=num_data,
    )
    nll = float(F.cross_entropy(LOGITS[0], LABELS[0], label_smoothing=eps, reduction="sum"))
    kl_a = float(kl_normal_log_uniform(MU, torch.full_like(MU, math.exp(-15.0))).sum())
    p = torch.softmax(MU, -1)
    entropy = float(-(p * p.log()).sum())  # Σ over the 2 edges of H(softmax α)
    if num_data is None:
        expect = nll + g1 * KL_W + g2 * kl_a + g3 * entropy
    else:  # eq. 8 / D: the mean over the batch's 4 data, the other terms over D
        expect = nll / 4 + (g1 * KL_W + g2 * kl_a + g3 * entropy) / num_data
    value = loss.differentiable_loss(eq8_model, eq8_guide, LABELS)
    assert float(value) == pytest.approx(expect, rel=1e-5)
    assert loss.loss(eq8_model, eq8_guide, LABELS) == pytest.approx(expect, rel=1e-5)
    loss.set_gammas(weights=0.0, arch=0.0, entropy=0.0)
    bare = nll if num_data is None else nll / 4
    assert float(loss.differentiable_loss(eq8_model, eq8_guide, LABELS)) == pytest.approx(bare, rel=1e-6)


def test_eq8_loss_is_the_same_through_svi_loss_and_grads():
    loss = VariationalSearchELBO(arch_sites=["cell.alpha"], gamma_weights=0.3, gamma_entropy=0.7, num_data=10)
    expect = loss.loss(eq8_model, eq8_guide, LABELS)
    assert loss.loss_and_grads(eq8_model, eq8_guide, LABELS) == pytest.approx(expect, rel=1e-5)


def test_entropy_term_is_differentiable_in_mu_and_lowers_the_entropy():
    mu = torch.zeros(2, 3, requires_grad=True)
    loss = VariationalSearchELBO(
        arch_sites=["cell.alpha"], gamma_weights=0.0, gamma_arch=0.0, gamma_entropy=1.0
    )

    def guide(y):
        pyro.sample("w", dist.Normal(W_LOC, 1.0).to_event(2))
        with arch_plate(1):
            pyro.sample(
                "cell.alpha",
                dist.Normal(mu + torch.tensor([0.1, 0.0, 0.0]), 1e-6).to_event(2),
                infer={"arch": True},
            )

    loss.differentiable_loss(eq8_model, guide, LABELS).backward()
    grad = mu.grad
    # Descending the gradient sharpens softmax towards the op that already leads (op 0).
    assert bool((grad[:, 0] < 0).all()) and bool((grad[:, 1:] > 0).all())


def test_bad_loss_arguments():
    with pytest.raises(ValueError, match=r"label_smoothing=1.0"):
        VariationalSearchELBO(arch_sites=["a"], label_smoothing=1.0)
    with pytest.raises(ValueError, match=r"num_data=0"):
        VariationalSearchELBO(arch_sites=["a"], num_data=0)
    with pytest.raises(
        ValueError, match=r"`gamma_entropy` must be a finite number >= 0, but got gamma_entropy=-1"
    ):
        VariationalSearchELBO(arch_sites=["a"], gamma_entropy=-1.0)
    with pytest.raises(ValueError, match="at least one op-strength site"):
        VariationalSearchELBO(arch_sites=[])


# -- the toy supergraph and the search loop ------------------------------------------------------

D_IN, HIDDEN, CLASSES = 4, 5, 3


class BayesLinear(PyroModule):
    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.weight = PyroSample(LogUniform((d_out, d_in)).to_event(2))


class ToySupergraph(PyroModule):
    """Two edges (x→h, h→logits), each mixing K = 3 Bayesian linear ops by softmax(α)
    (vinnas2020 eq. 3); a deterministic head Ψ. Weights are sampled outside the arch plate."""

    def __init__(self) -> None:
        super().__init__()
        self.edge0 = PyroModule[nn.ModuleList]([BayesLinear(D_IN, HIDDEN) for _ in OPS])
        self.edge1 = PyroModule[nn.ModuleList]([BayesLinear(HIDDEN, CLASSES) for _ in OPS])
        self.head = nn.Linear(CLASSES, CLASSES)  # Ψ: a plain module, trained with the weights

    def forward(self, x, y=None):
        w0 = [op.weight for op in self.edge0]
        w1 = [op.weight for op in self.edge1]
        with arch_plate(1):
            z0 = torch.softmax(sites.normal_strength("cell.e0", (3,), labels=OPS), -1)  # (1, K)
            z1 = torch.softmax(sites.normal_strength("cell.e1", (3,), labels=OPS), -1)
            h = sum(z0[:, k, None, None] * torch.relu(lrt.linear(x, w)) for k, w in enumerate(w0))
            logits = sum(z1[:, k, None, None] * lrt.linear(h, w) for k, w in enumerate(w1))
            sites.classification_likelihood(self.head(logits), None if y is None else y.expand(1, -1))
        return logits


class WeightMirror(nn.Module):
    """Plain layers with the parameter names of ToySupergraph's weight sites (the μ_w init)."""

    def __init__(self) -> None:
        super().__init__()
        self.edge0 = nn.ModuleList([nn.Linear(D_IN, HIDDEN, bias=False) for _ in OPS])
        self.edge1 = nn.ModuleList([nn.Linear(HIDDEN, CLASSES, bias=False) for _ in OPS])


ARCH_SPECS = [SiteSpec(name, "normal", (3,), 3, OPS) for name in ("cell.e0", "cell.e1")]


def make_search(seed: int, **kwargs) -> VariationalArchitectureSearch:
    torch.manual_seed(seed)
    model = ToySupergraph()
    weight_guide = NormalWeightGuide(WeightMirror())
    arch_guide = NormalGuide(ARCH_SPECS)
    options = dict(
        epochs=10,
        warmup_epochs=2,
        weight_lr=0.05,
        arch_lr=0.05,
        gamma_weights=partial(linear_ramp, start=2, end=8, final=1.0),
        gamma_arch=partial(linear_ramp, start=2, end=8, final=1.0),
        gamma_entropy=partial(linear_ramp, start=4, end=8, final=0.5),
    )
    options.update(kwargs)
    loss = VariationalSearchELBO(arch_sites=arch_guide.site_names, label_smoothing=0.1, num_data=256)
    return VariationalArchitectureSearch(
        model, weight_guide=weight_guide, arch_guide=arch_guide, loss=loss, **options
    )


def toy_data(n: int = 256, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D_IN, generator=g)
    y = (x @ torch.randn(D_IN, CLASSES, generator=g)).argmax(-1)
    return x, y


def _weights(search):
    return [p.detach().clone() for p in search.weight_parameters]


def _alpha(search):
    return [p.detach().clone() for p in search.arch_parameters]


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_site_names_of_the_toy_match_the_weight_guide():
    search = make_search(0)
    x, y = toy_data(8)
    with poutine.trace() as gtr:
        search.guide(x, y)
    names = [n for n, s in gtr.trace.nodes.items() if s["type"] == "sample" and n != sites.ARCH_PLATE]
    assert names == [*search.weight_guide.site_names, "cell.e0", "cell.e1"]
    assert search.weight_guide.site_names[0] == "edge0.0.weight"


def test_warmup_leaves_alpha_bitwise_untouched_and_then_alpha_moves():
    search = make_search(0)
    x, y = toy_data()
    alpha0, weights0 = _alpha(search), _weights(search)
    for epoch in (0, 1):
        metrics = search.step((x[:64], y[:64]), (x[64:128], y[64:128]), epoch=epoch)
        assert metrics["arch_loss"] is None and metrics["gamma_weights"] == 0.0
    assert _same(_alpha(search), alpha0)
    assert search.arch_optimizer.state_dict()["state"] == {}  # no Adam moment was even created
    assert not _same(_weights(search), weights0)
    metrics = search.step((x[:64], y[:64]), (x[64:128], y[64:128]), epoch=2)
    assert metrics["arch_loss"] is not None and math.isfinite(metrics["arch_loss"])
    assert not _same(_alpha(search), alpha0)
    with pytest.raises(
        ValueError, match=r"`epoch >= warmup_epochs` must hold, but got \(epoch=1, warmup_epochs=2\)"
    ):
        search.arch_step((x, y), epoch=1)


def test_the_alpha_step_leaves_weights_and_psi_untouched_and_the_w_step_leaves_alpha():
    search = make_search(0, warmup_epochs=0)
    x, y = toy_data()
    search.step((x[:64], y[:64]), (x[64:128], y[64:128]), epoch=3)  # both Adams have state now
    weights, alpha = _weights(search), _alpha(search)
    w_state = {k: v.clone() for k, v in search.weight_optimizer.state_dict()["state"][0].items()}
    search.arch_step((x[64:128], y[64:128]), epoch=3)
    assert _same(_weights(search), weights) and not _same(_alpha(search), alpha)
    assert all(
        torch.equal(v, search.weight_optimizer.state_dict()["state"][0][k]) for k, v in w_state.items()
    )
    assert any("head" in n for n, _ in search.model.named_parameters())  # Ψ is among the weights
    alpha = _alpha(search)
    search.weight_step((x[:64], y[:64]), epoch=3)
    assert _same(_alpha(search), alpha) and not _same(_weights(search), weights)


def test_loss_is_finite_and_decreases_on_an_easy_problem():
    # Small constant γs keep the KLs in the objective without letting them dominate the fit.
    search = make_search(
        0, warmup_epochs=1, epochs=40, gamma_weights=0.01, gamma_arch=0.01, gamma_entropy=0.01
    )
    x, y = toy_data()
    pyro.set_rng_seed(0)
    losses = []
    for epoch in range(40):
        i = (epoch % 4) * 64
        metrics = search.step(
            (x[i : i + 32], y[i : i + 32]), (x[i + 32 : i + 64], y[i + 32 : i + 64]), epoch=epoch
        )
        losses.append(metrics["loss"])
        assert math.isfinite(metrics["loss"]) and (epoch < 1 or math.isfinite(metrics["arch_loss"]))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.7 * first, (first, last)


def _run(search, x, y, epochs):
    for epoch in epochs:
        i = (epoch % 4) * 64
        search.step((x[i : i + 32], y[i : i + 32]), (x[i + 32 : i + 64], y[i + 32 : i + 64]), epoch=epoch)
        search.keep_best(1.0 / (1 + epoch % 3))


def _everything(search):
    state = search.state_dict()
    return [*_weights(search), *_alpha(search), *[v for v in state["model"].values()]]


def test_resume_from_a_state_dict_reproduces_the_uninterrupted_run_exactly(tmp_path):
    x, y = toy_data()
    pyro.set_rng_seed(123)
    straight = make_search(0)
    _run(straight, x, y, range(6))

    pyro.set_rng_seed(123)
    first = make_search(0)
    _run(first, x, y, range(3))
    save_checkpoint(tmp_path / "ckpt.pt", first.state_dict())
    del first
    torch.manual_seed(999)  # whatever happens between kill and resume: the RNG is restored
    resumed = make_search(7)  # different initial values, all overwritten by the checkpoint
    resumed.load_state_dict(load_checkpoint(tmp_path / "ckpt.pt"))
    _run(resumed, x, y, range(3, 6))

    assert _same(_everything(resumed), _everything(straight))
    assert resumed.num_steps == straight.num_steps == 6
    assert resumed.best_error == straight.best_error and resumed.best_epoch == straight.best_epoch
    assert _same(list(resumed.best_arch_state.values()), list(straight.best_arch_state.values()))
    for a, b in zip(
        resumed.weight_optimizer.state_dict()["state"].values(),
        straight.weight_optimizer.state_dict()["state"].values(),
        strict=True,
    ):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_keep_best_keeps_the_alpha_of_the_lowest_validation_error():
    search = make_search(0, warmup_epochs=0)
    x, y = toy_data()
    kept = []
    for epoch, err in enumerate([0.5, 0.3, 0.4, 0.3]):
        search.step((x[:64], y[:64]), (x[64:128], y[64:128]), epoch=epoch)
        if search.keep_best(err):
            kept.append(epoch)
        if epoch == 1:
            best_alpha = _alpha(search)
    assert kept == [0, 1] and search.best_error == 0.3 and search.best_epoch == 1
    assert not _same(_alpha(search), best_alpha)  # α moved on after the best epoch
    search.restore_best()
    assert _same(_alpha(search), best_alpha)
    with pytest.raises(ValueError, match=r"`val_error` must be a number, but got val_error=nan"):
        search.keep_best(float("nan"))
    with pytest.raises(RuntimeError, match="No α was kept yet"):
        make_search(0).restore_best()


def test_search_schedules_set_gammas_and_cosine_lr():
    search = make_search(0)
    x, y = toy_data(64)
    metrics = search.step((x[:32], y[:32]), (x[32:], y[32:]), epoch=5)
    assert metrics["gamma_weights"] == linear_ramp(5, start=2, end=8, final=1.0) == 0.5
    assert metrics["gamma_entropy"] == linear_ramp(5, start=4, end=8, final=0.5)
    assert search.loss.gammas == (metrics["gamma_weights"], metrics["gamma_arch"], metrics["gamma_entropy"])
    assert (
        metrics["lr"] == cosine_lr(5, base=0.05, epochs=10) == search.weight_optimizer.param_groups[0]["lr"]
    )
    with pytest.raises(ValueError, match=r"`epoch < epochs` must hold, but got \(epoch=10, epochs=10\)"):
        search.step((x, y), (x, y), epoch=10)


def test_bad_search_arguments():
    with pytest.raises(
        ValueError, match=r"`warmup_epochs <= epochs` must hold, but got \(warmup_epochs=5, epochs=3\)"
    ):
        make_search(0, epochs=3, warmup_epochs=5)
    with pytest.raises(
        ValueError, match=r"`weight_lr` must be a positive finite number, but got weight_lr=0"
    ):
        make_search(0, weight_lr=0)
    with pytest.raises(TypeError, match="must be a NormalGuide"):
        VariationalArchitectureSearch(
            ToySupergraph(),
            weight_guide=NormalWeightGuide(WeightMirror()),
            arch_guide=WeightMirror(),
            epochs=3,
        )
    with pytest.raises(ValueError, match=r"`loss.arch_sites` must be the arch guide's sites"):
        VariationalArchitectureSearch(
            ToySupergraph(),
            weight_guide=NormalWeightGuide(WeightMirror()),
            arch_guide=NormalGuide(ARCH_SPECS),
            epochs=3,
            loss=VariationalSearchELBO(arch_sites=["other"]),
        )
