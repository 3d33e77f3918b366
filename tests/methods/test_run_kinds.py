"""Every run directory says which method wrote it (``config.json["kind"]``); the registry,
the report and ``bayesnas resume`` dispatch on it, and older directories have it inferred."""

import json
from pathlib import Path

import pytest

from bayesnas.analysis.report import load_run, write_report
from bayesnas.cli import main
from bayesnas.methods import KINDS, method, run, run_resumably
from bayesnas.methods.search import SearchConfig, SearchRun
from bayesnas.runs import config_from_dict, run_kind

EXAMPLE_RUN = Path(__file__).resolve().parents[2] / "docs" / "example-run"


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_resolves_to_its_config_and_runner(kind):
    m = method(kind)
    assert m.config.kind == kind and m.runner.__name__.endswith("Run")


def test_an_unknown_kind_is_refused_by_name():
    with pytest.raises(ValueError, match="Unknown run kind 'benchmark'. Known kinds: search, retrain"):
        method("benchmark")


def test_config_json_carries_kind_and_version_and_reads_back(tmp_path):
    config = SearchConfig(space="layer-skip", dataset="digits", epochs=1, batch_size=64, stochastic_samples=2,
                          space_options={"depth": 4, "width": 8})
    run(config, out=tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["kind"] == "search" and saved["bayesnas_version"]
    assert config_from_dict(SearchConfig, saved) == config
    assert load_run(tmp_path / "run").kind == "search"
    with pytest.raises(ValueError, match="of a 'search' run, not of a 'nes' run"):
        config_from_dict(method("nes").config, saved)


@pytest.mark.parametrize("legacy, kind", [
    ({"space": "layer-skip", "method": "search"}, "search"),
    ({"genotype": {}, "normal_cells": 1}, "retrain"),
    ({"mask": "center", "search_iterations": 3}, "inpainting"),
    ({"layout": "M", "gamma_arch": 1.0}, "vinnas"),
    ({"backbone": "resnet", "budget": 0.5}, "nes"),
])
def test_the_kind_of_an_older_run_directory_is_inferred_in_one_place(legacy, kind):
    assert run_kind(legacy) == kind
    assert run_kind({**legacy, "kind": "other"}) == "other"  # a written kind always wins


def test_a_run_written_before_kind_still_reports(tmp_path):
    """The committed example run, its config.json as the versions before ``kind`` wrote it."""
    import shutil

    shutil.copytree(EXAMPLE_RUN, tmp_path / "example")
    config = json.loads((tmp_path / "example" / "config.json").read_text())
    legacy = {k: v for k, v in config.items() if k not in ("kind", "bayesnas_version")}
    (tmp_path / "example" / "config.json").write_text(json.dumps(legacy))
    paths = write_report(tmp_path / "example")
    assert "bayesnas run: layer-skip / search" in paths["md"].read_text()


def test_bayesnas_resume_continues_any_kind_from_its_directory(tmp_path, monkeypatch, capsys):
    config = SearchConfig(space="layer-skip", dataset="digits", epochs=3, batch_size=64, stochastic_samples=2,
                          space_options={"depth": 4, "width": 8})
    full = run(config, out=tmp_path / "full", progress=False)
    original = SearchRun.train_epoch

    def killed_in_epoch_2(self, progress):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return original(self, progress)

    monkeypatch.setattr(SearchRun, "train_epoch", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run(config, out=tmp_path / "cut", progress=False)
    monkeypatch.setattr(SearchRun, "train_epoch", original)
    assert main(["resume", str(tmp_path / "cut"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "cut" / "results.json").read_text()) == json.loads(
        (tmp_path / "full" / "results.json").read_text()) == json.loads(json.dumps(full))
    capsys.readouterr()
    assert main(["resume", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"bayesnas: error: {tmp_path / 'nothing'} holds no run to resume (no config.json)."


def test_a_study_refuses_a_directory_of_another_configuration(tmp_path):
    config = SearchConfig(space="layer-skip", dataset="digits", epochs=1, batch_size=64, stochastic_samples=2,
                          space_options={"depth": 4, "width": 8})
    first = run_resumably(config, tmp_path / "run")
    assert run_resumably(config, tmp_path / "run") == first  # read back, not run again
    other = SearchConfig(**{**config.to_dict(), "seed": 1})
    with pytest.raises(ValueError, match="holds a finished run with another configuration"):
        run_resumably(other, tmp_path / "run")
