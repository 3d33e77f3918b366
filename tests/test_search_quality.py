"""The search-quality harness's arithmetic (experiments/search_quality.py), on hand-made tables:
marginal benefits of bits and of ops, random search at a given k over a table's sample, draws from
a frozen θ, the anytime points, and the equal-compute unit."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from bayesnas.bench import Table

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "search_quality.py"


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("search_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(errors):
    """Two bits; ``errors[bits]`` the test error, validation = test + 0.01 on seed 0, + 0.02 on seed 1."""
    entries = [{"architecture": {"b": list(bits)}, "test_error": e, "test_errors": [e, e],
                "val_errors": [e + 0.01, e + 0.02], "val_error": e + 0.015}
               for bits, e in errors.items()]
    protocol = {"dataset": "digits", "epochs": 3, "batch_size": 64, "val_fraction": 0.1}
    return Table({"protocol": protocol}, entries)


def test_bit_benefits_are_the_mean_error_without_the_bit_minus_with_it(harness):
    table = _table({(0, 0): 0.4, (0, 1): 0.3, (1, 0): 0.2, (1, 1): 0.1})
    # bit 0: off (0.4 + 0.3) / 2 − on (0.2 + 0.1) / 2 = 0.2; bit 1: (0.4 + 0.2) / 2 − (0.3 + 0.1) / 2 = 0.1
    assert harness.choice_benefits(table, "b", (1,)) == pytest.approx([0.2, 0.1])
    assert harness.kendall_tau([0.9, 0.6], [0.2, 0.1]) == pytest.approx(1.0)
    assert harness.kendall_tau([0.6, 0.9], [0.2, 0.1]) == pytest.approx(-1.0)


def test_op_benefits_are_per_edge_and_op_and_skip_appended_entries(harness):
    # One edge of three ops: errors 0.6 (op 0), 0.2 and 0.1 (op 1), 0.3 (op 2); an appended op-0
    # entry at 0.0 must not count.
    rows = {((0,),): 0.6, ((1,), 0): 0.2, ((1,), 1): 0.1, ((2,),): 0.3}
    entries = [{"architecture": {"e": list(k[0])}, "test_error": e} for k, e in rows.items()]
    entries.append({"architecture": {"e": [0]}, "test_error": 0.0, "appended": True})
    table = Table({}, entries)
    # op 0: others (0.2 + 0.1 + 0.3) / 3 − 0.6 = −0.4; op 1: (0.6 + 0.3) / 2 − 0.15 = 0.3; op 2: 0.3 − 0.3 = 0
    assert harness.choice_benefits(table, "e", range(3)) == pytest.approx([-0.4, 0.3, 0.0])
    assert harness.posterior_probabilities([[0.2, 0.5, 0.3]]) == ([0.2, 0.5, 0.3], range(3))
    assert harness.posterior_probabilities([0.9, 0.1]) == ([0.9, 0.1], (1,))


def test_a_draw_from_a_frozen_categorical_theta_follows_it(harness):
    from bayesnas.guides import CategoricalGuide
    from bayesnas.sites import SiteSpec

    spec = SiteSpec("e", "categorical", (2,), num_categories=3)
    guide = CategoricalGuide([spec], init={"e": [[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]})
    g = torch.Generator().manual_seed(0)
    draws = [harness._draw(guide, g)["e"] for _ in range(200)]
    assert all(d[0] == 1 and d[1] in (0, 2) for d in draws)
    assert 60 < sum(d[1] == 0 for d in draws) < 140


def test_anytime_points_are_evenly_spaced_with_both_ends(harness):
    assert harness._spaced(list(range(41)), 11) == list(range(0, 41, 4))
    assert harness._spaced([1, 2, 3], 11) == [1, 2, 3]


def test_random_search_keeps_the_best_by_validation_so_far_and_repeats_per_seed(harness):
    table = _table({(0, 0): 0.4, (0, 1): 0.3, (1, 0): 0.2, (1, 1): 0.1})
    picks = harness.random_search(table, k=20, seed=3)
    assert len(picks) == 20 and picks == harness.random_search(table, k=20, seed=3)
    val = [p["val_errors"][3 % 2] for p in picks]
    assert all(a >= b for a, b in zip(val, val[1:], strict=False))  # best so far never worsens
    assert picks[-1]["architecture"] == {"b": [1, 1]}  # 20 draws of 4 find the best


def test_one_table_entry_costs_its_epochs_times_the_full_batches_of_training_images(harness):
    # digits: 1,295 training images at val_fraction 0.1; 20 full batches of 64 per epoch.
    assert harness.entry_compute(_table({(0, 0): 0.5})) == 3 * 20 * 64


def _smoke(harness, tmp_path, *tables):
    argv = ["--smoke", "--seeds", "1", "--jobs", "1", "--no-progress", "--out", str(tmp_path / "runs"),
            "--tables", *tables]
    assert harness.main(argv) == 0
    return json.loads((tmp_path / "runs" / "results" / "summary.json").read_text())["tables"]


def test_nes_on_the_integer_table_is_judged_against_the_best_within_the_budget(harness, tmp_path):
    (summary,) = _smoke(harness, tmp_path, "tiny-resnet-widths")
    table = Table.named("tiny-resnet-widths")
    base = table.entry({"stem.out": 8, "stage1.out": 16, "stage1.block1.mid": 8})
    assert summary["target_macs"] == pytest.approx(0.5 * base["macs"])
    feasible = [e for e in table.sample if abs(e["macs"] / summary["target_macs"] - 1) <= 0.05]
    assert summary["entries"] == len(feasible) >= 3
    assert summary["best_test_error"] == min(e["test_error"] for e in feasible)
    methods = summary["methods"]
    assert {harness.NES, harness.NES_FROZEN, harness.START} <= set(methods)
    assert any(m.startswith(harness.RANDOM) for m in methods)
    # The baselines draw from the architectures within the budget only.
    for label in [harness.NES_FROZEN, *(m for m in methods if m.startswith(harness.RANDOM))]:
        for run in methods[label]["runs"]:
            assert abs(table.entry(run["architecture"])["macs"] / summary["target_macs"] - 1) <= 0.05
    # The start is the base scaled uniformly to the MACs closest to the budget (on this coarse grid
    # 15 % over it, and said so).
    (start,) = methods[harness.START]["runs"]
    assert start["architecture"] == {"stem.out": 6, "stage1.out": 12, "stage1.block1.mid": 6}
    assert start["within_budget"] is False and start["macs_ratio"] == pytest.approx(35832 / 31056)
    nes = methods[harness.NES]
    assert nes["search"] and nes["vs_random"]["k"] >= 1 and len(nes["runs"][0]["anytime"]) == 3


@pytest.mark.slow
def test_a_smoke_run_on_the_sampled_cell_table_leaves_the_committed_table_alone(harness, tmp_path):
    before = Table.named("nb201-cell").entries
    (summary,) = _smoke(harness, tmp_path, "nb201-cell")
    assert Table.named("nb201-cell").entries == before
    methods = summary["methods"]
    assert summary["entries"] == 500 and methods[harness.START]["percentile"][0] == 1.0  # all none: chance
    assert all(-1 <= m["tau"][0] <= 1 for m in methods.values() if "tau" in m)
