"""Studies run side by side in processes give the runs they give one after another."""

import dataclasses
import json

import pytest
import torch

from bayesnas.methods.search import SearchConfig
from bayesnas.methods.study import Arm, available_cpus, run_study


def _arms():
    base = SearchConfig(space="layer-skip", dataset="digits", epochs=1, batch_size=32,
                        stochastic_samples=2, space_options={"depth": 4, "width": 8})
    fixed = dataclasses.replace(base, method="fixed", num_samples=1)
    return [Arm("λ=2", base), Arm("fixed", fixed)]


def test_parallel_study_repeats_the_sequential_one_exactly(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, available_cpus() // 2))  # as each worker of jobs=2 has
    try:
        serial = run_study(_arms(), seeds=[0, 1], out=tmp_path / "serial", progress=False)
    finally:
        torch.set_num_threads(threads)
    parallel = run_study(_arms(), seeds=[0, 1], out=tmp_path / "parallel", progress=False, jobs=2)
    assert list(serial) == list(parallel) == ["λ=2", "fixed"]
    for label in serial:
        for a, b in zip(serial[label], parallel[label], strict=True):
            assert a.relative_to(tmp_path / "serial") == b.relative_to(tmp_path / "parallel")
            ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
            pa, pb = (json.loads((d / "posterior.json").read_text()) for d in (a, b))
            assert pa == pb  # the same thread count: the same numbers, bit for bit
            assert ra["test_error_deterministic"] == rb["test_error_deterministic"]


# 20-35 s: kept out of the default suite (10 min on 2 cores), run by `make test-slow`.
@pytest.mark.slow
def test_run_all_runs_any_importable_task_in_processes_and_keeps_the_order(tmp_path):
    """VINNAS seeds through ``run_all(task=run_vinnas_resumably)``: two processes give the
    results of one after another (same thread count), in the order of the runs; a second call
    reads the finished runs back."""
    from bayesnas.methods.study import run_all
    from bayesnas.methods.vinnas import VinnasConfig, run_vinnas_resumably

    def runs(root):
        base = VinnasConfig(dataset="digits", channels=2, epochs=2, warmup_epochs=1, batch_size=16,
                            retrain_epochs=1, max_train_images=128, test_images=64, random_architectures=0,
                            eval_batch_size=64)
        return [(dataclasses.replace(base, seed=s), root / f"seed{s}") for s in (1, 0)]

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, available_cpus() // 2))
    try:
        serial = run_all(runs(tmp_path / "serial"), progress=False, task=run_vinnas_resumably)
    finally:
        torch.set_num_threads(threads)
    parallel = run_all(runs(tmp_path / "parallel"), jobs=2, progress=False, task=run_vinnas_resumably)
    assert [r["seed"] for r in serial] == [r["seed"] for r in parallel] == [1, 0]
    for a, b in zip(serial, parallel, strict=True):
        assert a["snr"]["genotype"] == b["snr"]["genotype"]
        assert a["snr"]["test_error"] == b["snr"]["test_error"]
    again = run_all(runs(tmp_path / "parallel"), progress=False, task=run_vinnas_resumably)
    assert again == parallel


def test_jobs_must_be_a_positive_integer(tmp_path):
    with pytest.raises(ValueError, match="`jobs` must be an integer >= 1, but got jobs=0"):
        run_study(_arms(), seeds=[0], out=tmp_path, jobs=0)


def test_gap_and_standard_error_closed_form():
    from bayesnas.methods.study import gap_and_standard_error

    gap, se = gap_and_standard_error([3.0, 5.0], [1.0, 2.0, 3.0])
    # means 4 and 2; sample variances 2 and 1: se = sqrt(2/2 + 1/3)
    assert gap == 2.0 and abs(se - (1 + 1 / 3) ** 0.5) < 1e-12
    gap, se = gap_and_standard_error([1.0], [0.0, 2.0])
    assert gap == 0.0 and se != se  # NaN: one seed has no spread to compare against


def test_a_claim_needs_a_gap_of_two_standard_errors():
    from bayesnas.methods.study import separated

    assert separated(2.0, 1.0) and not separated(1.9, 1.0) and not separated(1.0, float("nan"))
