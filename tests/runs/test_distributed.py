"""Data-parallel search on torch.distributed (Gloo, 2 CPU processes): one θ for all ranks, the
same run as one process with the whole global batch, and resume with another process count."""

import dataclasses
import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from bayesnas.methods import run
from bayesnas.methods.search import SearchConfig, SearchRun
from bayesnas.runs.distributed import Context


def _spawn(fn, args: tuple, *, world: int = 2, seconds: float = 300.0) -> None:
    """``mp.spawn`` of ``world`` processes that fails instead of hanging: a deadlocked collective
    (a rank that died writing to a full disk, say) ends the test after ``seconds``."""
    import time

    context = mp.spawn(fn, args=args, nprocs=world, join=False)
    deadline = time.monotonic() + seconds
    while not context.join(timeout=5):  # re-raises a rank's exception
        if time.monotonic() > deadline:
            for process in context.processes:
                process.terminate()
            pytest.fail(f"{world} processes did not finish within {seconds:g} s (a deadlock?).")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, world: int, port: int) -> None:
    """The environment torchrun gives process ``rank`` of ``world`` (one thread each)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)


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
    _join(rank, world, port)
    record = _traced_run(config, Path(out), kill_after)
    torch.save(record, Path(out) / f"trace_rank{rank}.pt")
    torch.distributed.destroy_process_group()


def _launch(world: int, config: SearchConfig, out: Path, kill_after=None) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    _spawn(_worker, (world, _free_port(), config, str(out), kill_after), world=world)
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
    resumed = run(out=killed, resume=True, progress=False)
    whole = run(dataclasses.replace(config), out=tmp_path / "whole", progress=False)
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


@pytest.mark.skipif(torch.cuda.device_count() > 1, reason="the node has a GPU for LOCAL_RANK=1")
def test_a_cuda_run_with_more_processes_than_gpus_is_refused_with_the_rule(monkeypatch):
    from bayesnas.runs.distributed import setup

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    gpus = torch.cuda.device_count()
    with pytest.raises(ValueError, match=rf"LOCAL_RANK=1 and the node has {gpus} CUDA device\(s\): start "
                                           rf"at most {gpus} processes per node"):
        setup("cuda")


# -- the categorical, variational and NES families, at the level of their search drivers ------------

def _toy_batches(steps: int, size: int, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(steps * size, 4, generator=g)
    y = (x @ torch.randn(4, 3, generator=g)).argmax(-1)
    return [(x[i * size : (i + 1) * size], y[i * size : (i + 1) * size]) for i in range(steps)]


class _CategoricalToy(torch.nn.Module):
    """One categorical site picks one of three linear classifiers."""

    def __init__(self):
        super().__init__()
        self.ops = torch.nn.ModuleList([torch.nn.Linear(4, 3) for _ in range(3)])

    def forward(self, x, y=None):
        from bayesnas import sites

        choice = sites.categorical("op", 3)
        logits = torch.stack([self.ops[int(c)](x) for c in choice.reshape(-1)])
        sites.classification_likelihood(logits, None if y is None else y.expand(len(logits), -1))
        return logits


def _family_trajectory(family: str, ctx: Context) -> dict:
    """Eight steps of the family's driver on global batches of 16, sharded by ``ctx``; the
    distribution's parameters after every step and the final weights."""
    torch.manual_seed(0)
    batches = [ctx.shard(x, y) for x, y in _toy_batches(8, 16)]
    trace = []
    if family == "categorical":
        from bayesnas.guides import CategoricalGuide
        from bayesnas.infer import ArchitectureSearch, RankingNaturalGradientLoss
        from bayesnas.sites import discover_sites

        model = _CategoricalToy()
        guide = CategoricalGuide(discover_sites(model, batches[0][0]))
        search = ArchitectureSearch(ctx.wrap(model, torch.device("cpu")), guide,
                                    RankingNaturalGradientLoss(num_samples=4, reduce=ctx.mean),
                                    weight_optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                                    arch_optimizers=guide.make_optimizers(lr=0.2, theta_min=0.05),
                                    generator=torch.Generator().manual_seed(0))
        for x, y in batches:
            search.step(x, y)
            trace.append(torch.cat([t.detach().reshape(-1).clone() for t in guide.thetas]))
        weights = model.state_dict()
    elif family == "nes":  # a tiny weight-sharing ResNet on 8×8 images, channels searched
        from bayesnas.guides import GaussianGuide
        from bayesnas.infer import NESArchitectureSearch, NESLoss
        from bayesnas.models.width_space import WidthSearchSpace
        from bayesnas.nn.width_backbones import ResNetSupernet
        from bayesnas.sites import discover_sites

        g = torch.Generator().manual_seed(5)
        images = [ctx.shard(torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 3, (16,), generator=g))
                  for _ in range(8)]
        space = WidthSearchSpace(ResNetSupernet(in_channels=1, num_classes=3, width_mult=0.25, resolution=8))
        guide = GaussianGuide(discover_sites(space, images[0][0]))
        search = NESArchitectureSearch(space, guide, NESLoss(num_samples=4, reduce=ctx.mean),
                                       weight_optimizer=torch.optim.SGD(space.parameters(), lr=0.1),
                                       arch_optimizer=guide.make_optimizers()[0],
                                       generator=torch.Generator().manual_seed(0), total_arch_steps=8,
                                       grad_reduce=ctx.average_gradients)
        for x, y in images:
            search.weight_step((x, y))
            search.arch_step((x, y))
            trace.append(torch.cat([t.detach().reshape(-1).clone() for t in guide.thetas]))
        weights = space.state_dict()
    else:  # variational: the toy supergraph of test_variational, weights sampled (no LRT noise)
        from tests.infer.test_variational import make_search

        search = make_search(0, lrt=False, warmup_epochs=0, grad_reduce=ctx.average_gradients)
        for s, (x, y) in enumerate(batches):
            search.step((x, y), (x, y), epoch=s // 2)
            trace.append(torch.cat([p.detach().reshape(-1).clone() for p in search.arch_parameters]))
        weights = {str(i): p.detach().clone() for i, p in enumerate(search.weight_parameters)}
    return {"trace": torch.stack(trace), "weights": {k: v.clone() for k, v in weights.items()}}


def _family_worker(rank: int, world: int, port: int, family: str, out: str) -> None:
    _join(rank, world, port)
    from bayesnas.runs.distributed import setup

    ctx = setup("cpu")
    torch.save(_family_trajectory(family, ctx), Path(out) / f"{family}_rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.parametrize("family", ["categorical", "variational", "nes"])
def test_family_in_two_processes_is_one_process_with_the_global_batch(family, tmp_path):
    """Every family keeps its distribution identical on every rank; the categorical and the
    variational ones (no BatchNorm) also follow the one-process run on the global batch. The
    NES backbone's BatchNorm normalises by each rank's shard (no SyncBatchNorm on the CPU), so
    there only the ranks' agreement is exact."""
    _spawn(_family_worker, (2, _free_port(), family, str(tmp_path)))
    r0, r1 = (torch.load(tmp_path / f"{family}_rank{r}.pt", weights_only=False) for r in range(2))
    assert torch.equal(r0["trace"], r1["trace"])  # θ / q(α): bit-identical on both ranks, every step
    for k in r0["weights"]:
        assert torch.equal(r0["weights"][k], r1["weights"][k]), k
    if family == "nes":
        return  # its BatchNorm normalises each rank's shard: one process differs (see the note below)
    one = _family_trajectory(family, Context())
    assert not torch.equal(one["trace"][0], one["trace"][-1])  # the distribution moved
    torch.testing.assert_close(r0["trace"], one["trace"], rtol=1e-5, atol=1e-6)
    for k, v in one["weights"].items():
        torch.testing.assert_close(r0["weights"][k], v, rtol=1e-5, atol=1e-6)


def _run_worker(rank: int, world: int, port: int, driver: str, out: str, record: str) -> None:
    """A whole NES or VINNAS run (the tiny configs of their tests) on one rank."""
    _join(rank, world, port)
    if driver == "nes":
        from tests.methods.test_nes_run import _config as config
    else:
        from tests.methods.test_vinnas_run import _config as config
    torch.save(run(config(), out=out, progress=False), Path(record) / f"{driver}_rank{rank}.pt")
    torch.distributed.destroy_process_group()


def _run_driver(driver: str, tmp_path: Path) -> tuple[Path, dict, dict]:
    out, record = tmp_path / "run", tmp_path / "record"
    record.mkdir()
    _spawn(_run_worker, (2, _free_port(), driver, str(out), str(record)))
    r0, r1 = (torch.load(record / f"{driver}_rank{r}.pt", weights_only=False) for r in range(2))
    return out, r0, r1


def test_a_nes_run_under_two_processes_agrees_on_every_rank_and_writes_once(tmp_path):
    """A NES run launched as torchrun would: one architecture and one set of results on both
    ranks, the run directory written by rank 0 alone."""
    out, r0, r1 = _run_driver("nes", tmp_path)
    assert r0["searched"]["hparams"] == r1["searched"]["hparams"]
    assert r0["searched"]["test_error"] == r1["searched"]["test_error"]
    assert r0["uniform"]["channel"]["test_error"] == r1["uniform"]["channel"]["test_error"]
    assert json.loads((out / "results.json").read_text())["searched"]["hparams"] == r0["searched"]["hparams"]
    rows = (out / "search" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 3  # one writer: one row per outer iteration


def test_a_vinnas_run_under_two_processes_agrees_on_every_rank_and_writes_once(tmp_path):
    out, r0, r1 = _run_driver("vinnas", tmp_path)
    assert r0 == r1  # the same q(α), genotypes, re-trained networks and scores on both ranks
    assert (out / "genotype_snr.json").exists() and (out / "results.json").exists()
    rows = (out / "search" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 3  # one writer: one row per epoch
