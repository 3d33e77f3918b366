"""pdas2019 algorithm 1: the weights on one half of the data, θ on the other, alternately."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from pyro import poutine
from torch import nn

from bayesnas.handlers import seeded_arch
from bayesnas.infer.batchnorm import frozen_batchnorm_statistics
from bayesnas.infer.losses import RankingNaturalGradientLoss, arch_samples, per_architecture_loss
from bayesnas.infer.search import ArchitectureSearch
from bayesnas.sites import arch_plate


class AlternatingArchitectureSearch(ArchitectureSearch):
    """``step(weight_batch, theta_batch)``: pdas2019 alg. 1, lines 3–7.

    Samples λ architectures M₁..M_λ from the guide (with the dedicated ``generator``), updates
    the weights W by SGD on their mean loss over a mini-batch of D_W (eq. 2), then ranks the
    same architectures by their losses on a mini-batch of D_θ under the *updated* W and
    updates θ by the natural gradient (eq. 4; the adaptive step size of app. C is the
    ``arch_optimizers``' option). The θ step runs without weight gradients (``no_grad``) and
    leaves BatchNorm's running statistics untouched (:func:`frozen_batchnorm_statistics`);
    only θ moves in it.

    Args:
        model, guide: the search space and the distribution over its arch sites.
        loss: a :class:`RankingNaturalGradientLoss` (its λ, penalty and costs; eq. 4 batches).
        weight_optimizer: over the model's weights.
        arch_optimizers: natural-gradient optimizers over θ.
        generator: the seeded ``torch.Generator`` architectures are drawn from.
        clip_norm: clip the weights' gradient norm to this value (pdas2019 §4.1: 5); ``None``
            leaves it.
    """

    def __init__(
        self,
        model: Callable[..., Any],
        guide: Callable[..., Any],
        loss: RankingNaturalGradientLoss,
        *,
        weight_optimizer: torch.optim.Optimizer,
        arch_optimizers: Sequence[torch.optim.Optimizer] = (),
        generator: torch.Generator,
        clip_norm: float | None = 5.0,
    ) -> None:
        if not isinstance(loss, RankingNaturalGradientLoss) or not loss.same_batch:
            raise ValueError(
                "The alternating search ranks the λ architectures on one shared D_θ mini-batch: it "
                f"needs a RankingNaturalGradientLoss with same_batch=True, but got {loss!r}."
            )
        if clip_norm is not None and not clip_norm > 0:
            raise ValueError(f"`clip_norm` must be positive or None, but got clip_norm={clip_norm!r}.")
        super().__init__(model, guide, loss, weight_optimizer=weight_optimizer,
                         arch_optimizers=arch_optimizers, generator=generator)
        self.clip_norm = clip_norm

    def _losses(self, guide_trace: poutine.Trace, batch: Sequence[Any]) -> torch.Tensor:
        with arch_plate(self.loss.num_samples):
            trace = poutine.trace(poutine.replay(self.model, trace=guide_trace)).get_trace(*batch)
        return per_architecture_loss(trace)

    def step(self, weight_batch: Sequence[Any], theta_batch: Sequence[Any]) -> dict[str, Any]:
        """One update of W (on ``weight_batch``) and then of θ (on ``theta_batch``)."""
        for opt in self._optimizers():
            opt.zero_grad(set_to_none=True)
        with seeded_arch(generator=self.generator), arch_plate(self.loss.num_samples):
            guide_trace = poutine.trace(self.guide).get_trace(*weight_batch)
        weight_losses = self._losses(guide_trace, weight_batch)
        weight_losses.mean().backward()
        if self.clip_norm is not None:
            params = [p for group in self.weight_optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.clip_norm)
        self.weight_optimizer.step()

        module = self.model if isinstance(self.model, nn.Module) else nn.Module()
        with torch.no_grad(), frozen_batchnorm_statistics(module):
            theta_losses = self._losses(guide_trace, theta_batch)
        surrogate, utility = self.loss.surrogate(self.guide, guide_trace, theta_losses)
        if surrogate.requires_grad:  # θ held fixed (a baseline) has nothing to update
            surrogate.backward()
        for opt in self.arch_optimizers:
            opt.step()
        return {
            "loss": weight_losses.detach().mean(),
            "losses": weight_losses.detach(),
            "theta_losses": theta_losses,
            "utility": utility,
            "samples": arch_samples(guide_trace),
        }
