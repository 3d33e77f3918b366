"""Data-parallel search on ``torch.distributed``, with one architecture distribution for all ranks.

Launched by ``torchrun --nproc_per_node=P`` (or any launcher that sets ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``), a run is one process per device:

* the **weights** are wrapped in :class:`torch.nn.parallel.DistributedDataParallel`, so their
  gradients are averaged over the ranks during the backward pass;
* every **mini-batch** is one global batch of ``batch_size`` examples drawn from the seeded
  order every rank computes alike; rank r takes its contiguous ``batch_size / P`` rows
  (:func:`Context.shard`) — the partition of each global batch that ``DistributedSampler``
  makes, chosen so that P processes see exactly the batches one process would;
* the **architectures** are drawn from the seeded generator every rank holds
  (:func:`bayesnas.handlers.seeded_arch`), so the λ samples are the same on every rank;
* the **per-architecture losses** of a rank's shard are averaged over the ranks
  (:meth:`Context.mean`, an all-reduce) before they are ranked, so every rank computes the
  same utilities and takes the same natural-gradient step: θ (and a variational guide's
  parameters, and the NES mean) stay bit-identical on every rank after every step.

Only rank 0 writes files (logs, checkpoints, results), atomically; a checkpoint holds the
unwrapped weights and the global state only, so a run resumes with another number of
processes. Backend: NCCL with CUDA, Gloo on the CPU (:func:`setup`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["Context", "setup", "setup_run", "single_process"]


@dataclass(frozen=True)
class Context:
    """Where this process stands in a run: its rank among ``world_size`` processes."""

    rank: int = 0
    world_size: int = 1
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard_size(self, batch_size: int) -> int:
        """The rows of a global batch of ``batch_size`` this rank takes (the same on every rank)."""
        if batch_size % self.world_size:
            raise ValueError(f"The global `batch_size` must be a multiple of the number of processes, "
                             f"but got batch_size={batch_size} with {self.world_size} processes.")
        return batch_size // self.world_size

    def shard(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """This rank's contiguous share of each tensor's first dimension (a global batch)."""
        if not self.distributed:
            return tensors
        out = []
        for t in tensors:
            n = self.shard_size(t.shape[0])
            out.append(t[self.rank * n : (self.rank + 1) * n])
        return tuple(out)

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of ``value`` over the ranks (every rank gets the same tensor); ``value``
        itself in one process. Used on losses before they are ranked."""
        if not self.distributed:
            return value
        total = value.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total / self.world_size

    def average_gradients(self, params: Iterable[torch.Tensor]) -> None:
        """Replace each gradient by its mean over the ranks (one all-reduce of one flat
        buffer), what DDP does during the backward pass; for parameters that live outside a
        module's forward, e.g. a guide's (variational weights, op strengths α)."""
        if not self.distributed:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def wrap(self, module: torch.nn.Module, device: torch.device) -> Any:
        """``module`` in :class:`~torch.nn.parallel.DistributedDataParallel` (itself in one
        process). Unused parameters are expected: a sampled architecture skips layers."""
        if not self.distributed:
            return module
        ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)


def single_process() -> Context:
    return Context()


def setup(device: str | torch.device = "cpu") -> Context:
    """The process group of a ``torchrun`` launch, initialised once (NCCL for a CUDA device,
    Gloo otherwise), or a one-process context when no launcher set ``WORLD_SIZE`` > 1. On CUDA
    each process takes the GPU of its ``LOCAL_RANK``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return single_process()
    cuda = torch.device(device).type == "cuda"
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        if cuda:
            local_rank, gpus = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
            if local_rank >= gpus:
                # NCCL takes one GPU per process; two ranks on one GPU fail inside NCCL.
                raise ValueError(  # a launch setting: the CLI reports it in one line
                    f"A CUDA run takes one GPU per process on each node, but this process has "
                    f"LOCAL_RANK={local_rank} and the node has {gpus} CUDA device(s): start at most "
                    f"{gpus} processes per node (torchrun --nproc_per_node={max(gpus, 1)}), or run on the "
                    "CPU (--device cpu, Gloo).")
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return Context(rank=dist.get_rank(), world_size=dist.get_world_size(), backend=dist.get_backend())


def setup_run(device: str, batch_sizes: Iterable[int] = ()) -> tuple[Context, torch.device]:
    """A run driver's start: its :class:`Context` (:func:`setup`) and the device it computes on
    (on CUDA, this rank's GPU); every global batch size in ``batch_sizes`` must split evenly over
    the processes (a ValueError states the rule and the values otherwise)."""
    ctx = setup(device)
    dev = torch.device(device)
    if ctx.distributed and dev.type == "cuda":
        dev = torch.device("cuda", torch.cuda.current_device())
    for size in batch_sizes:
        ctx.shard_size(size)
    return ctx, dev
