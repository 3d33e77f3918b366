"""Training and evaluating a fixed network on in-memory tensors: the one pair every re-training
phase and every test error of the methods share."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["check_one_batch", "error_on_tensors", "train_epoch_on_tensors"]

Shard = Callable[..., tuple[torch.Tensor, ...]]


def check_one_batch(num_examples: int, batch_size: int, *, what: str = "retrain_batch_size") -> None:
    """Raise unless the training data hold at least one mini-batch (the option named ``what``)."""
    if num_examples < batch_size:
        raise ValueError(f"The training images ({num_examples}) must hold one mini-batch, but got "
                         f"{what}={batch_size}.")


def train_epoch_on_tensors(
    loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    order: torch.Tensor,
    batch_size: int,
    shard: Shard = lambda *t: t,
    after_backward: Callable[[], None] | None = None,
) -> float:
    """One epoch over the full mini-batches of ``(x, y)`` in ``order``: ``loss_of(x, y)``,
    backward, ``after_backward()`` (e.g. averaging gradients over processes), an optimizer
    step. ``shard`` gives each process its part of a global batch. Returns the mean loss."""
    losses = []
    for s in range(len(x) // batch_size):
        idx = order[s * batch_size : (s + 1) * batch_size]
        optimizer.zero_grad(set_to_none=True)
        xb, yb = shard(x[idx], y[idx])
        loss = loss_of(xb, yb)
        loss.backward()
        if after_backward is not None:
            after_backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return sum(losses) / len(losses)


@torch.no_grad()
def error_on_tensors(
    net: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """The classification error of ``net`` in eval mode on ``(x, y)``, through ``forward`` if
    given (e.g. a pruned Bayesian network's deterministic pass)."""
    net.eval()
    forward = net if forward is None else forward
    wrong = sum(int((forward(x[i : i + batch_size]).argmax(-1) != y[i : i + batch_size]).sum())
                for i in range(0, len(x), batch_size))
    return wrong / len(x)
