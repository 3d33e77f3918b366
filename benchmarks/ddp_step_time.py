"""Search step time of P data-parallel processes vs one process, on the same global batch.

    python benchmarks/ddp_step_time.py [--processes 2] [--device cpu|cuda] [--space layer-skip]
        [--dataset digits] [--batch-size 64] [--steps 30]

Each variant runs the generic search (:class:`bayesnas.methods.search.SearchRun`, the Bernoulli family
of shirakawa2018 by default) for ``--steps`` steps after a warm-up of 5, on global mini-batches
of ``--batch-size``: one process with the whole batch, then P processes launched as torchrun
would (Gloo on the CPU, NCCL on CUDA), each with ``batch-size / P`` rows, the weights in DDP and
the λ losses all-reduced before ranking (:mod:`bayesnas.runs.distributed`). It prints the median
step time of each and their ratio. On a 2-core CPU the P processes share the cores, so no
speed-up is expected there (the issue sets no target); on P GPUs each process has its own.

Measured on this 2-core CPU (``OMP_NUM_THREADS=1``; layer-skip MLP): digits, global batch 64:
5.1 ms/step in one process vs 16.9 ms in two (3.3×: the step is tiny, the Gloo all-reduces
dominate); ``--dataset mnist5k --batch-size 256``: 11.3 vs 22.9 ms (2.0×). Not measured on
GPUs: ``--device cuda --processes P`` needs P GPUs on the machine (NCCL refuses two ranks on one
GPU, "Duplicate GPU detected"), and the machines this project is lent have one.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp


def _time_steps(config, out: str, steps: int) -> list[float]:
    from bayesnas.data.batches import batches
    from bayesnas.methods.search import SearchRun, _flat

    run = SearchRun(config, out)
    flat = run.space.flatten_input
    data = batches(run.data.train, batch_size=config.batch_size, seed=0, device=run.device, shuffle=True)
    times = []
    for i, (x, y) in enumerate(data):
        if i == steps + 5:
            break
        x, y = run.dist.shard(x, y)
        if run.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run.search.step(_flat(x, flat), y)
        if run.device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 5:
            times.append(time.perf_counter() - start)
    return times


def _worker(rank: int, world: int, port: int, config, out: str, steps: int, threads: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(threads)
    times = _time_steps(config, out, steps)
    torch.save(times, Path(out) / f"times{rank}.pt")
    torch.distributed.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--space", default="layer-skip")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    if torch.device(args.device).type == "cuda" and args.processes > torch.cuda.device_count():
        # NCCL takes one GPU per process (two ranks on one GPU fail inside NCCL).
        parser.error(f"--processes {args.processes} on CUDA needs {args.processes} GPUs, but this machine "
                     f"has {torch.cuda.device_count()}.")
    from bayesnas.methods.search import SearchConfig

    config = SearchConfig(space=args.space, dataset=args.dataset, batch_size=args.batch_size, epochs=1,
                          device=args.device)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        torch.set_num_threads(cores)
        single = _time_steps(config, str(Path(tmp) / "one"), args.steps)
        out = Path(tmp) / "many"
        out.mkdir()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        threads = max(1, cores // args.processes)
        mp.spawn(_worker, args=(args.processes, port, config, str(out), args.steps, threads),
                 nprocs=args.processes, join=True)
        many = [torch.load(out / f"times{r}.pt") for r in range(args.processes)]
    # A data-parallel step ends when its slowest process does.
    slowest = [max(ts) for ts in zip(*many, strict=True)]
    one, par = statistics.median(single), statistics.median(slowest)
    print(f"device {args.device}, torch {torch.__version__}, {cores} cores, space {args.space} on "
          f"{args.dataset}, global batch {args.batch_size}, median of {args.steps} steps")
    print(f"1 process ({cores} threads):{'':14s} {1e3 * one:8.1f} ms/step")
    print(f"{args.processes} processes ({threads} thread(s) each): {1e3 * par:8.1f} ms/step "
          f"(the slowest rank per step)")
    print(f"ratio {args.processes} processes / 1 process = {par / one:.2f}")


if __name__ == "__main__":
    main()
