"""The nes2019 run (bayesnas.methods.nes): artifacts, budgets, uniform baselines, exact resume, and an
exported architecture that rebuilds a plain network."""

import functools
import json
import random

import pytest
import torch

from bayesnas.data.tensors import load_tensors
from bayesnas.methods import run, run_resumably
from bayesnas.methods.nes import (
    NesConfig,
    NesRun,
    fit_to_budget,
    make_backbone,
    uniform_architecture,
)
from bayesnas.resources.flops import macs


@pytest.fixture(scope="module")
def data():
    return load_tensors("digits")


def _config(**changes):
    base = dict(width_mult=0.25, outer_iterations=3, arch_steps=2, num_samples=4, weight_steps=3,
                retrain_epochs=1, max_train_images=300, test_images=100, uniform=("channel",))
    base.update(changes)
    return NesConfig(**base)


def test_tiny_run_writes_every_artifact_and_prices_every_arm(tmp_path, data):
    out = tmp_path / "run"
    results = run(_config(search_resolution=True, search_depth=True,
                              uniform=("channel", "resolution", "channel+resolution")),
                      out=out, progress=False, data=data)
    for name in ("config.json", "posterior.json", "posterior_history.jsonl", "architecture.json",
                 "search/metrics.jsonl", "search/checkpoint.pt", "retrain-searched/result.json",
                 "uniform-channel.json", "retrain-uniform-resolution/result.json", "results.json"):
        assert (out / name).exists(), name
    rows = [json.loads(x) for x in (out / "search/metrics.jsonl").read_text().splitlines()]
    # σ decays linearly from 1.25 to 0 over the 3 × 2 H updates: the last update uses 1.25 / 6.
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[-1]["sigma"] == pytest.approx(1.25 / 6)
    history = [json.loads(x) for x in (out / "posterior_history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert next(iter(history[0]["posterior"].values()))["family"] == "gaussian-integer"
    reference = make_backbone(_config(), data.input_shape, data.num_classes, search_resolution=True,
                              search_depth=True)
    base = macs(reference.layers(reference.base_hparams()))
    assert results["base_resource"] == base and results["target_resource"] == pytest.approx(0.5 * base)
    # The run's diagnostics, from its posterior history against the weights' loss.
    checks = results["diagnostics"]["checks"]
    assert {"decided_at_chance", "posterior_unmoved", "credible_set_ties"} <= set(checks)
    assert checks["decided_at_chance"]["measure"] == "train_loss"
    arms = [results["searched"], *results["uniform"].values()]
    assert set(results["uniform"]) == {"channel", "resolution", "channel+resolution"}
    for arm in arms:
        assert 0.0 <= arm["test_error"] <= 1.0 and arm["num_params"] > 0
        assert arm["resource_ratio"] == pytest.approx(arm["resource"] / results["target_resource"])
    # The exported architecture is ⌊μ⌋ on the grids, and its MACs are those of its layers.
    arch = json.loads((out / "architecture.json").read_text())
    searched = make_backbone(_config(search_resolution=True, search_depth=True), data.input_shape,
                             data.num_classes)
    assert searched.validate(arch) == arch
    assert results["searched"]["resource"] == macs(searched.layers(arch))
    assert results["dimensions"] == ["channel", "resolution", "depth"]
    # ⌊μ⌋ itself is kept in mode.json; the exported architecture meets the budget within ±5 %.
    mode = json.loads((out / "mode.json").read_text())
    assert results["searched"]["mode_hparams"] == mode
    assert results["searched"]["mode_resource"] == macs(searched.layers(mode))
    assert results["searched"]["fitted"] == (mode != arch)
    assert abs(results["searched"]["resource_ratio"] - 1) <= 0.05


def test_exported_architecture_rebuilds_a_plain_network(tmp_path, data):
    out = tmp_path / "run"
    run(_config(uniform=()), out=out, progress=False, data=data)
    arch = json.loads((out / "architecture.json").read_text())
    net = make_backbone(_config(), data.input_shape, data.num_classes).build(arch)
    assert not any("Slim" in type(m).__name__ for m in net.modules())
    assert net(data.x_test[:5]).shape == (5, 10)


def test_killed_search_resumes_to_the_uninterrupted_result(tmp_path, data, monkeypatch):
    full = run(_config(uniform=()), out=tmp_path / "full", progress=False, data=data)
    original = NesRun.search_epoch

    def killed_in_epoch_2(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(NesRun, "search_epoch", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run(_config(uniform=()), out=tmp_path / "killed", progress=False, data=data)
    monkeypatch.setattr(NesRun, "search_epoch", original)
    resumed = run(out=tmp_path / "killed", resume=True, progress=False, data=data)
    assert resumed["searched"]["hparams"] == full["searched"]["hparams"]
    assert resumed["searched"]["test_error"] == full["searched"]["test_error"]
    a, b = ((tmp_path / d / "posterior.json").read_text() for d in ("full", "killed"))
    assert a == b
    # A study reads a finished run back, and refuses one with other settings.
    assert run_resumably(_config(uniform=()), tmp_path / "full") == full
    with pytest.raises(ValueError, match="holds a finished run with another configuration"):
        run_resumably(_config(uniform=(), budget=0.7), tmp_path / "full")


def test_uniform_baseline_is_the_closest_scaled_backbone_to_the_budget(data):
    backbone = make_backbone(_config(), data.input_shape, data.num_classes, search_resolution=True,
                             search_depth=True)

    def cost(h):
        return float(macs(backbone.layers(h)))

    target = 0.5 * cost(backbone.base_hparams())
    grids = backbone.hyperparameters()
    for kind in ("channel", "resolution", "channel+resolution"):
        h = uniform_architecture(backbone, kind, cost, target)
        assert backbone.validate(h) == h
        assert all(h[n] == g.base for n, g in grids.items() if n.endswith(".depth"))
        if kind == "channel":
            assert h["resolution"] == grids["resolution"].base
        if kind == "resolution":
            assert all(h[n] == g.base for n, g in grids.items() if n != "resolution")
        # No other multiplier (an independent, finer sweep) gets closer to the budget.
        for m in torch.linspace(0.05, 1.6, 621).tolist():
            other = {n: g.base if n.endswith(".depth")
                     else g.snap(g.base * m) if ("resolution" if n == "resolution" else "channel") in kind
                     else g.base for n, g in grids.items()}
            assert abs(cost(h) - target) <= abs(cost(other) - target) + 1e-9
    with pytest.raises(ValueError, match="`kind` must be one of"):
        uniform_architecture(backbone, "depth", cost, target)


@pytest.mark.parametrize(("changes", "message"), [
    (dict(backbone="vgg"), r"`backbone` must be one of \['mobilenetv2', 'resnet', 'tiny-resnet'\], but got "
                           r"backbone='vgg'"),
    (dict(budget=0), "`budget` must be a finite number > 0, but got budget=0"),
    (dict(uniform=("depth",)), r"`uniform` takes baselines from"),
    (dict(num_samples=0), "`num_samples` must be an integer >= 1, but got num_samples=0"),
    (dict(eval_fraction=1.0), r"`eval_fraction` must lie in \(0, 1\), but got eval_fraction=1.0"),
    (dict(dataset="imagenet"), "Unknown dataset 'imagenet'"),
])
def test_config_errors_state_the_rule_and_the_value(changes, message):
    with pytest.raises(ValueError, match=message):
        _config(**changes).validate()


def test_report_of_a_run_shows_its_title_networks_and_integer_posterior(tmp_path, data):
    from bayesnas.analysis.report import write_report

    out = tmp_path / "run"
    results = run(_config(), out=out, progress=False, data=data)
    text = write_report(out)["md"].read_text()
    assert text.startswith("# bayesnas run: nes / mobilenetv2, budget 0.5× (run)")
    assert "3 of 3 outer iterations (nes2019 alg. 1) on digits, seed 0." in text
    header = next(line for line in text.splitlines() if line.startswith("| network"))
    assert "resource / budget" in header and "test accuracy" in header
    searched = next(line for line in text.splitlines() if line.startswith("| searched "))
    assert f"{results['searched']['num_params']}" in searched
    assert any(line.startswith("| uniform channel ") for line in text.splitlines())
    assert "(gaussian-integer)" in text  # the Gaussian's marginals over every grid


def test_a_run_with_adaptive_sigma_and_a_latency_budget(tmp_path, data):
    """Both options beyond the default: σ² learnt per hyper-parameter, and R the latency summed
    over a table measured on this CPU at the run's start (``latency_table.json``)."""
    from bayesnas.resources.latency import LatencyTable

    out = tmp_path / "run"
    results = run(_config(adapt_sigma=True, resource="latency", uniform=()), out=out, progress=False,
                      data=data)
    table = LatencyTable.load(out / "latency_table.json")
    arch = json.loads((out / "architecture.json").read_text())
    backbone = make_backbone(_config(), data.input_shape, data.num_classes)
    assert results["resource"] == "latency"
    assert results["searched"]["resource"] == pytest.approx(table.total(backbone.layers(arch)))
    entry = next(iter(json.loads((out / "posterior.json").read_text()).values()))
    assert entry["family"] == "gaussian-integer" and entry["sigma_steps"] != 1.25  # σ moved


def test_init_uniform_starts_the_search_at_the_backbone_scaled_to_the_budget(tmp_path, data):
    run = NesRun(_config(init="uniform", budget=0.35), tmp_path / "run", data=data)
    run.build_search()
    cost = functools.partial(run.cost, backbone=run.reference)
    start = uniform_architecture(run.reference, "channel", cost, run.target)
    mode = {k: int(v) for k, v in run.guide.mode().items()}
    assert mode == {k: start[k] for k in mode}  # every searched hyper-parameter
    assert abs(run.cost(mode, run.backbone) / run.target - 1) < 0.1  # near the budget from the start
    with pytest.raises(ValueError, match=r"`init` must be one of \['base', 'uniform'\], but got init='zero'"):
        _config(init="zero").validate()


@pytest.mark.parametrize("budget", [0.35, 0.5, 0.75])
def test_fit_to_budget_rescales_the_channels_of_an_architecture_that_misses(data, budget):
    backbone = make_backbone(_config(width_mult=0.5), data.input_shape, data.num_classes,
                             search_resolution=True, search_depth=True)

    def cost(h):
        return float(macs(backbone.layers(h)))

    target = budget * cost(backbone.base_hparams())
    grids = backbone.hyperparameters()
    rng = random.Random(int(100 * budget))
    archs = [backbone.min_hparams(), backbone.max_hparams()]
    archs += [{n: rng.choice(g.values()) for n, g in grids.items()} for _ in range(20)]
    for h in archs:
        fitted = fit_to_budget(backbone, h, cost, target, tolerance=0.05)
        assert backbone.validate(fitted) == fitted
        if abs(cost(h) / target - 1) <= 0.05:
            assert fitted == h  # within the tolerance: left alone
            continue
        assert all(fitted[n] == h[n] for n in grids if n.endswith(".depth"))  # depth kept
        if fitted["resolution"] == h["resolution"]:
            # One multiplier m for every channel count: fitted = snap(h · m). Each count puts m in
            # an interval (its grid value ± half a step, open-ended at the grid's ends); the
            # intervals meet.
            low, high = 0.0, float("inf")
            for n, g in grids.items():
                if n != "resolution" and not n.endswith(".depth"):
                    if fitted[n] > g.low:
                        low = max(low, (fitted[n] - g.step / 2) / h[n])
                    if fitted[n] < g.high:
                        high = min(high, (fitted[n] + g.step / 2) / h[n])
            assert low <= high
        reachable = abs(cost(fitted) / target - 1) <= 0.05
        # Only an architecture whose depth alone puts the budget out of the channels' and the
        # resolution's reach may miss; then the fit is the closest the grids allow.
        if not reachable:
            lowest = {**backbone.min_hparams(), **{n: h[n] for n in grids if n.endswith(".depth")}}
            highest = {**backbone.max_hparams(), **{n: h[n] for n in grids if n.endswith(".depth")}}
            assert not cost(lowest) <= target * 1.05 or not cost(highest) >= target * 0.95


def test_fit_budget_false_exports_the_mode_itself(tmp_path, data):
    out = tmp_path / "run"
    run(_config(fit_budget=False, uniform=(), budget=0.2), out=out, progress=False, data=data)
    assert json.loads((out / "architecture.json").read_text()) == json.loads((out / "mode.json").read_text())


def test_a_latency_budget_priced_with_a_given_table(tmp_path, data):
    """One table for a whole study: the run prices with it (and keeps its own copy) instead of
    measuring; a path that is not a file is refused with the rule and the value."""
    from bayesnas.methods.nes import measure_latency_table
    from bayesnas.resources.latency import LatencyTable

    reference = make_backbone(_config(), data.input_shape, data.num_classes, search_resolution=True,
                              search_depth=True)
    given = measure_latency_table(reference)
    given.save(tmp_path / "table.json")
    out = tmp_path / "run"
    results = run(_config(resource="latency", latency_table=str(tmp_path / "table.json"), uniform=()),
                      out=out, progress=False, data=data)
    assert LatencyTable.load(out / "latency_table.json") == given
    arch = json.loads((out / "architecture.json").read_text())
    searched = make_backbone(_config(), data.input_shape, data.num_classes)
    assert results["searched"]["resource"] == pytest.approx(given.total(searched.layers(arch)))
    assert results["base_resource"] == pytest.approx(given.total(reference.layers(reference.base_hparams())))
    with pytest.raises(FileNotFoundError, match=r"`latency_table` must be a table written by "
                                                r"LatencyTable.save, but got latency_table='.*none.json'"):
        NesRun(_config(resource="latency", latency_table=str(tmp_path / "none.json")), tmp_path / "bad",
               data=data)
