"""The search-quality harness's arithmetic (experiments/search_quality.py), on hand-made tables:
marginal benefits, random search at a given k, and the equal-compute unit."""

import importlib.util
from pathlib import Path

import pytest

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
    assert harness.bit_benefits(table, "b") == pytest.approx([0.2, 0.1])
    assert harness.kendall_tau([0.9, 0.6], [0.2, 0.1]) == pytest.approx(1.0)
    assert harness.kendall_tau([0.6, 0.9], [0.2, 0.1]) == pytest.approx(-1.0)


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
