"""Data-parallel search on torch.distributed (Gloo, 2 CPU processes): one θ for all ranks, the
same run as one process with the whole global batch, and resume with another process count."""

import dataclasses
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from bayesnas.distributed import Context
from bayesnas.runner import SearchConfig, SearchRun, run_search


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(**changes):
    base = dict(space="layer-skip", dataset="digits", epochs=2, batch_size=32, num_samples=2,
                space_options={"depth": 4, "width": 16}, stochastic_samples=4, bn_recalibration_batches=2)
    base.update(changes)
    return SearchConfig(**base)


def _traced_run(config: SearchConfig, out: Path, kill_after: int | None = None) -> dict:
    """A SearchRun whose every step records θ; with ``kill_after``, stopped (as a crash) before
    that epoch's successor starts, after its checkpoint. Returns θ per step and the weights."""
    torch.set_num_threads(1)
    run = SearchRun(config, out)
    thetas = []
    step = run.search.step

    def traced(*args, **kwargs):
        metrics = step(*args, **kwargs)
        thetas.append(torch.cat([t.detach().reshape(-1).clone() for t in run.guide.thetas]))
        return metrics

    run.search.step = traced
    if kill_after is not None:
        train_epoch = run.train_epoch

        def train_until(progress):
            if run.epoch >= kill_after:
                raise KeyboardInterrupt
            return train_epoch(progress)

        run.train_epoch = train_until
    try:
        run.run(progress=False)
    except KeyboardInterrupt:
        pass
    weights = {k: v.clone() for k, v in run.model.state_dict().items()}
    return {"thetas": torch.stack(thetas), "weights": weights, "rank": run.dist.rank,
            "world": run.dist.world_size, "steps_per_epoch": run.steps_per_epoch}


def _worker(rank: int, world: int, port: int, config: SearchConfig, out: str, kill_after) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")
    record = _traced_run(config, Path(out), kill_after)
    torch.save(record, Path(out) / f"trace_rank{rank}.pt")
    torch.distributed.destroy_process_group()


def _launch(world: int, config: SearchConfig, out: Path, kill_after=None) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    mp.spawn(_worker, args=(world, _free_port(), config, str(out), kill_after), nprocs=world, join=True)
    return [torch.load(out / f"trace_rank{r}.pt", weights_only=False) for r in range(world)]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "two"
    return out, _launch(2, _config(), out)


def test_theta_is_identical_on_every_rank_after_every_step(two_process_run):
    _, (r0, r1) = two_process_run
    assert (r0["rank"], r0["world"], r1["rank"]) == (0, 2, 1)
    assert len(r0["thetas"]) == 2 * r0["steps_per_epoch"] > 20  # 2 epochs of global batches of 32
    assert torch.equal(r0["thetas"], r1["thetas"])  # bit for bit, step by step
    for k in r0["weights"]:
        assert torch.equal(r0["weights"][k], r1["weights"][k]), k  # DDP keeps the weights in step


def test_two_processes_with_batch_n_equal_one_process_with_batch_2n(two_process_run, tmp_path):
    out, (r0, _) = two_process_run
    one = _traced_run(_config(), tmp_path / "one")
    assert one["world"] == 1
    torch.testing.assert_close(r0["thetas"], one["thetas"], rtol=0, atol=1e-6)
    for k, v in one["weights"].items():
        torch.testing.assert_close(r0["weights"][k], v, rtol=1e-4, atol=1e-5)
    # Rank 0 alone wrote the run's files, as one process does.
    written = {p.name for p in out.iterdir()}
    assert written >= {"config.json", "metrics.jsonl", "checkpoint.pt", "results.json"}
    assert (out / "metrics.jsonl").read_text().count("\n") == 2


def test_a_two_process_checkpoint_resumes_in_one_process(tmp_path):
    config = _config()
    killed = tmp_path / "killed"
    _launch(2, config, killed, kill_after=1)
    assert not (killed / "results.json").exists() and (killed / "checkpoint.pt").exists()
    resumed = run_search(out=killed, resume=True, progress=False)
    whole = run_search(dataclasses.replace(config), out=tmp_path / "whole", progress=False)
    assert resumed["test_error_deterministic"] == pytest.approx(whole["test_error_deterministic"], abs=1e-9)
    a = torch.load(killed / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    for t, u in zip(a["guide"].values(), b["guide"].values(), strict=True):
        torch.testing.assert_close(t, u, rtol=0, atol=1e-6)


def test_a_global_batch_is_split_evenly_or_refused():
    ctx = Context(rank=1, world_size=2)
    x = torch.arange(8)
    assert ctx.shard(x)[0].tolist() == [4, 5, 6, 7]
    with pytest.raises(ValueError, match="must be a multiple of the number of processes, but got "
                                         "batch_size=7 with 2 processes"):
        ctx.shard(torch.arange(7))
    assert Context().shard(x)[0] is x and Context().mean(x) is x
