"""nes2019: natural evolution strategies over ordered integer hyper-parameters.

The search distribution over the integer arch sites is a :class:`~bayesnas.guides.GaussianGuide`
N(μ, σ²) (in grid coordinates, rounded down by the model); its mean μ is the paper's H. The
NES gradient of eq. (7) is the score-function natural gradient of μ with a baseline-difference
utility, so it goes through the same split as the other families: :class:`NESLoss` (next to
:class:`~bayesnas.infer.RankingNaturalGradientLoss`) back-propagates the surrogate
``−(1/M) Σ uᵢ log N(xᵢ; μ, σ²)``, and :class:`~bayesnas.optim.GaussianNaturalGradient`
preconditions it by σ² and steps, ``H ← H − αG`` (eq. 9). :class:`NESArchitectureSearch` is
algorithm 1: weights trained on a sub-train split under perturbed architectures (eq. 8), H
updated on a sub-evaluation split, σ and α decaying linearly to 0 (app. B).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from pyro import poutine
from torch import nn

from bayesnas.handlers import seeded_arch
from bayesnas.infer.batchnorm import frozen_batchnorm_statistics
from bayesnas.infer.losses import arch_samples, guide_log_prob, per_architecture_loss
from bayesnas.infer.schedules import linear_decay
from bayesnas.infer.utility import baseline_difference_utility
from bayesnas.sites import arch_plate

Resource = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]


def _check_number(name: str, value: Any, *, low: float = 0.0, strict: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < low or (strict and value == low):
        rule = f"> {low:g}" if strict else f">= {low:g}"
        raise ValueError(f"`{name}` must be a finite number {rule}, but got {name}={value!r}.")
    return float(value)


def grid_values(guide: Any, samples: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The values the model uses, ``site → (S, *shape)`` longs, for sampled reals ``x``: each
    rounded down on its grid and clipped (nes2019 eq. 6, ⌊H + n⌋)."""
    out = {}
    for name, x in samples.items():
        grid = guide.specs[name].grid
        out[name] = grid.value(grid.index(grid.coordinate(x)))
    return out


class NESLoss:
    """The NES estimator of nes2019 eqs. (2), (6), (7) over M perturbed architectures.

    ``evaluate`` draws M reals ``xᵢ = H + nᵢ`` from the guide, runs the model on ⌊xᵢ⌋ and on
    ⌊H⌋ (the baseline, eq. 6) on one mini-batch, and scores each architecture by eq. (2),

        L = L_c + ρ (R − R_t)²,

    with L_c the mean negative log-likelihood of the model's observed sites and R the
    ``resource`` of the architecture (FLOPs or latency, :mod:`bayesnas.resources`), computed
    from its integer values. The paper leaves R's units open; ρ weighs them, so give R in
    units where the target is of order one (e.g. ``resource = flops / budget``, ``target = 1``).

    ``loss_and_grads`` back-propagates the surrogate ``−(1/M) Σᵢ uᵢ log N(xᵢ; μ, σ²)`` with
    ``uᵢ = −ΔLᵢ/σ`` (:func:`~bayesnas.infer.utility.baseline_difference_utility`); the model
    runs without gradients (the weights do not move in this step).

    Args:
        num_samples: M, the perturbations per step (nes2019 app. B: 100).
        resource: ``site → (S, *shape)`` integer values ↦ R, shape ``(S,)``; ``None``: no budget.
        target: R_t.
        rho: ρ ≥ 0.
        reduce: applied to the classification losses of the M + 1 architectures before they
            are compared; a data-parallel run passes the mean over its processes
            (:meth:`bayesnas.runs.distributed.Context.mean`), so every process computes the same
            utilities and the same step of μ.
    """

    def __init__(self, *, num_samples: int = 100, resource: Resource | None = None,
                 target: float | None = None, rho: float = 0.0,
                 reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"`num_samples` (M) must be an integer >= 1, but got "
                             f"num_samples={num_samples!r}.")
        self.num_samples = num_samples
        self.rho = _check_number("rho", rho)
        if (resource is None) != (target is None):
            raise ValueError("A resource budget needs both `resource` and `target` (R and R_t of nes2019 "
                             f"eq. 2), but got resource={resource!r}, target={target!r}.")
        if self.rho > 0 and resource is None:
            raise ValueError(f"ρ={self.rho} weighs a resource penalty: pass `resource` and `target`.")
        self.resource = resource
        self.target = None if target is None else _check_number("target", target)
        self.reduce = reduce

    def penalty(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """ρ (R − R_t)² per architecture, shape ``(S,)`` (``None`` without a budget)."""
        if self.resource is None:
            return None
        r = torch.as_tensor(self.resource(values), dtype=torch.get_default_dtype())
        if r.dim() != 1:
            raise ValueError(f"`resource` must return one value per architecture, shape (S,), but got "
                             f"shape {tuple(r.shape)}.")
        return self.rho * (r - self.target) ** 2

    def architecture_losses(self, model: Callable[..., Any], guide: Any, values: Mapping[str, torch.Tensor],
                            num_arch: int, *args: Any, **kwargs: Any) -> torch.Tensor:
        """L of eq. (2) for the architectures ``values`` (``site → (S, *shape)`` grid values), on
        one mini-batch, without gradients; shape ``(S,)``."""
        conditioned = {name: v.to(torch.get_default_dtype()) for name, v in values.items()}
        module = model if isinstance(model, nn.Module) else nn.Module()
        with torch.no_grad(), frozen_batchnorm_statistics(module), arch_plate(num_arch):
            trace = poutine.trace(poutine.condition(model, data=conditioned)).get_trace(*args, **kwargs)
        losses = per_architecture_loss(trace).detach()
        if self.reduce is not None:
            losses = self.reduce(losses)
        penalty = self.penalty(values)
        return losses if penalty is None else losses + penalty.to(losses.device)

    def evaluate(self, model: Callable[..., Any], guide: Any, *args: Any,
                 **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor, poutine.Trace]:
        """``(losses (M,), baseline (), guide trace)``: L(⌊H + nᵢ⌋) and L(⌊H⌋), eq. (6)."""
        with arch_plate(self.num_samples):
            guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        values = grid_values(guide, arch_samples(guide_trace))
        losses = self.architecture_losses(model, guide, values, self.num_samples, *args, **kwargs)
        mode = {name: v.long().unsqueeze(0) for name, v in guide.mode().items()}
        baseline = self.architecture_losses(model, guide, mode, 1, *args, **kwargs)[0]
        return losses, baseline, guide_trace

    def surrogate(self, guide: Any, guide_trace: poutine.Trace, losses: torch.Tensor,
                  baseline: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(surrogate(μ), u)``: −(1/M) Σ uᵢ log N(xᵢ; μ, σ²), whose σ²-preconditioned gradient is
        the NES gradient G of eq. (7)."""
        utility = baseline_difference_utility(losses, baseline, sigma=guide.utility_sigma())
        return -(utility * guide_log_prob(guide_trace)).mean(), utility

    def loss_and_grads(self, model: Callable[..., Any], guide: Any, *args: Any,
                       **kwargs: Any) -> dict[str, Any]:
        losses, baseline, guide_trace = self.evaluate(model, guide, *args, **kwargs)
        surrogate, utility = self.surrogate(guide, guide_trace, losses, baseline)
        if surrogate.requires_grad:  # μ held fixed has nothing to update
            surrogate.backward()
        return {"loss": losses.mean(), "losses": losses, "baseline": baseline, "utility": utility,
                "samples": arch_samples(guide_trace)}


class NESArchitectureSearch:
    """nes2019 algorithm 1: the weights under perturbed architectures, then H by NES, alternately.

    ``weight_step(batch)`` (alg. 1 lines 3–5, eq. 8): draws ``weight_samples`` architectures
    ⌊H + n⌋ from the guide and takes one step of ``weight_optimizer`` on their mean loss (a
    sub-train batch). ``arch_step(batch)`` (lines 7–10): the :class:`NESLoss` on a
    sub-evaluation batch and one step of ``arch_optimizer`` (:class:`GaussianNaturalGradient`),
    with σ and α decayed linearly from ``sigma`` and ``lr`` to 0 over ``total_arch_steps``
    (app. B). Architectures are drawn from ``generator``, so a resumed run repeats exactly.

    Args:
        model: the search space, a Pyro model with "integer" arch sites.
        guide: its :class:`~bayesnas.guides.GaussianGuide`.
        loss: the :class:`NESLoss` (M, the resource and its budget).
        weight_optimizer: over the model's weights.
        arch_optimizer: the guide's :class:`~bayesnas.optim.GaussianNaturalGradient`.
        generator: the seeded ``torch.Generator`` architectures are drawn from.
        total_arch_steps: the H updates of the whole run (the schedules' length).
        sigma, lr: σ (grid steps) and α at the start (app. B: 1.25 and 5).
        weight_samples: architectures per weight step (eq. 8 draws one).
        clip_norm: clip the weights' gradient norm (``None``: no clipping).
        grad_reduce: called on the weights after each backward pass, before clipping; a
            data-parallel run passes :meth:`bayesnas.runs.distributed.Context.average_gradients`
            (or wraps the model in DDP instead).
    """

    def __init__(self, model: Callable[..., Any], guide: Any, loss: NESLoss, *,
                 weight_optimizer: torch.optim.Optimizer, arch_optimizer: torch.optim.Optimizer | None,
                 generator: torch.Generator, total_arch_steps: int, sigma: float = 1.25, lr: float = 5.0,
                 weight_samples: int = 1, clip_norm: float | None = None,
                 grad_reduce: Callable[[Sequence[torch.Tensor]], None] | None = None) -> None:
        for name, value in (("total_arch_steps", total_arch_steps), ("weight_samples", weight_samples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, but got {name}={value!r}.")
        self.model, self.guide, self.loss = model, guide, loss
        self.weight_optimizer, self.arch_optimizer = weight_optimizer, arch_optimizer
        self.generator = generator
        self.total_arch_steps = total_arch_steps
        self.sigma0 = _check_number("sigma", sigma, strict=True)
        self.lr0 = _check_number("lr", lr)
        self.weight_samples = weight_samples
        self.clip_norm = None if clip_norm is None else _check_number("clip_norm", clip_norm, strict=True)
        self.grad_reduce = grad_reduce
        self.arch_steps = 0
        self.set_schedules(0)

    def set_schedules(self, step: int) -> dict[str, float]:
        """σ and α of H update ``step`` (app. B: both decay linearly to 0), set in the guide and
        the optimizer; returns them. A guide that adapts its σ² (``adapt_sigma``) keeps it: only
        α follows the schedule, and the mean σ is reported."""
        lr = linear_decay(self.lr0, step, self.total_arch_steps)
        if getattr(self.guide, "adapt_sigma", False):
            scales = torch.cat([self.guide.scale_of(n).detach().reshape(-1) for n in self.guide.site_names])
            sigma = float(scales.mean())
        else:
            sigma = linear_decay(self.sigma0, step, self.total_arch_steps)
            self.guide.set_sigma(sigma)
        if self.arch_optimizer is not None:
            for group in self.arch_optimizer.param_groups:
                group["sigma"], group["lr"] = sigma, lr
        return {"sigma": sigma, "lr": lr}

    def weight_step(self, batch: Sequence[Any]) -> float:
        """Alg. 1 line 4: one step of the weights on architectures ⌊H + n⌋ (eq. 8)."""
        self.weight_optimizer.zero_grad(set_to_none=True)
        with seeded_arch(generator=self.generator), arch_plate(self.weight_samples):
            guide_trace = poutine.trace(self.guide).get_trace(*batch)
        values = grid_values(self.guide, arch_samples(guide_trace))
        conditioned = {name: v.to(torch.get_default_dtype()) for name, v in values.items()}
        with arch_plate(self.weight_samples):
            trace = poutine.trace(poutine.condition(self.model, data=conditioned)).get_trace(*batch)
        loss = per_architecture_loss(trace).mean()
        loss.backward()
        params = [p for group in self.weight_optimizer.param_groups for p in group["params"]]
        if self.grad_reduce is not None:
            self.grad_reduce(params)
        if self.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.clip_norm)
        self.weight_optimizer.step()
        return float(loss.detach())

    def arch_step(self, batch: Sequence[Any]) -> dict[str, Any]:
        """Alg. 1 lines 8–9: ΔLⱼ of M perturbations on a sub-evaluation batch, H ← H − αG."""
        if self.arch_steps >= self.total_arch_steps:
            raise ValueError(f"All {self.total_arch_steps} H updates are done (σ has decayed to 0).")
        schedule = self.set_schedules(self.arch_steps)
        if self.arch_optimizer is not None:
            self.arch_optimizer.zero_grad(set_to_none=True)
        with seeded_arch(generator=self.generator):
            metrics = self.loss.loss_and_grads(self.model, self.guide, *batch)
        if self.arch_optimizer is not None:
            self.arch_optimizer.step()
        self.arch_steps += 1
        return {**metrics, **schedule}

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed search needs: the model's weights (an ``nn.Module`` model), μ and
        σ, both optimizers, the architecture generator and the number of H updates done."""
        model = self.model.state_dict() if isinstance(self.model, nn.Module) else None
        return {"model": model, "guide": self.guide.state_dict(),
                "weight_optimizer": self.weight_optimizer.state_dict(),
                "arch_optimizer": None if self.arch_optimizer is None else self.arch_optimizer.state_dict(),
                "generator": self.generator.get_state(), "arch_steps": self.arch_steps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["model"] is not None:
            self.model.load_state_dict(state["model"])
        self.guide.load_state_dict(state["guide"])
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        if self.arch_optimizer is not None and state["arch_optimizer"] is not None:
            self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        self.generator.set_state(state["generator"])
        # σ and α stay as saved (in the guide and the optimizer): the weight steps before the
        # next H update draw with the σ of the last one, as in the uninterrupted run.
        self.arch_steps = int(state["arch_steps"])
