"""The search method's θ optimizers: λ reaches the adaptive step size, and every family of a
mixed space gets its own typed options."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bayesnas import sites
from bayesnas.data.batches import batches
from bayesnas.methods import run
from bayesnas.methods.search import SearchConfig, SearchRun
from bayesnas.models import SearchSpace, register_space, unregister_space
from bayesnas.optim import functional as OF


def test_adaptive_step_uses_the_trace_of_the_configured_lambda(tmp_path):
    """pdas2019 app. C: s ← √(η(2 − η)/Tr) · v with Tr = (Σu²/λ²)·d = 2⌈λ/4⌉/λ²·d; with λ = 4
    the trace is d/8, not the λ = 2 trace d/2 (the runner once never passed λ on)."""
    config = SearchConfig(space="layer-skip", dataset="digits", epochs=1, seed=0, batch_size=32,
                          num_samples=4, adaptive=True, space_options={"depth": 8, "width": 16})
    search_run = SearchRun(config, tmp_path)
    (opt,) = search_run.arch_optimizers
    group = opt.param_groups[0]
    assert group["num_samples"] == 4
    d = 7
    theta0, lr0 = search_run.guide.theta("layers").detach().clone(), group["lr"]
    assert lr0 == pytest.approx(d**-0.5)  # η⁰ = ηmax = d^(−1/2) when adaptive
    x, y = next(batches(search_run.data.train, batch_size=32, seed=0, device="cpu", shuffle=False))
    search_run.search.step(x.flatten(1), y)
    theta1 = search_run.guide.theta("layers").detach()
    assert bool(((theta1 > 1 / d) & (theta1 < 1 - 1 / d)).all())  # no clipping: Δθ is the step
    ascent = (theta1 - theta0) / lr0
    v = OF.bernoulli_fisher_sqrt_image(theta0, ascent)
    s = opt.state[search_run.guide.theta("layers")]["s"]
    for lam, matches in ((4, True), (2, False)):
        expected = OF.evolution_path_update(torch.zeros_like(v), v, lr=lr0, trace=OF.fisher_trace(d, lam))
        assert torch.allclose(s, expected, rtol=1e-5, atol=1e-9) is matches
    lr, gamma = OF.adaptive_lr_update(lr=lr0, gamma=0.0, s_norm_sq=float(s.double().square().sum()),
                                      alpha=1.5, lr_min=0.0, lr_max=d**-0.5)
    assert group["lr"] == pytest.approx(lr, rel=1e-6) and group["gamma"] == pytest.approx(gamma)


class MixedFamilies(nn.Module):
    """Bernoulli, categorical and Gaussian-integer sites in one network."""

    def __init__(self, in_features, num_classes):
        super().__init__()
        self.first = nn.Linear(in_features, 24)
        self.second = nn.Linear(24, 24)
        self.out = nn.Linear(24, num_classes)

    @classmethod
    def for_data(cls, input_shape, num_classes):
        return cls(int(torch.Size(input_shape).numel()), num_classes)

    def forward(self, x, y=None):
        width = sites.integer("width", 8, 24, step=4, base=16, device=x.device)  # (S,)
        act = sites.categorical("act", ["relu", "tanh"], device=x.device)  # (S,)
        deeper = sites.bernoulli("deeper", device=x.device)  # (S,)
        mask = (torch.arange(24, device=x.device) < width[:, None]).to(x.dtype)[:, None, :]
        pre = self.first(x).unsqueeze(0)
        h = torch.where(act[:, None, None] == 0, F.relu(pre), torch.tanh(pre)) * mask
        h = torch.where(deeper[:, None, None] > 0, F.relu(self.second(h)) * mask, h)
        logits = self.out(h)
        sites.classification_likelihood(logits, y)
        return logits


@pytest.fixture
def mixed_space():
    register_space(SearchSpace("mixed-families", MixedFamilies.for_data, True, "a test's space"))
    yield "mixed-families"
    unregister_space("mixed-families")


def test_a_mixed_space_searches_with_options_per_family(mixed_space, tmp_path):
    family_options = {"bernoulli": {"theta_min": 0.05},
                      "categorical": {"adaptive": True, "lr_max": 0.5, "theta_min": 0.1},
                      "gaussian-integer": {"adapt_sigma": True, "lr": 1.0, "sigma_lr": 0.05}}
    config = SearchConfig(space=mixed_space, dataset="digits", epochs=2, seed=1, batch_size=32,
                          num_samples=4, stochastic_samples=4, family_options=family_options)
    search_run = SearchRun(config, tmp_path / "inspect")
    by_family = {g.family: g for g in search_run.guide.guides}
    assert list(by_family) == ["bernoulli", "categorical", "gaussian-integer"]
    assert by_family["gaussian-integer"].adapt_sigma is True
    groups = {type(o).__name__: o.param_groups[0] for o in search_run.arch_optimizers}
    assert groups["BernoulliNaturalGradient"]["theta_min"] == 0.05
    assert groups["BernoulliNaturalGradient"]["adaptive"] is False
    assert groups["CategoricalNaturalGradient"]["adaptive"] is True
    assert groups["CategoricalNaturalGradient"]["lr_max"] == 0.5
    assert groups["CategoricalNaturalGradient"]["num_samples"] == 4  # λ from the search
    assert groups["GaussianNaturalGradient"]["lr"] == 1.0 and groups["GaussianNaturalGradient"]["adapt_sigma"]

    results = run(config, out=tmp_path / "run", progress=False)
    assert results["epochs"] == 2 and 0.0 <= results["test_error_deterministic"] <= 1.0
    summary = json.loads((tmp_path / "run" / "posterior.json").read_text())
    assert summary["width"]["family"] == "gaussian-integer" and summary["deeper"]["family"] == "bernoulli"


def test_family_options_are_checked_against_the_space(mixed_space, tmp_path):
    bad_family = SearchConfig(space=mixed_space, dataset="digits", family_options={"normal": {"lr": 0.1}})
    with pytest.raises(ValueError, match=r"`family_options` names \['normal'\], but the space"):
        SearchRun(bad_family, tmp_path / "a")
    bad_field = SearchConfig(space=mixed_space, dataset="digits", family_options={"bernoulli": {"sigma": 1}})
    with pytest.raises(ValueError, match=r"`family_options\['bernoulli'\]` takes \['lr', 'adaptive'"):
        SearchRun(bad_field, tmp_path / "b")
