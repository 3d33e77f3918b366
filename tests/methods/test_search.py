"""End-to-end behaviour of the search loop: toy recovery, resume, CLI errors."""

import functools
import json

import pytest
import torch

from bayesnas.cli import main
from bayesnas.guides import auto_guide
from bayesnas.infer import ArchitectureSearch, RankingNaturalGradientLoss
from bayesnas.methods import run
from bayesnas.methods.search import SearchConfig
from tests.toy_models import HammingToy


@pytest.mark.parametrize("adaptive", [False, True])
def test_ten_bit_toy_search_finds_the_hidden_target(adaptive):
    target = torch.tensor([1, 0, 0, 1, 1, 0, 1, 0, 1, 1])
    model = HammingToy(target, noise=0.5, generator=torch.Generator().manual_seed(7))
    guide = auto_guide(model)
    search = ArchitectureSearch(
        model, guide, RankingNaturalGradientLoss(num_samples=2),
        weight_optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1),
        arch_optimizers=guide.make_optimizers(adaptive=adaptive),
        generator=torch.Generator().manual_seed(0),
    )
    for _ in range(1500):
        search.step()
    assert guide.mode()["bits"].long().tolist() == target.tolist()
    theta = guide.theta("bits").detach()
    assert float((theta - target).abs().max()) < 0.2


def _config(**kw):
    base = dict(space="layer-skip", dataset="digits", epochs=4, seed=3, batch_size=16,
                stochastic_samples=4, space_options={"depth": 4, "width": 16})
    base.update(kw)
    return SearchConfig(**base)


ALTERNATING = dict(alternate=True, lr_schedule="cosine", clip_norm=5.0, nesterov=False, weight_decay=3e-4)


@pytest.mark.parametrize("options", [{}, ALTERNATING], ids=["joint", "alternating"])
def test_resume_after_interruption_reproduces_the_uninterrupted_run(tmp_path, monkeypatch, options):
    from bayesnas.methods.search import SearchRun

    config = functools.partial(_config, **options)
    full = run(config(), out=tmp_path / "full", progress=False)
    original = SearchRun.train_epoch

    def killed_in_epoch_3(self, progress):
        if self.epoch == 2:
            raise KeyboardInterrupt  # the process dies mid-run, after two checkpoints
        return original(self, progress)

    monkeypatch.setattr(SearchRun, "train_epoch", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        run(config(), out=tmp_path / "cut", progress=False)
    monkeypatch.setattr(SearchRun, "train_epoch", original)
    resumed = run(out=tmp_path / "cut", resume=True, progress=False)

    def rows(d):
        return [json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]

    assert [r["theta"] for r in rows("full")] == [r["theta"] for r in rows("cut")]
    assert [r["train_loss"] for r in rows("full")] == [r["train_loss"] for r in rows("cut")]
    assert full == resumed


def test_run_writes_every_artifact(tmp_path):
    out = tmp_path / "run"
    res = run(_config(epochs=1), out=out, progress=False)
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "architecture.json",
                 "posterior.json", "results.json"):
        assert (out / name).exists(), name
    arch = json.loads((out / "architecture.json").read_text())
    assert set(arch) == {"layers"} and len(arch["layers"]) == 3
    assert 0.0 <= res["test_error_deterministic"] <= 1.0
    assert 0.0 <= res["test_error_stochastic"] <= 1.0


@pytest.mark.parametrize("method", ["fixed", "stochastic"])
def test_baselines_run(tmp_path, method):
    res = run(_config(epochs=1, method=method, num_samples=1), out=tmp_path / method,
                     progress=False)
    assert 0.0 <= res["test_error_deterministic"] <= 1.0


@pytest.mark.parametrize("argv, message", [
    (["search", "nope", "--out", "X"],
     "Unknown search space 'nope'. Known spaces: activation-select, densenet-connections, enas-cells, "
     "input-groups, layer-skip"),
    (["search", "layer-skip", "--out", "X", "--dataset", "foo"], "Unknown dataset 'foo'"),
    (["search", "layer-skip", "--out", "X", "--lam", "1"], "λ >= 2 samples, but got num_samples=1"),
    (["search", "layer-skip", "--out", "X", "--theta-init", "1.5"], "theta_init=1.5"),
    (["search", "layer-skip", "--out", "X", "--dataset", "cifar10", "--data-dir", "{tmp}"],
     "is not available under"),
    (["search", "layer-skip", "--out", "X", "--resume", "{tmp}/missing"], "config.json"),
    (["search", "layer-skip", "--out", "X", "--clip-norm", "5"],
     "`clip_norm` is applied by the alternating search; set alternate=True or clip_norm=None "
     "(got clip_norm=5.0)"),
    (["search", "layer-skip", "--out", "X", "--alternate", "--method", "fixed"],
     "it needs method='search' and same_batch=True, but got method='fixed', same_batch=True"),
    (["search", "layer-skip", "--out", "X", "--dataset", "digits", "--cutout", "4"],
     "`cutout` needs image inputs, but the space 'layer-skip' takes flattened vectors (got cutout=4)"),
    (["search", "activation-select", "--out", "X", "--dataset", "digits", "--penalty", "0.01"],
     "`penalty` needs a space that defines complexity_costs(), but the space 'activation-select'"),
])
def test_cli_bad_input_states_the_rule_and_the_value(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)).replace("X", str(tmp_path / "o")) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_different_minibatch_variant_runs_end_to_end(tmp_path):
    res = run(_config(epochs=1, same_batch=False, num_samples=4), out=tmp_path / "b",
                     progress=False)
    assert 0.0 <= res["test_error_deterministic"] <= 1.0


def test_cli_resume_needs_no_out_and_continues(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["search", "layer-skip", "--dataset", "digits", "--epochs", "1", "--depth", "4",
            "--width", "8", "--stochastic-samples", "2", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    assert main(["search", "layer-skip", "--resume", str(out), "--no-progress"]) == 0
    assert "results written to" in capsys.readouterr().out
    assert main(["search", "layer-skip", "--no-progress"]) == 2
    assert "--out RUN_DIR` is required" in capsys.readouterr().err


def test_existing_run_is_not_overwritten(tmp_path):
    run(_config(epochs=1), out=tmp_path / "r", progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        run(_config(epochs=1), out=tmp_path / "r", progress=False)


def test_cli_passes_any_space_option(tmp_path, capsys):
    argv = ["search", "unit-select", "--dataset", "digits", "--epochs", "1", "--depth", "2",
            "--width", "8", "--method", "fixed", "--option", "dropout=0.5", "--stochastic-samples", "2",
            "--no-progress", "--out", str(tmp_path / "d")]
    assert main(argv) == 0
    saved = json.loads((tmp_path / "d" / "config.json").read_text())
    assert saved["space_options"] == {"depth": 2, "width": 8, "dropout": 0.5}
    argv[-1] = str(tmp_path / "e")
    assert main([*argv[:-2], "--option", "nope=1", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "cannot be built with the options" in err and "nope" in err and "Traceback" not in err
    assert main([*argv[:-2], "--option", "dropout", "--out", str(tmp_path / "f")]) == 2
    assert "takes KEY=VALUE, but got 'dropout'" in capsys.readouterr().err
