"""Score-function losses over sampled architectures (the seed papers' estimators).

Like Pyro's ELBOs, a loss object has ``loss_and_grads(model, guide, *args, **kwargs)``: it
runs the guide and the model (replayed on the guide's samples) inside one
``pyro.plate("arch", λ)`` so that the λ architectures share one batched forward pass, then
back-propagates a surrogate whose gradient is the papers' estimator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from pyro import poutine

from bayesnas.infer.utility import ranking_utility
from bayesnas.sites import arch_plate


def per_architecture_loss(model_trace: poutine.Trace) -> torch.Tensor:
    """L̄(W, M_i): minus the mean log-likelihood per observed element, for each architecture.

    With a classification likelihood ``Categorical(logits).to_event(1)`` over N data this is
    the mean cross-entropy over the mini-batch, shirakawa2018 eq. (4)/(5).
    """
    total = None
    for node in model_trace.nodes.values():
        if node["type"] != "sample" or not node["is_observed"] or node["infer"].get("arch"):
            continue
        fn = node["fn"]
        lp = fn.log_prob(node["value"]) / max(fn.event_shape.numel(), 1)
        total = -lp if total is None else total - lp
    if total is None:
        raise ValueError(
            "The model has no observed site, so there is no loss to rank: declare the likelihood "
            "with `obs=` (e.g. bayesnas.sites.classification_likelihood) or use pyro.factor."
        )
    return total


def _split_batch(args: tuple, kwargs: dict, lam: int) -> tuple[tuple, dict]:
    """Cut every batch tensor ``(N, ...)`` into λ disjoint parts ``(λ, N/λ, ...)`` (eq. 5)."""
    sizes = {a.shape[0] for a in (*args, *kwargs.values()) if torch.is_tensor(a) and a.dim()}
    if len(sizes) != 1:
        raise ValueError(f"All batch tensors must share their first dimension, but got {sorted(sizes)}.")
    (n,) = sizes
    if n % lam:
        raise ValueError(
            f"The different-mini-batch estimator (eq. 5) needs the batch size to be a multiple "
            f"of λ, but got N={n}, λ={lam}."
        )

    def cut(a: Any) -> Any:
        return a.reshape(lam, n // lam, *a.shape[1:]) if torch.is_tensor(a) and a.dim() else a

    return tuple(cut(a) for a in args), {k: cut(v) for k, v in kwargs.items()}


class ExpectedLoss:
    """Monte-Carlo expected loss G(W, θ) over λ architectures; weight gradient only.

    ∇_W G ≈ (1/λ) Σ_i ∇_W L̄(W, M_i) (shirakawa2018 eq. 6), with L̄ on one shared mini-batch
    (eq. 4, ``same_batch=True``) or on λ disjoint parts of it (eq. 5). With θ held fixed this
    is the StochasticLayer baseline; with λ = 1 and a fixed guide, plain training.
    """

    min_samples = 1

    def __init__(self, *, num_samples: int = 2, same_batch: bool = True) -> None:
        if not isinstance(num_samples, int) or num_samples < self.min_samples:
            raise ValueError(
                f"`num_samples` (λ) must be an integer >= {self.min_samples}, "
                f"but got num_samples={num_samples!r}."
            )
        self.num_samples = num_samples
        self.same_batch = same_batch

    def evaluate(
        self, model: Callable[..., Any], guide: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, poutine.Trace]:
        """Per-architecture losses, shape ``(λ,)``, and the guide trace they were drawn from."""
        if not self.same_batch:
            args, kwargs = _split_batch(args, kwargs, self.num_samples)
        with arch_plate(self.num_samples):
            guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
                *args, **kwargs
            )
        return per_architecture_loss(model_trace), guide_trace

    def loss_and_grads(
        self, model: Callable[..., Any], guide: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        losses, _ = self.evaluate(model, guide, *args, **kwargs)
        losses.mean().backward()
        return {"loss": losses.detach().mean(), "losses": losses.detach()}


def guide_log_prob(guide_trace: poutine.Trace) -> torch.Tensor:
    """log p_θ(M_i) summed over the arch sites, shape ``(λ,)``."""
    total = None
    for node in guide_trace.nodes.values():
        if node["type"] == "sample" and node["infer"].get("arch"):
            lp = node["fn"].log_prob(node["value"])
            total = lp if total is None else total + lp
    if total is None:
        raise ValueError("The guide samples no arch site.")
    return total


def arch_samples(guide_trace: poutine.Trace) -> dict[str, torch.Tensor]:
    """The λ sampled architectures, ``site -> (λ, *shape)``."""
    return {
        name: node["value"].detach()
        for name, node in guide_trace.nodes.items()
        if node["type"] == "sample" and node["infer"].get("arch")
    }


class RankingNaturalGradientLoss(ExpectedLoss):
    """The stochastic-natural-gradient estimator with the ranking utility (λ ≥ 2).

    Back-propagates ``mean_i L̄(W, M_i) + surrogate(θ)`` with

        surrogate(θ) = −(1/λ) Σ_i u_i log p_θ(M_i) + ε Σ_k c_k θ_k

    where u is the ranking utility (shirakawa2018 eq. 8) and ε = ε₀ / max(c) (saito2018 §3,
    "Implementation Remark"). The weights get eq. (6); θ gets the Euclidean gradient of the
    surrogate, which the natural-gradient optimizers of :mod:`bayesnas.optim` precondition
    with the inverse Fisher: for Bernoulli θ(1−θ)⊙∇ = −(1/λ)Σ u_i (M_i − θ) + ε c θ(1−θ),
    the update of shirakawa2018 eq. (9) and saito2018 eq. (7); for categorical θ the
    update of pdas2019 eq. (4).

    Args:
        num_samples: λ ≥ 2, the architectures sampled per step.
        same_batch: eq. (4) if ``True`` (the papers' recommendation), eq. (5) otherwise.
        penalty: ε₀, the complexity-penalty coefficient (saito2018); 0 disables it.
        costs: ``site name -> c`` complexity coefficients (same shape as the site's θ), needed
            when ``penalty != 0``.
        reduce: applied to the λ losses before they are ranked; a data-parallel run passes the
            mean over its processes (:meth:`bayesnas.runs.distributed.Context.mean`), so that every
            process ranks the losses of the whole global batch alike.
    """

    min_samples = 2

    def __init__(
        self,
        *,
        num_samples: int = 2,
        same_batch: bool = True,
        penalty: float = 0.0,
        costs: Mapping[str, Any] | None = None,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__(num_samples=num_samples, same_batch=same_batch)
        self.reduce = reduce
        self.penalty = float(penalty)
        dtype = torch.get_default_dtype()
        self.costs = {k: torch.as_tensor(v, dtype=dtype) for k, v in (costs or {}).items()}
        self.epsilon = 0.0
        if self.penalty != 0.0:
            if not self.costs:
                raise ValueError(
                    f"A complexity penalty ε₀={self.penalty} needs complexity costs c: pass "
                    "costs={site name: c} (saito2018 eq. 4)."
                )
            c_max = max(float(c.max()) for c in self.costs.values())
            if c_max <= 0:
                raise ValueError(f"max(c) must be positive to normalise ε₀, but got max(c)={c_max}.")
            self.epsilon = self.penalty / c_max
        self._checked_sites = False

    def _check_costs(self, guide: Any) -> None:
        specs = getattr(guide, "specs", {})
        unknown = sorted(set(self.costs) - set(specs))
        if unknown:
            raise KeyError(f"Costs given for unknown arch sites {unknown}. Known sites: {sorted(specs)}.")
        for name, c in self.costs.items():
            spec = specs[name]
            want = spec.theta_shape
            if tuple(c.shape) != tuple(want):
                raise ValueError(
                    f"Costs of site {name!r} must have shape {tuple(want)} (the shape of its θ), "
                    f"but got {tuple(c.shape)}."
                )
        self._checked_sites = True

    def surrogate(
        self, guide: Any, guide_trace: poutine.Trace, losses: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(surrogate(θ), u)`` for the architectures of ``guide_trace`` ranked by ``losses``:
        −(1/λ) Σ u_i log p_θ(M_i) + ε Σ c θ, whose gradient the natural-gradient optimizers
        precondition."""
        if not self._checked_sites:
            self._check_costs(guide)
        if self.reduce is not None:
            losses = self.reduce(losses.detach())
        utility = ranking_utility(losses)
        surrogate = -(utility * guide_log_prob(guide_trace)).mean()
        if self.epsilon:
            surrogate = surrogate + self.epsilon * guide.expected_cost(self.costs)
        return surrogate, utility

    def loss_and_grads(
        self, model: Callable[..., Any], guide: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        if not self._checked_sites:
            self._check_costs(guide)
        losses, guide_trace = self.evaluate(model, guide, *args, **kwargs)
        surrogate, utility = self.surrogate(guide, guide_trace, losses.detach())
        (losses.mean() + surrogate).backward()
        return {
            "loss": losses.detach().mean(),
            "losses": losses.detach(),
            "utility": utility,
            "samples": arch_samples(guide_trace),
        }
