"""Every plot function writes a non-empty PNG for each guide family, and the pixels follow the posterior."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from bayesnas.analysis.marginals import (
    BernoulliMarginal,
    CategoricalMarginal,
    FixedMarginal,
    GaussianIntegerMarginal,
    NormalStrengthMarginal,
    SharedBernoulliMarginal,
)
from bayesnas.analysis.plots import (
    _layers,
    plot_cell,
    plot_entropy,
    plot_heatmap,
    plot_learning_curves,
    plot_theta_histograms,
    plot_tradeoff,
    plot_trajectories,
)
from bayesnas.analysis.posterior import Posterior

OPS = ("conv3x3", "maxpool", "skip")
EDGES = [("in0", "n1"), ("in1", "n1"), ("n1", "n2")]


def _site(family: str, t: float):
    """One site of ``family`` whose parameters move with ``t`` in [0, 1]."""
    if family == "bernoulli":
        return BernoulliMarginal("depth", torch.linspace(0.1, 0.9, 6) * (1 - t) + 0.5 * t,
                                 labels=("skip", "layer"))
    if family == "shared-bernoulli":
        return SharedBernoulliMarginal("dropout", torch.tensor([0.2, 0.7, 0.5]) * (1 - t) + 0.9 * t,
                                       group_size=4)
    if family == "categorical":
        logits = torch.tensor([[2.0, 0.0, 0.5], [0.0, 1.0, 0.0], [0.3, 0.0, 2.0]]) * (1 + 3 * t)
        return CategoricalMarginal("ops", logits.softmax(-1), labels=OPS, edges=EDGES)
    if family == "gaussian-integer":
        return GaussianIntegerMarginal("width", torch.tensor([3.0, 5.0]) + 2 * t,
                                       torch.tensor([1.0, 2.0]) * (1 - 0.7 * t), low=1, high=8)
    if family == "normal":
        mu = torch.tensor([[1.0, 0.2, 0.5], [0.1, 0.8, 0.0], [0.3, 0.3, 1.2]]) * (1 + 2 * t)
        return NormalStrengthMarginal("alpha", mu, torch.full((3, 3), 0.5 - 0.3 * t), labels=OPS,
                                      edges=EDGES, num_samples=2000)
    if family == "fixed":
        return FixedMarginal("fixed", [1, 0, 2] if t < 0.75 else [2, 0, 1])
    raise AssertionError(family)


FAMILIES = ["bernoulli", "shared-bernoulli", "categorical", "gaussian-integer", "normal", "fixed"]
CASES = [*FAMILIES, "mixed"]


def make_posterior(case: str, t: float = 0.0) -> Posterior:
    families = FAMILIES if case == "mixed" else [case]
    return Posterior(_site(f, t) for f in families)


def make_history(case: str) -> list[tuple[int, Posterior]]:
    return [(100 * k, make_posterior(case, t)) for k, t in enumerate((0.0, 0.5, 1.0))]


PLOTS = {
    "histograms": lambda post, hist, path: plot_theta_histograms(post, path),
    "trajectories": lambda post, hist, path: plot_trajectories(hist, path),
    "entropy": lambda post, hist, path: plot_entropy(hist, path),
    "cell": lambda post, hist, path: plot_cell(post, path),
    "cell-snr": lambda post, hist, path: plot_cell(post, path, weight="snr"),
    "heatmap": lambda post, hist, path: plot_heatmap(post, path),
    "heatmap-snr": lambda post, hist, path: plot_heatmap(post, path, value="snr"),
}


def assert_png(path, *, min_bytes: int = 5_000) -> np.ndarray:
    assert path.is_file()
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > min_bytes
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert 150 <= image.shape[0] <= 3_000 and 300 <= image.shape[1] <= 2_400
    assert image[..., :3].std() > 0.01  # something was drawn, not a blank canvas
    return image


@pytest.fixture(scope="module")
def cases():
    return {case: (make_posterior(case), make_history(case)) for case in CASES}


# SNR weights only differ from probabilities for normal sites; other families fall back.
RENDERS = [(case, plot) for case in CASES for plot in PLOTS
           if not plot.endswith("-snr") or case in ("normal", "mixed")]


@pytest.mark.parametrize("case, plot", RENDERS)
def test_every_plot_writes_a_png_for_each_family(cases, tmp_path, case, plot):
    post, hist = cases[case]
    path = tmp_path / "nested" / "dir" / f"{plot}.png"
    out = PLOTS[plot](post, hist, path)
    assert out == path
    assert_png(path)
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write left no temporary behind


# Cell diagrams and heat-maps read each family differently; histograms, trajectories and
# entropy curves are checked on one Bernoulli and one non-Bernoulli case, and the mixed one.
FOLLOW = [(case, plot) for case in CASES for plot in ("cell", "heatmap")] + [
    ("bernoulli", "histograms"), ("gaussian-integer", "histograms"),
    ("mixed", "trajectories"), ("categorical", "trajectories"), ("mixed", "entropy"),
]


@pytest.mark.parametrize("case, plot", FOLLOW)
def test_images_follow_the_posterior(cases, tmp_path, case, plot):
    before, hist_before = cases[case]
    after = make_posterior(case, 1.0)
    a = PLOTS[plot](before, hist_before, tmp_path / "a.png").read_bytes()
    b = PLOTS[plot](after, [(s, after) for s, _ in hist_before], tmp_path / "b.png").read_bytes()
    assert a != b


def test_images_are_deterministic(cases, tmp_path):
    post, hist = cases["categorical"]
    for plot in ("cell", "heatmap"):
        a = PLOTS[plot](post, hist, tmp_path / "a.png").read_bytes()
        assert PLOTS[plot](post, hist, tmp_path / "b.png").read_bytes() == a


def test_snr_weights_change_the_normal_figures(tmp_path):
    post = make_posterior("normal", 0.5)
    for plot in (plot_cell, plot_heatmap):
        kw = "weight" if plot is plot_cell else "value"
        prob = plot(post, tmp_path / "p.png", **{kw: "prob"}).read_bytes()
        snr = plot(post, tmp_path / "s.png", **{kw: "snr"}).read_bytes()
        assert prob != snr


def test_plots_accept_a_summary_dict(tmp_path):
    summary = Posterior([_site("categorical", 0.3), _site("bernoulli", 0.3)]).to_summary()
    assert_png(plot_heatmap(summary, tmp_path / "h.png"))
    assert_png(plot_trajectories([(0, summary), (1, summary)], tmp_path / "t.png"))


def test_trajectories_and_entropy_with_one_snapshot(tmp_path):
    for case in ("bernoulli", "mixed"):
        hist = [(0, make_posterior(case, 0.2))]
        assert_png(plot_trajectories(hist, tmp_path / f"{case}-t.png"))
        assert_png(plot_entropy(hist, tmp_path / f"{case}-e.png"))


def test_bad_arguments_raise(tmp_path):
    post = make_posterior("mixed")
    with pytest.raises(ValueError, match="weight"):
        plot_cell(post, tmp_path / "x.png", weight="mu")
    with pytest.raises(ValueError, match="value"):
        plot_heatmap(post, tmp_path / "x.png", value="entropy")
    with pytest.raises(ValueError, match="empty"):
        plot_tradeoff([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="'x'"):
        plot_tradeoff([{"label": "a", "y": 0.1}], tmp_path / "x.png")
    with pytest.raises(ValueError, match="empty"):
        plot_trajectories([], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_tradeoff(tmp_path):
    points = [
        {"label": "proposed", "x": 0.5, "y": 0.02, "y_err": (0.002, 0.004), "annotation": "ε0=-0.5"},
        {"label": "proposed", "x": 0.06, "y": 0.05, "y_err": 0.01, "annotation": "ε0=2"},
        {"label": "proposed", "x": 0.25, "y": 0.025, "x_err": 0.02},
        {"label": "fixed", "x": 0.25, "y": 0.03},
        {"label": "fixed", "x": 1.0, "y": 0.021},
        {"label": "dropout", "x": 1.0, "y": 0.019},
    ]
    a = assert_png(plot_tradeoff(points, tmp_path / "t.png"))
    b = plot_tradeoff(points[:3], tmp_path / "u.png", x_label="FLOPs", y_label="error")
    assert tmp_path.joinpath("t.png").read_bytes() != b.read_bytes()
    assert a.shape[0] > 200


def test_cell_layers_follow_the_graph():
    assert _layers(["in0", "in1", "n1", "n2"], EDGES) == {"in0": 0, "in1": 0, "n1": 1, "n2": 2}
    cyclic = _layers(["a", "b"], [("a", "b"), ("b", "a")])  # terminates on a cycle
    assert set(cyclic) == {"a", "b"}


def test_large_posterior_is_fast_and_readable(tmp_path):
    """3,072 activation bits (3 layers x 1,024 units) and 30 snapshots: each figure in ~3 s."""
    gen = torch.Generator().manual_seed(0)
    start = torch.rand(3, 1024, generator=gen)

    def snapshot(k: int) -> Posterior:
        theta = (0.5 + (start - 0.5) * (1 + k / 10)).clamp(0.0, 1.0)
        return Posterior([BernoulliMarginal("activation", theta, labels=("tanh", "relu"))])

    hist = [(1000 * k, snapshot(k)) for k in range(30)]
    post = hist[-1][1]
    jobs = {
        "histograms": lambda p: plot_theta_histograms(post, p),
        "trajectories": lambda p: plot_trajectories(hist, p),
        "entropy": lambda p: plot_entropy(hist, p),
        "cell": lambda p: plot_cell(post, p),
        "heatmap": lambda p: plot_heatmap(post, p),
    }
    for name, job in jobs.items():
        t0 = time.perf_counter()
        path = job(tmp_path / f"{name}.png")
        elapsed = time.perf_counter() - t0
        assert elapsed < 5.0, f"{name} took {elapsed:.1f} s"
        image = assert_png(path)
        assert image.shape[0] * image.shape[1] < 2_400 * 3_000


def test_learning_curves_follow_the_metrics(tmp_path):
    rows = [{"epoch": e, "train_loss": 2.0 / e, "val_error": 0.5 / e, "test_error": None} for e in (1, 2, 3)]
    a = plot_learning_curves(rows, tmp_path / "a.png")
    rows[1]["train_loss"] = 5.0
    b = plot_learning_curves(rows, tmp_path / "b.png")
    assert a.read_bytes()[:4] == b"\x89PNG" and a.stat().st_size > 1000
    assert a.read_bytes() != b.read_bytes()
    with pytest.raises(ValueError, match="no row with an 'epoch'"):
        plot_learning_curves([{"loss": 1.0}], tmp_path / "c.png")
