"""One training loop for the weights and the architecture distribution."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from bayesnas.handlers import seeded_arch


class ArchitectureSearch:
    """``step(*batch)`` trains W and θ together, in the spirit of ``pyro.infer.SVI``.

    Each step samples λ architectures from the guide (with the dedicated ``generator``),
    evaluates them on the batch in one pass, and updates the weights with ``weight_optimizer``
    (eq. 6) and θ with the natural-gradient ``arch_optimizers`` (eq. 9 / saito2018 eq. 7 /
    pdas2019 eq. 4), as in shirakawa2018 alg. 1.

    Args:
        model: the search space, a Pyro model with arch sites.
        guide: the distribution over arch sites.
        loss: an :class:`~bayesnas.infer.ExpectedLoss` or
            :class:`~bayesnas.infer.RankingNaturalGradientLoss`.
        weight_optimizer: a ``torch.optim.Optimizer`` over the model's weights only.
        arch_optimizers: natural-gradient optimizers over the guide's θ (empty: θ fixed).
        generator: the seeded ``torch.Generator`` architectures are drawn from.
    """

    def __init__(
        self,
        model: Callable[..., Any],
        guide: Callable[..., Any],
        loss: Any,
        *,
        weight_optimizer: torch.optim.Optimizer,
        arch_optimizers: Sequence[torch.optim.Optimizer] = (),
        generator: torch.Generator,
    ) -> None:
        self.model = model
        self.guide = guide
        self.loss = loss
        self.weight_optimizer = weight_optimizer
        self.arch_optimizers = list(arch_optimizers)
        self.generator = generator

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.weight_optimizer, *self.arch_optimizers]

    def step(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """One update of W and θ on one mini-batch; returns the loss metrics."""
        for opt in self._optimizers():
            opt.zero_grad(set_to_none=True)
        with seeded_arch(generator=self.generator):
            metrics = self.loss.loss_and_grads(self.model, self.guide, *args, **kwargs)
        for opt in self._optimizers():
            opt.step()
        return metrics
