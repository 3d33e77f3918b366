"""Run artefacts for the analysis, the run report, the comparison and TensorBoard logging."""

import json
import re

import pytest
import torch

from bayesnas.analysis import Posterior, PosteriorHistory, classification_metrics, model_averaging
from bayesnas.analysis.calibration import expected_calibration_error
from bayesnas.analysis.report import compare_runs, write_report
from bayesnas.cli import main
from bayesnas.methods import run
from bayesnas.methods.search import SearchConfig


def _config(**kw):
    base = dict(space="layer-skip", dataset="digits", epochs=2, seed=3, batch_size=16,
                stochastic_samples=4, space_options={"depth": 4, "width": 16})
    base.update(kw)
    return SearchConfig(**base)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "smoke"
    results = run(_config(), out=out, progress=False)
    return out, results


def test_a_run_writes_what_the_analysis_needs(smoke_run):
    out, results = smoke_run
    history = PosteriorHistory(out / "posterior_history.jsonl")
    assert [r["epoch"] for r in history.read()] == [0, 1, 2]
    steps = [s for s, _ in history.posteriors()]
    assert steps[0] == 0 and steps[1] == steps[2] / 2 > 0  # iterations
    first = history.posteriors()[0][1]
    assert first["layers"].theta.tolist() == [0.5] * 3 and first["layers"].labels == ("skip", "layer")
    assert first["layers"].edges == [("h1", "h2"), ("h2", "h3"), ("h3", "h4")]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    for key in ("entropy", "mean_max_prob", "undecided", "expected_active_bits", "iteration"):
        assert key in rows[-1], key
    final = Posterior.load(out / "posterior.json")
    credible = json.loads((out / "credible_set.json").read_text())
    assert credible[0]["architecture"] == final.mode() == json.loads((out / "architecture.json").read_text())
    assert credible[0]["probability"] == pytest.approx(results["mode_probability"])
    for key in ("accuracy", "nll", "ece"):
        assert 0 <= results["test_most_likely"][key] and 0 <= results["test_model_average"][key]
    assert results["test_error_deterministic"] == pytest.approx(1 - results["test_most_likely"]["accuracy"])
    assert 0 < results["weight_usage_rate"] <= 1


def test_weight_usage_rate_counts_the_weights_of_kept_layers(tmp_path):
    res = run(_config(epochs=1, method="fixed", num_samples=1), out=tmp_path / "f", progress=False)
    assert res["weight_usage_rate"] == 1.0 == res["expected_weight_usage_rate"]
    res = run(_config(epochs=1, method="stochastic", num_samples=1), out=tmp_path / "s",
                     progress=False)
    # θ = 0.5 keeps every layer in the mode; in expectation half of each hidden layer's weights
    # (a mean over 256 sampled architectures: its standard error is 0.0073 here).
    total = 64 * 16 + 16 + 3 * (16 * 16 + 16) + 16 * 10 + 10
    assert res["weight_usage_rate"] == 1.0
    expected = (total - 1.5 * (16 * 16 + 16)) / total
    assert res["expected_weight_usage_rate"] == pytest.approx(expected, abs=0.03)
    res = run(_config(epochs=1, method="fixed", fixed_value=0, num_samples=1), out=tmp_path / "z",
                     progress=False)
    assert res["weight_usage_rate"] == pytest.approx((total - 3 * (16 * 16 + 16)) / total)


def test_report_references_every_figure_it_made(smoke_run):
    out, _ = smoke_run
    paths = write_report(out)
    page = paths["html"].read_text()
    assert paths["figures"], "a finished search run has figures"
    for fig in paths["figures"]:
        assert fig.exists() and fig.stat().st_size > 1000 and fig.read_bytes()[:4] == b"\x89PNG"
        assert f'href="report/{fig.name}"' in page
        assert f"(report/{fig.name})" in paths["md"].read_text()
    # Self-contained: every figure is embedded, and there is nothing else to fetch.
    assert page.count("data:image/png;base64,") == len(paths["figures"])
    assert not re.search(r'src="(?!data:)', page)
    for section in ("Test metrics", "Credible set", "Most likely architecture", "Configuration",
                    "Posterior per variable", "model average"):
        assert section in page, section
    names = {f.name for f in paths["figures"]}
    assert {"learning_curves.png", "trajectories.png", "entropy.png", "theta_histograms.png",
            "cell.png", "heatmap.png"} <= names


def test_report_of_an_unfinished_run_says_so(smoke_run, tmp_path):
    out, _ = smoke_run
    cut = tmp_path / "cut"
    cut.mkdir()
    for name in ("config.json", "metrics.jsonl", "posterior_history.jsonl"):
        (cut / name).write_text((out / name).read_text())
    paths = write_report(cut)
    assert "has not finished" in paths["html"].read_text()
    assert len(paths["figures"]) >= 5


def test_compare_pools_seeds_and_reports_mean_and_std(smoke_run, tmp_path):
    out, first = smoke_run
    second = run(_config(seed=4), out=tmp_path / "seed4", progress=False)
    base = run(_config(method="fixed", num_samples=1), out=tmp_path / "fixed", progress=False)
    comparison = compare_runs([out, tmp_path / "seed4", tmp_path / "fixed"], out=tmp_path / "cmp")
    assert set(comparison.groups) == {'method="search", num_samples=2', 'method="fixed", num_samples=1'}
    mean, std, n = comparison.stats['method="search", num_samples=2']["test error (most likely)"]
    errors = [first["test_error_deterministic"], second["test_error_deterministic"]]
    assert n == 2 and mean == pytest.approx(sum(errors) / 2)
    assert std == pytest.approx(abs(errors[0] - errors[1]) / 2 ** 0.5)
    assert comparison.stats['method="fixed", num_samples=1']["test error (most likely)"][0] == \
        pytest.approx(base["test_error_deterministic"])
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert "tradeoff.png" in page and (tmp_path / "cmp" / "tradeoff.png").stat().st_size > 1000
    assert "±" in (tmp_path / "cmp" / "compare.md").read_text()


def test_the_committed_example_run_still_reads_and_reports(tmp_path):
    import shutil
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "docs" / "example-run"
    run = shutil.copytree(example, tmp_path / "example", ignore=shutil.ignore_patterns("report*"))
    paths = write_report(run)
    results = json.loads((run / "results.json").read_text())
    assert len(paths["figures"]) == 6
    md = paths["md"].read_text()
    assert f"{results['test_error_deterministic']:.4f}" in md
    # The demo's θ sits at its clip bound: said at the top, at p(mode) and at the credible set.
    assert md.index("## Diagnostics") < md.index("## Test metrics")
    assert "Warning: at_clip_bound: All 31 variables" in md
    assert "| mode_probability | 0.8561 (the clip bound, not evidence) |" in md
    assert "These probabilities are set by θ's clip bound" in md
    arch = json.loads((run / "architecture.json").read_text())
    assert Posterior.load(run / "posterior.json").mode() == arch


def test_cli_report_and_compare(smoke_run, tmp_path, capsys):
    out, _ = smoke_run
    assert main(["report", str(out), "--top", "3"]) == 0
    assert "report written to" in capsys.readouterr().out
    assert main(["compare", str(out), "--out", str(tmp_path / "c")]) == 0
    assert "test error (most likely)" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "not a bayesnas run directory" in err and "Traceback" not in err


def test_tensorboard_logs_the_epoch_metrics(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    run(_config(tensorboard=True), out=out, progress=False)
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    logged = acc.Scalars("train_loss")
    assert [e.step for e in logged] == [r["iteration"] for r in rows]
    assert [e.value for e in logged] == pytest.approx([r["train_loss"] for r in rows], rel=1e-6)
    assert "mean_max_prob_per_site/layers" in acc.Tags()["scalars"]
    assert "posterior/layers" in acc.Tags()["histograms"]


def test_calibration_metrics_against_hand_computed_values():
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    y = torch.tensor([0, 1, 1, 1])
    m = classification_metrics(probs, y, num_bins=2)
    assert m["accuracy"] == 0.75 and m["error"] == 0.25
    assert m["nll"] == pytest.approx(-(torch.tensor([0.9, 0.4, 0.7, 0.8]).log().mean().item()))
    # Bins (0, .5], (.5, 1]: every top-class probability lands in the upper bin:
    # |accuracy 3/4 − mean confidence (0.9 + 0.6 + 0.7 + 0.8)/4| = 0.
    assert m["ece"] == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(probs, y, num_bins=10) == pytest.approx(
        (abs(1 - 0.9) + abs(0 - 0.6) + abs(1 - 0.7) + abs(1 - 0.8)) / 4)
    with pytest.raises(ValueError, match=r"shape \(N, C\)"):
        classification_metrics(probs[0], y)


def test_model_averaging_averages_the_probabilities_of_the_sampled_architectures():
    from bayesnas import sites
    from bayesnas.guides import BernoulliGuide, FixedGuide
    from bayesnas.sites import discover_sites

    class OneBit(torch.nn.Module):
        def forward(self, x, y=None):
            b = sites.bernoulli("b")
            logits = torch.stack([torch.zeros_like(b), 2 * b - 1], -1)  # (S, 2)
            return logits[:, None, :].expand(b.shape[0], x.shape[0], 2)

    model = OneBit()
    x, y = torch.zeros(5, 1), torch.ones(5, dtype=torch.long)
    specs = discover_sites(model, x)
    guide = BernoulliGuide(specs, init=0.5, learnable=False)
    res = model_averaging(model, guide, [(x, y)], num_samples=4000,
                          generator=torch.Generator().manual_seed(0))
    p_on, p_off = torch.tensor([0.0, 1.0]).softmax(-1)[1], torch.tensor([0.0, -1.0]).softmax(-1)[1]
    exact = 0.5 * (p_on + p_off)  # P(y = 1) under the posterior average
    assert res["averaged"]["nll"] == pytest.approx(-exact.log().item(), abs=0.01)
    assert res["most_likely"]["nll"] == pytest.approx(-p_on.log().item(), abs=1e-6)  # θ = 0.5 keeps b
    fixed = model_averaging(model, FixedGuide({"b": 1}, specs), [(x, y)], num_samples=3,
                            generator=torch.Generator().manual_seed(0))
    assert fixed["averaged"] == pytest.approx(fixed["most_likely"])


def test_tensorboard_after_a_crash_between_log_and_checkpoint_has_no_duplicate_steps(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import bayesnas.runs.loop as runner  # the one loop every method's epochs go through

    real_save = runner.save_checkpoint

    def dies_at_epoch_2(path, state):
        if state["epoch"] == 2:
            raise KeyboardInterrupt  # killed after epoch 2 was logged, before its checkpoint
        real_save(path, state)

    out = tmp_path / "tb"
    monkeypatch.setattr(runner, "save_checkpoint", dies_at_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run(_config(epochs=3, tensorboard=True), out=out, progress=False)
    monkeypatch.setattr(runner, "save_checkpoint", real_save)
    run(out=out, resume=True, progress=False)
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("train_loss")]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [r["iteration"] for r in rows] and len(rows) == 3
