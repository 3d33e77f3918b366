"""A new site family is one module: this one lives only in this test, and goes through search,
checkpoint, resume, posterior.json and the report without a change to any library file."""

import json

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bayesnas import sites
from bayesnas.analysis.marginals import CategoricalMarginal
from bayesnas.analysis.report import write_report
from bayesnas.families import (
    Family,
    NaturalGradientOptions,
    SiteSpec,
    base_distribution,
    register_family,
    site_infer,
    unregister_family,
)
from bayesnas.families.categorical import check_indices
from bayesnas.guides import CategoricalGuide
from bayesnas.methods import run
from bayesnas.methods.search import SearchConfig, SearchRun
from bayesnas.models import SearchSpace, register_space, unregister_space

LEVELS = ("narrow", "medium", "wide")
WIDTHS = (4, 12, 24)


def ordinal3(name, *, device=None):
    """Declare one choice among three ordered levels."""
    prior = dist.Categorical(torch.full((3,), 1.0 / 3, device=device))
    return pyro.sample(name, prior, infer=site_infer("ordinal3", choices=LEVELS))


class Ordinal3Guide(CategoricalGuide):
    family = "ordinal3"


class Ordinal3Marginal(CategoricalMarginal):
    family = "ordinal3"


class Ordinal3Family(Family):
    name = "ordinal3"
    options = NaturalGradientOptions  # searched by the categorical natural gradient

    def spec(self, name, fn, infer):
        k = int(base_distribution(fn).probs.shape[-1])
        if k != 3:
            raise TypeError(f"An ordinal3 site has 3 levels, but {name!r} has {k}.")
        return SiteSpec(name, self.name, tuple(fn.event_shape), 3, infer.get("choices"))

    def theta_shape(self, spec):
        return (*spec.shape, 3)

    def value(self, spec, given, device):
        return check_indices(spec, given, device)

    def guide(self, specs, options=None):
        return Ordinal3Guide(specs)

    @property
    def marginal(self):
        return Ordinal3Marginal


class OrdinalToy(nn.Module):
    """A hidden layer whose width is an ordinal3 choice, and a Bernoulli second layer."""

    def __init__(self, in_features, num_classes):
        super().__init__()
        self.first = nn.Linear(in_features, WIDTHS[-1])
        self.second = nn.Linear(WIDTHS[-1], WIDTHS[-1])
        self.out = nn.Linear(WIDTHS[-1], num_classes)

    @classmethod
    def for_data(cls, input_shape, num_classes):
        return cls(int(torch.Size(input_shape).numel()), num_classes)

    def forward(self, x, y=None):
        level = ordinal3("width", device=x.device)  # (S,)
        deeper = sites.bernoulli("deeper", device=x.device)  # (S,)
        widths = torch.tensor(WIDTHS, device=x.device)[level]
        mask = (torch.arange(WIDTHS[-1], device=x.device) < widths[:, None]).to(x.dtype)  # (S, W)
        h = F.relu(self.first(x)).unsqueeze(0) * mask[:, None, :]  # (S, N, W)
        h = torch.where(deeper[:, None, None] > 0, F.relu(self.second(h)) * mask[:, None, :], h)
        logits = self.out(h)
        sites.classification_likelihood(logits, y)
        return logits


@pytest.fixture
def ordinal_space():
    register_family(Ordinal3Family)
    register_space(SearchSpace("ordinal-toy", OrdinalToy.for_data, True, "a test's space"))
    yield "ordinal-toy"
    unregister_space("ordinal-toy")
    unregister_family("ordinal3")


def _config(space):
    return SearchConfig(space=space, dataset="digits", epochs=3, seed=5, batch_size=32, num_samples=4,
                        stochastic_samples=4, bn_recalibration_batches=0,
                        # One variable each: the default θ range 1/d would be degenerate.
                        family_options={"bernoulli": {"theta_min": 0.05}, "ordinal3": {"theta_min": 0.05}})


def test_a_family_defined_in_a_test_searches_resumes_and_reports(ordinal_space, tmp_path, monkeypatch):
    full = run(_config(ordinal_space), out=tmp_path / "full", progress=False)

    original = SearchRun.train_epoch

    def killed_in_epoch_3(self, progress):
        if self.epoch == 2:
            raise KeyboardInterrupt  # dies after two checkpoints
        return original(self, progress)

    monkeypatch.setattr(SearchRun, "train_epoch", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        run(_config(ordinal_space), out=tmp_path / "cut", progress=False)
    monkeypatch.setattr(SearchRun, "train_epoch", original)
    resumed = run(out=tmp_path / "cut", resume=True, progress=False)
    assert resumed == full  # exact resume: the family's draws come from the seeded generator

    posterior = json.loads((tmp_path / "cut" / "posterior.json").read_text())
    assert posterior["width"]["family"] == "ordinal3" and posterior["width"]["choices"] == list(LEVELS)
    theta = torch.tensor(posterior["width"]["theta"])
    assert theta.shape == (3,) and float(theta.sum()) == pytest.approx(1.0)
    assert not torch.allclose(theta, torch.full((3,), 1 / 3))  # the search moved it
    arch = json.loads((tmp_path / "cut" / "architecture.json").read_text())
    assert arch["width"] == int(theta.argmax()) and arch["deeper"] in (0, 1)

    paths = write_report(tmp_path / "cut")
    text = paths["md"].read_text()
    assert "ordinal3" in text and "width" in text
    assert "bayesnas run: ordinal-toy / search" in text


def test_an_unknown_family_is_an_error_not_a_silent_default(tmp_path):
    def model():
        pyro.sample("width", dist.Categorical(torch.ones(3) / 3), infer=site_infer("ordinal3"))

    with pytest.raises(ValueError, match="Unknown site family 'ordinal3'. Registered families: bernoulli"):
        sites.discover_sites(model)
