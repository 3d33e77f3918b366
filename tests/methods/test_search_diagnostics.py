"""A search's diagnostics (results.json, a warning, the report's first section) on two real
failures: a unit-select posterior that never moves, and layers chosen while every sampled
network is at chance."""

import json
import math

import pytest

from bayesnas.analysis.diagnostics import DiagnosticWarning
from bayesnas.analysis.report import write_report
from bayesnas.cli import main
from bayesnas.methods import run
from bayesnas.methods.search import SearchConfig


def _search(tmp_path, **kw):
    base = dict(dataset="digits", epochs=1, seed=0, stochastic_samples=2)
    return run(SearchConfig(**{**base, **kw}), out=tmp_path / "run", progress=False)


def test_an_unmoved_unit_select_posterior_is_flagged_warned_and_reported_first(tmp_path):
    """saito2018's unit selection at η = 1/d: after an epoch the 64 bits' entropy is still
    ~99.8 % of ln 2 each, and the credible set is one big tie."""
    with pytest.warns(DiagnosticWarning, match="posterior_unmoved"):
        results = _search(tmp_path, space="unit-select", batch_size=64,
                          space_options={"depth": 2, "width": 32})
    d = results["diagnostics"]
    assert "posterior_unmoved" in d["fired"] and "credible_set_ties" in d["fired"]
    assert d["checks"]["posterior_unmoved"]["initial_entropy"] == pytest.approx(64 * math.log(2), rel=1e-5)
    assert d["checks"]["posterior_unmoved"]["entropy_kept"] >= 0.95
    md = write_report(tmp_path / "run")["md"].read_text()
    assert md.index("## Diagnostics") < md.index("## Test metrics")
    assert "Warning: posterior_unmoved: The posterior did not move" in md


def test_layers_chosen_while_every_network_is_at_chance_are_flagged_and_printed_last(tmp_path, capsys):
    """The weights barely train (lr 1e-6) while θ takes full steps: θ decides on noise. The
    command line prints each fired check as one line after the results."""
    assert main(["search", "layer-skip", "--dataset", "digits", "--epochs", "1", "--batch-size", "32",
                 "--lr", "1e-6", "--theta-lr", "1.0", "--theta-min", "0.05", "--depth", "8", "--width", "16",
                 "--stochastic-samples", "2", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "bayesnas: warning: decided_at_chance: The posterior was decided" in err
    assert "DiagnosticWarning" not in err  # one plain line each, not Python's warning format
    d = json.loads((tmp_path / "run" / "results.json").read_text())["diagnostics"]
    assert "decided_at_chance" in d["fired"] and "posterior_unmoved" not in d["fired"]
    check = d["checks"]["decided_at_chance"]
    assert check["loss"] >= 0.95 * math.log(10) and check["entropy_gone"] >= 0.5
    assert "at_clip_bound" in d["fired"]  # θ went straight to its bounds
    assert d["checks"]["at_clip_bound"]["clipped"] > 0


def test_a_baseline_with_theta_held_fixed_has_no_diagnostics(tmp_path):
    results = _search(tmp_path, space="layer-skip", method="stochastic", batch_size=32,
                      space_options={"depth": 3, "width": 8})
    assert results["diagnostics"] is None
    md = write_report(tmp_path / "run")["md"].read_text()
    assert "None: a 'stochastic' run holds θ fixed" in md
