"""The vinnas2020 §V experiment run (bayesnas.methods.vinnas): artifacts, exact resume, genotypes that
rebuild a stand-alone network without Pyro, and config validation."""

import json

import pytest
import torch

from bayesnas.methods import run
from bayesnas.methods.vinnas import VinnasConfig, VinnasRun, load_data, random_genotype
from bayesnas.nn.vinnas_cells import VinnasNetwork, decode_genotype


@pytest.fixture(scope="module")
def data():
    return load_data("mnist5k")


def _config(**changes):
    base = dict(channels=2, epochs=3, warmup_epochs=1, search_fraction=0.25, batch_size=16, retrain_epochs=2,
                retrain_batch_size=32, max_train_images=160, test_images=64, arch_lr=3e-3,
                random_architectures=1, eval_batch_size=64)
    base.update(changes)
    return VinnasConfig(**base)


def test_tiny_run_writes_every_artifact(tmp_path, data):
    out = tmp_path / "run"
    results = run(_config(), out=out, progress=False, data=data)
    for name in ("config.json", "posterior.json", "posterior_history.jsonl", "genotype_snr.json",
                 "genotype_magnitude.json", "genotype_random0.json", "results.json", "search/metrics.jsonl",
                 "search/checkpoint.pt", "search/best.json", "retrain-snr/result.json",
                 "retrain-magnitude/result.json", "retrain-random0/result.json"):
        assert (out / name).exists(), name
    history = [json.loads(x) for x in (out / "posterior_history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    rows = [json.loads(x) for x in (out / "search/metrics.jsonl").read_text().splitlines()]
    assert [r["arch_loss"] is None for r in rows] == [True, False, False]  # one warm-up epoch
    assert rows[0]["gamma_weights"] == 0.0 and rows[-1]["gamma_weights"] > 0  # the γ ramp
    assert results == json.loads((out / "results.json").read_text())
    for arm in (results["snr"], results["magnitude"], *results["random"]):
        assert 0.0 <= arm["test_error"] <= 1.0
        assert arm["test_accuracy"] == pytest.approx(1 - arm["test_error"])
        assert arm["num_params"] > 0
    assert results["search_seconds"] > 0 and 1 <= results["best_epoch"] <= 3
    # Its diagnostics: "at chance" by the validation error (its loss holds the KL terms).
    checks = results["diagnostics"]["checks"]
    assert {"decided_at_chance", "posterior_unmoved", "parameter_free_drift"} <= set(checks)
    assert checks["decided_at_chance"]["measure"] == "val_error"
    # A second call finds the run and refuses to overwrite it.
    with pytest.raises(FileExistsError, match="resume=True"):
        run(_config(), out=out, progress=False, data=data)


def test_killed_search_resumes_to_the_uninterrupted_result(tmp_path, data, monkeypatch):
    full = run(_config(random_architectures=0), out=tmp_path / "full", progress=False, data=data)
    original = VinnasRun.search_epoch

    def killed_in_epoch_2(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(VinnasRun, "search_epoch", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run(_config(random_architectures=0), out=tmp_path / "cut", progress=False, data=data)
    assert not (tmp_path / "cut" / "genotype_snr.json").exists()
    monkeypatch.setattr(VinnasRun, "search_epoch", original)
    resumed = run(out=tmp_path / "cut", resume=True, progress=False, data=data)

    def rows(d, f="search/metrics.jsonl"):
        return [{k: v for k, v in json.loads(x).items() if k != "seconds"}
                for x in (tmp_path / d / f).read_text().splitlines()]

    assert rows("full") == rows("cut")  # losses, validation errors, γs: bitwise the same
    assert rows("full", "posterior_history.jsonl") == rows("cut", "posterior_history.jsonl")
    for r in (full, resumed):
        r.pop("search_seconds")
        for arm in ("snr", "magnitude"):
            r[arm].pop("seconds")
    assert full == resumed


def test_exported_genotypes_rebuild_a_network_without_pyro(tmp_path, data):
    out = tmp_path / "run"
    run(_config(random_architectures=0, retrain_epochs=1), out=out, progress=False, data=data)
    for name in ("snr", "magnitude"):
        genotype = json.loads((out / f"genotype_{name}.json").read_text())
        decode_genotype(genotype, kinds=("reduce",), num_states=2)
        net = VinnasNetwork(genotype=genotype, layout="M", channels=4)
        assert net.genotype == genotype
        import pyro

        pyro.clear_param_store()
        assert net(torch.randn(3, 1, 28, 28)).shape == (3, 10)
        assert not pyro.get_param_store().keys()  # a plain nn.Module: no Pyro parameters


def test_random_genotypes_are_valid_and_cover_the_space():
    gen = torch.Generator().manual_seed(0)
    draws = [random_genotype(kinds=("reduce",), num_states=2, generator=gen) for _ in range(300)]
    for g in draws:
        decode_genotype(g, kinds=("reduce",), num_states=2)
    inputs = {tuple(g["reduce"][1]["inputs"]) for g in draws}
    assert len(inputs) == 3  # n1 reads two of {c_{k-2}, c_{k-1}, n0}
    ops = {o for g in draws for node in g["reduce"] for o in node["ops"]}
    assert len(ops) == 9 and "zero" not in ops


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, "`epochs` must be an integer >= 1, but got epochs=0"),
        ({"warmup_epochs": 3, "epochs": 3}, r"`warmup_epochs < epochs` must hold, but got \(warmup_epochs=3"),
        ({"search_fraction": 1.5}, r"`search_fraction` must lie in \(0, 1\], but got search_fraction=1.5"),
        ({"layout": "X"}, "`layout` must be one of .* but got layout='X'"),
        ({"label_smoothing": 1.0}, r"`label_smoothing` must lie in \[0, 1\), but got label_smoothing=1.0"),
        ({"gamma_start": 4, "gamma_end": 2}, r"`gamma_start <= gamma_end <= epochs` must hold, but got \("),
        ({"arch_lr": -1.0}, "`arch_lr` must be a positive finite number, but got arch_lr=-1.0"),
        ({"test_images": 0}, "`test_images` must be None or an integer >= 1, but got test_images=0"),
        ({"bayesian": False}, "`bayesian` must be True .* but got bayesian=False"),
        ({"dataset": "nope"}, "Unknown dataset 'nope'"),
    ],
)
def test_config_errors_state_the_rule_and_the_value(changes, message):
    with pytest.raises(ValueError, match=message):
        _config(**changes).validate()


def test_config_from_dict_refuses_unknown_keys():
    assert VinnasConfig.from_dict(_config().to_dict()) == _config()
    with pytest.raises(ValueError, match=r"Unknown config keys \['epoch'\]"):
        VinnasConfig.from_dict({"epoch": 3})


def test_bayesian_retraining_counts_the_parameters_left_after_pruning(tmp_path, data):
    out = tmp_path / "run"
    config = _config(random_architectures=0, retrain_bayesian=True, retrain_gamma_weights=1.0,
                     retrain_epochs=2)
    results = run(config, out=out, progress=False, data=data)
    for arm in ("snr", "magnitude"):
        r = results[arm]
        assert r["bayesian"] and 0 < r["nonzero_params"] <= r["num_params"]
        assert 0.0 <= r["test_error"] <= 1.0
    rows = [json.loads(x) for x in (out / "retrain-snr/metrics.jsonl").read_text().splitlines()]
    assert [r["gamma_weights"] for r in rows] == [0.0, 1.0]  # γ₁ ramped over the first half


def test_pruning_threshold_zeroes_weights_with_large_log_alpha(tmp_path, data):
    from bayesnas.methods.vinnas import _BayesianWeights

    net = VinnasNetwork(genotype=random_genotype(kinds=("reduce",), num_states=2,
                                                 generator=torch.Generator().manual_seed(0)), channels=2)
    bayes = _BayesianWeights(net, num_data=10)
    total = sum(p.numel() for p in net.parameters())
    forward = bayes.pruned(threshold=3.0)
    net.eval()
    forward(data.x_test[:4])
    deterministic = total - sum(loc.numel() for loc in bayes.guide.locs)
    # log σ² = −10: only the means with log α = log σ² − log μ² ≥ 3 (|μ| ≤ e^−6.5) are pruned.
    kept = sum(int(((loc != 0) & (ls2 - torch.log(loc**2) < 3.0)).sum())
               for loc, ls2 in zip(bayes.guide.locs, bayes.guide.log_sigma2s, strict=True))
    assert bayes.nonzero == deterministic + kept and kept > 0.9 * (total - deterministic)
    with torch.no_grad():
        for ls2 in bayes.guide.log_sigma2s:
            ls2.fill_(10.0)  # log α ≥ 3 everywhere: every Bayesian weight pruned
    forward(data.x_test[:4])
    assert bayes.nonzero == deterministic


# 20-35 s: kept out of the default suite (10 min on 2 cores), run by `make test-slow`.
@pytest.mark.slow
def test_script_reuses_a_finished_search_for_a_bayesian_retraining(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "experiments" / "vinnas_mnist.py"
    spec = importlib.util.spec_from_file_location("experiment_vinnas_mnist_reuse", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    common = ["--smoke", "--seeds", "1", "--random", "0", "--no-progress"]
    assert script.main([*common, "--out", str(tmp_path / "a")]) == 0
    reuse = ["--reuse-search", str(tmp_path / "a")]
    argv = [*common, "--out", str(tmp_path / "b"), "--bayesian-retrain", *reuse]
    assert script.main(argv) == 0
    a, b = (json.loads((tmp_path / d / "seed0" / "results.json").read_text()) for d in "ab")
    assert a["random"] == [] and b["random"] == []
    # Asking for more random cells re-trains only those: the search and the selections are kept.
    more = [*common[:3], "--random", "1", common[-1], "--out", str(tmp_path / "a")]
    assert script.main(more) == 0
    a2 = json.loads((tmp_path / "a" / "seed0" / "results.json").read_text())
    assert len(a2["random"]) == 1 and a2["snr"] == a["snr"] and a2["search_seconds"] == a["search_seconds"]
    assert a["snr"]["genotype"] == b["snr"]["genotype"] and a["search_seconds"] == b["search_seconds"]
    assert not a["snr"]["bayesian"] and b["snr"]["bayesian"] and b["snr"]["nonzero_params"] > 0
    page = (tmp_path / "b" / "results" / "results.md").read_text()
    assert "non-zero parameters after pruning" in page and "The searches are those of" in page
    with pytest.raises(ValueError, match=r"other settings: epochs=2 \(here 3\)"):
        script.main([*common, "--epochs", "3", "--out", str(tmp_path / "c"), *reuse])


def test_report_of_a_run_shows_its_retrained_networks(tmp_path, data):
    from bayesnas.analysis.report import write_report

    out = tmp_path / "run"
    results = run(_config(), out=out, progress=False, data=data)
    text = write_report(out)["md"].read_text()
    assert text.startswith("# bayesnas run: vinnas / layout M (run)")
    header = next(line for line in text.splitlines() if line.startswith("| network"))
    assert "test accuracy" in header and "parameters" in header and "PSNR" not in header
    row = next(line for line in text.splitlines() if line.startswith("| snr "))
    assert f"{results['snr']['num_params']}" in row
    assert "| random0 " in text and "| magnitude " in text
    # The chosen cells of both selections: a diagram and a table each, with the posterior's numbers.
    import re

    from bayesnas.analysis.genotype_plot import vinnas_strengths

    posterior = json.loads((out / "posterior.json").read_text())
    for name in ("snr", "magnitude"):
        genotype = json.loads((out / f"genotype_{name}.json").read_text())
        assert f"## Chosen cells by {name} (genotype_{name}.json)" in text
        strengths = vinnas_strengths(genotype, posterior)
        for i, state in enumerate(genotype["reduce"]):
            s = strengths["reduce"][i]
            snr, weights = (", ".join(f"{v:{fmt}}" for v in s[key]) for key, fmt in (("snr", ".4g"),
                                                                                        ("weights", ".3f")))
            row = (f"| reduce | n{i} | {', '.join(state['inputs'])} | {', '.join(state['ops'])} | "
                   f"{snr} | {weights} |")
            assert row in text
        assert f"(report/genotype_{name}.png)" in text
    assert "| cell | state | inputs | ops | SNR μ/σ² | mixing weight softmax(μ) |" in text
    assert "| normal | n0 |" not in text  # layout M has only a reduction cell
    for rel in re.findall(r"\]\((report/[^)]+\.png)\)", text):
        assert (out / rel).read_bytes().startswith(b"\x89PNG"), rel
    assert {"report/genotype_snr.png", "report/genotype_magnitude.png"} <= set(
        re.findall(r"\]\((report/[^)]+\.png)\)", text))
