"""vinnas2020: the search objective (eq. 8) and the alternating search loop (alg. 1).

The γ schedules ("we linearly increase the values of γ1, γ2 and γ3", §IV-C; "the γs are
initialised as zero", alg. 1 lines 2, 19) and the weights' cosine learning rate (§V-A) are
:func:`~bayesnas.infer.schedules.linear_ramp` and :func:`~bayesnas.infer.schedules.cosine_lr`.

* :class:`VariationalSearchELBO` — eq. 8 as a :class:`pyro.infer.TraceMeanField_ELBO`:
  −E_q[log p(y | x, α, w)] + γ₁·Σ KL(q(w) ‖ p(w)) + γ₂·Σ KL(q(α) ‖ p(α)) + γ₃·Σ_edges H(E_q[z]).
* :class:`VariationalArchitectureSearch` — alg. 1: a W step on D_w, then (after the warm-up
  "weight epochs", line 10) an α step on D_α, Adam for both (§V-A), and the α of the lowest
  validation error kept (lines 15–17).

Model contract (the driver's, not the loss's): the model samples its Bayesian weights (e.g.
``PyroSample(LogUniform)`` attributes used through :mod:`bayesnas.nn.lrt`) *outside* any
``arch_plate``, and its op strengths α (:func:`bayesnas.sites.normal_strength`) and its
likelihood inside ``arch_plate(1)``: vinnas2020 trains "with respect to a single sample with
respect to q(.)s and LRT" (§V-A), and a weight site inside the plate would carry a batch
dimension that its plate-free guide site lacks.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from pyro.infer import TraceMeanField_ELBO
from torch import nn

from bayesnas.guides.normal import NormalGuide
from bayesnas.handlers.likelihood import LikelihoodMessenger
from bayesnas.handlers.local_reparameterization import local_reparameterization
from bayesnas.handlers.scale_sites import scale_sites
from bayesnas.infer.schedules import Schedule, check_epoch, check_nonnegative, check_positive, cosine_lr
from bayesnas.sites import arch_plate

__all__ = [
    "VariationalArchitectureSearch",
    "VariationalSearchELBO",
]


# -- the objective -----------------------------------------------------------------------------


class VariationalSearchELBO(TraceMeanField_ELBO):
    """vinnas2020 eq. 8 on ``TraceMeanField_ELBO``: the data term and the analytic KLs are
    Pyro's; this class only weights them and adds the entropy penalty.

    How the pieces enter (see :mod:`bayesnas.handlers.scale_sites`):

    * γ₁ / γ₂: model and guide are run under :func:`~bayesnas.handlers.scale_sites` with
      γ₂ for the sites named in ``arch_sites`` and γ₁ for every other latent site (the
      weights); ``TraceMeanField_ELBO`` multiplies each analytic KL by the guide site's scale
      (γ = 0 masks the site, dropping its KL exactly).
    * γ₃: ``Σ_edges H(E_q[z])``, ``z = softmax(α)`` over the K ops of an edge, estimated from the
      α the guide drew for this very loss (vinnas2020 app., eq. 16: "The z are computed with
      respect to the samples from q(α | θα)"): E_q[z] is the mean of softmax over the draws of
      the trace (one with the arch plate of size 1). Differentiable in μ and log σ² through
      the reparameterized draw; added to the loss and the surrogate of every particle.
    * label smoothing ε: observed Categorical likelihoods score ``(1 − ε)·log p_y + ε·mean_k
      log p_k`` (sites.py stays untouched: the loss swaps the site's distribution).
    * ``num_data`` = D: if given, the objective is eq. 8 divided by D, estimated on the batch:
      the mean (smoothed) negative log-likelihood over the batch's n data, plus
      ``(γ₁·KL_w + γ₂·KL_α + γ₃·H)/D``. If ``None``, eq. 8 with the batch in place of D
      (summed log-likelihood, unscaled terms): then the γs absorb the n/D factor.

    The γs are attributes (:meth:`set_gammas`), read each time the loss runs, so a driver
    sets them from its schedules before every step.

    Args:
        arch_sites: the names of the op-strength sites α (e.g. ``NormalGuide.site_names``).
        gamma_weights, gamma_arch, gamma_entropy: γ₁, γ₂, γ₃ (>= 0).
        label_smoothing: ε in [0, 1).
        num_data: D, the size of the data set the batches come from, or ``None``.
        **elbo_kwargs: for ``TraceMeanField_ELBO`` (``num_particles``, ``max_plate_nesting``...).
    """

    def __init__(
        self,
        *,
        arch_sites: Iterable[str],
        gamma_weights: float = 1.0,
        gamma_arch: float = 1.0,
        gamma_entropy: float = 0.0,
        label_smoothing: float = 0.0,
        num_data: int | None = None,
        **elbo_kwargs: Any,
    ) -> None:
        super().__init__(**elbo_kwargs)
        self.arch_sites = frozenset(arch_sites)
        if not self.arch_sites:
            raise ValueError("`arch_sites` must name at least one op-strength site, but got none.")
        if not (0.0 <= label_smoothing < 1.0):
            raise ValueError(
                f"`label_smoothing` must lie in [0, 1), but got label_smoothing={label_smoothing!r}."
            )
        if num_data is not None and (
            isinstance(num_data, bool) or not isinstance(num_data, int) or num_data < 1
        ):
            raise ValueError(f"`num_data` must be an integer >= 1 or None, but got num_data={num_data!r}.")
        self.label_smoothing = float(label_smoothing)
        self.num_data = num_data
        self.set_gammas(weights=gamma_weights, arch=gamma_arch, entropy=gamma_entropy)

    def set_gammas(self, *, weights: float, arch: float, entropy: float) -> None:
        """Set γ₁ (weights' KL), γ₂ (α's KL) and γ₃ (entropy), each a finite number >= 0."""
        self.gamma_weights = check_nonnegative(weights, "gamma_weights")
        self.gamma_arch = check_nonnegative(arch, "gamma_arch")
        self.gamma_entropy = check_nonnegative(entropy, "gamma_entropy")

    @property
    def gammas(self) -> tuple[float, float, float]:
        return self.gamma_weights, self.gamma_arch, self.gamma_entropy

    def _per_datum(self) -> float:
        return 1.0 if self.num_data is None else 1.0 / self.num_data

    def site_scale(self, name: str) -> float:
        """The factor of the KL of latent site ``name``: γ₂ for α, γ₁ otherwise (/D if set)."""
        gamma = self.gamma_arch if name in self.arch_sites else self.gamma_weights
        return gamma * self._per_datum()

    def _get_trace(self, model, guide, args, kwargs):
        per_datum = self.num_data is not None
        likelihood = LikelihoodMessenger(self.label_smoothing, per_datum)
        model = likelihood(scale_sites(model, scales=self.site_scale))
        guide = scale_sites(guide, scales=self.site_scale)
        return super()._get_trace(model, guide, args, kwargs)

    def entropy(self, guide_trace) -> torch.Tensor:
        """``Σ_edges H(E_q[softmax α])`` over the arch sites of ``guide_trace`` (see class)."""
        total = torch.zeros(())
        for name, site in guide_trace.nodes.items():
            if site["type"] != "sample" or name not in self.arch_sites:
                continue
            value = site["value"]
            event = value.shape[value.dim() - len(site["fn"].event_shape):]
            if len(event) == 0:
                raise ValueError(
                    f"Arch site {name!r} needs an event shape (*edges, K), but got a scalar value."
                )
            log_p = torch.log_softmax(value.reshape(-1, *event), -1)  # one row per draw
            # log E[z] = logsumexp over the draws − log(#draws): stable even where z underflows.
            log_mean = torch.logsumexp(log_p, 0) - math.log(log_p.shape[0])
            total = total.to(log_mean) - (log_mean.exp() * log_mean).sum()
        return total

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        loss, surrogate = super()._differentiable_loss_particle(model_trace, guide_trace)
        if self.gamma_entropy > 0:
            penalty = self.gamma_entropy * self._per_datum() * self.entropy(guide_trace)
            loss = loss + float(penalty.detach())
            surrogate = surrogate + penalty
        return loss, surrogate


# -- the search loop ---------------------------------------------------------------------------


def _as_schedule(value: float | Schedule, what: str) -> Schedule:
    if callable(value):
        return value
    constant = check_nonnegative(value, what)
    return lambda epoch: constant


class VariationalArchitectureSearch:
    """vinnas2020 alg. 1, in the spirit of :class:`~bayesnas.infer.ArchitectureSearch` / ``SVI``.

    ``step(weight_batch, alpha_batch, epoch=e)``: sets γ₁, γ₂, γ₃ from their schedules at
    epoch ``e`` (line 19) and the weights' learning rate by :func:`cosine_lr`, then

    1. W step (lines 5–8): the loss (eq. 8) on ``weight_batch`` (from D_w) and one Adam step
       of the weights' guide q(w) (μ_w, log σ²_w) and of the deterministic parameters Ψ;
    2. α step (lines 9–14), only once ``e >= warmup_epochs`` (the "weight epochs"): the loss
       on ``alpha_batch`` (from D_α) and one Adam step of q(α) (μ_α, log σ²_α), at a constant
       learning rate (§V-A).

    Each stage back-propagates into its own parameters only (``backward(inputs=...)``), so
    the other stage's parameters and Adam states are left bitwise untouched. Both stages run
    under :func:`~bayesnas.handlers.local_reparameterization` (``lrt=True``). The caller
    computes the validation error on D_α after a step and calls :meth:`keep_best` (lines
    15–17); :meth:`restore_best` puts the best α back into the guide for selection (line 21,
    ``NormalGuide.select``).

    Args:
        model: the supergraph, a Pyro model (see the module's contract on plates).
        weight_guide: q(w), e.g. :class:`~bayesnas.guides.NormalWeightGuide`.
        arch_guide: q(α), a :class:`~bayesnas.guides.NormalGuide`, run inside ``arch_plate(1)``.
        loss: the eq. 8 objective; its ``arch_sites`` must be the guide's sites. Default: a
            :class:`VariationalSearchELBO` over ``arch_guide.site_names``.
        epochs: the search budget, the cosine period of the weights' learning rate.
        warmup_epochs: epochs with W steps only (α frozen).
        gamma_weights, gamma_arch, gamma_entropy: γ₁, γ₂, γ₃ as constants or functions of the
            epoch (e.g. ``partial(linear_ramp, start=..., end=..., final=...)``).
        weight_lr, min_weight_lr: the cosine schedule of the weights' Adam.
        arch_lr: the constant learning rate of the α Adam (default 3e-4, DARTS', on which
            vinnas2020 builds; the paper gives none).
        params: the deterministic parameters Ψ, trained with the weights. Default: the
            model's ``parameters()`` when it is an ``nn.Module``.
        clip_norm: clip the gradient norm of the W step (``None``: no clipping).
        lrt: run under the local reparameterization handler.
        grad_reduce: called on each stage's parameters after its backward pass, before
            clipping and the Adam step; a data-parallel run passes
            :meth:`bayesnas.runs.distributed.Context.average_gradients`, so that every process
            takes the step of the whole global batch and q(w), q(α) stay identical on all.
    """

    def __init__(
        self,
        model: Callable[..., Any],
        *,
        weight_guide: nn.Module,
        arch_guide: NormalGuide,
        loss: VariationalSearchELBO | None = None,
        epochs: int,
        warmup_epochs: int = 0,
        gamma_weights: float | Schedule = 1.0,
        gamma_arch: float | Schedule = 1.0,
        gamma_entropy: float | Schedule = 0.0,
        weight_lr: float = 1e-3,
        min_weight_lr: float = 0.0,
        arch_lr: float = 3e-4,
        params: Iterable[nn.Parameter] | None = None,
        clip_norm: float | None = None,
        lrt: bool = True,
        grad_reduce: Callable[[Sequence[torch.Tensor]], None] | None = None,
    ) -> None:
        if not isinstance(arch_guide, NormalGuide):
            raise TypeError(f"`arch_guide` must be a NormalGuide (q(α) of eq. 5), but got {arch_guide!r}.")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"`epochs` must be an integer >= 1, but got epochs={epochs!r}.")
        check_epoch(warmup_epochs, "warmup_epochs")
        if warmup_epochs > epochs:
            raise ValueError(
                "`warmup_epochs <= epochs` must hold, but got "
                f"(warmup_epochs={warmup_epochs}, epochs={epochs})."
            )
        if clip_norm is not None:
            check_positive(clip_norm, "clip_norm")
        check_nonnegative(min_weight_lr, "min_weight_lr")
        if loss is None:
            loss = VariationalSearchELBO(arch_sites=arch_guide.site_names)
        elif set(loss.arch_sites) != set(arch_guide.site_names):
            raise ValueError(
                "`loss.arch_sites` must be the arch guide's sites, but got "
                f"{sorted(loss.arch_sites)} and {sorted(arch_guide.site_names)}."
            )
        self.model = model
        self.weight_guide = weight_guide
        self.arch_guide = arch_guide
        self.loss = loss
        self.epochs = epochs
        self.warmup_epochs = warmup_epochs
        self.schedules = {
            "weights": _as_schedule(gamma_weights, "gamma_weights"),
            "arch": _as_schedule(gamma_arch, "gamma_arch"),
            "entropy": _as_schedule(gamma_entropy, "gamma_entropy"),
        }
        self.weight_lr = check_positive(weight_lr, "weight_lr")
        self.min_weight_lr = min_weight_lr
        self.clip_norm = clip_norm
        self.lrt = lrt
        self.grad_reduce = grad_reduce
        if params is None:
            params = model.parameters() if isinstance(model, nn.Module) else ()
        self.params = [p for p in params if p.requires_grad]
        guide_params = [p for p in weight_guide.parameters() if p.requires_grad]
        self.weight_parameters = [*guide_params, *self.params]
        if not self.weight_parameters:
            raise ValueError("The W step needs parameters, but the weight guide and `params` have none.")
        self.arch_parameters = arch_guide.arch_parameters()
        self.weight_optimizer = torch.optim.Adam(self.weight_parameters, lr=self.weight_lr)
        arch_opts = arch_guide.make_optimizers(lr=arch_lr)
        self.arch_optimizer = arch_opts[0] if arch_opts else None
        self.num_steps = 0
        self.last_epoch: int | None = None
        self.best_error = math.inf
        self.best_epoch: int | None = None
        self.best_arch_state: dict[str, torch.Tensor] | None = None

    # -- the guide over (w, α) ----------------------------------------------------------------
    def guide(self, *args: Any, **kwargs: Any) -> None:
        """q(w)·q(α): the weights outside any plate, α inside ``arch_plate(1)`` (vinnas2020 §V-A:
        a single sample of q)."""
        self.weight_guide(*args, **kwargs)
        with arch_plate(1):
            self.arch_guide(*args, **kwargs)

    def _loss(self, batch: Sequence[Any]) -> torch.Tensor:
        return self.loss.differentiable_loss(self.model, self.guide, *batch)

    # -- one step -----------------------------------------------------------------------------
    def _prepare(self, epoch: int) -> dict[str, Any]:
        """γ₁, γ₂, γ₃ from their schedules and the weights' cosine learning rate at ``epoch``."""
        check_epoch(epoch)
        if epoch >= self.epochs:
            raise ValueError(f"`epoch < epochs` must hold, but got (epoch={epoch}, epochs={self.epochs}).")
        gammas = {k: float(s(epoch)) for k, s in self.schedules.items()}
        self.loss.set_gammas(**gammas)
        lr = cosine_lr(epoch, base=self.weight_lr, epochs=self.epochs, minimum=self.min_weight_lr)
        for group in self.weight_optimizer.param_groups:
            group["lr"] = lr
        return {"epoch": epoch, "lr": lr, **{f"gamma_{k}": v for k, v in gammas.items()}}

    def _handler(self) -> contextlib.AbstractContextManager:
        return local_reparameterization() if self.lrt else contextlib.nullcontext()

    def weight_step(self, batch: Sequence[Any], *, epoch: int) -> float:
        """Stage (1), alg. 1 lines 6–8: one Adam step of q(w) and Ψ on a D_w batch; returns the
        loss. Only the weights' gradients are computed, so q(α) and its Adam state stay as they
        are."""
        self._prepare(epoch)
        with self._handler():
            self.weight_optimizer.zero_grad(set_to_none=True)
            loss = self._loss(batch)
            loss.backward(inputs=self.weight_parameters)
            if self.grad_reduce is not None:
                self.grad_reduce(self.weight_parameters)
            if self.clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(self.weight_parameters, self.clip_norm)
            self.weight_optimizer.step()
        return float(loss.detach())

    def arch_step(self, batch: Sequence[Any], *, epoch: int) -> float | None:
        """Stage (2), alg. 1 lines 11–13: one Adam step of q(α) on a D_α batch; returns the loss
        (``None`` when q(α) is not learnable). Only α's gradients are computed, so q(w), Ψ and
        their Adam state stay as they are. Refused during the warm-up (line 10)."""
        self._prepare(epoch)
        if epoch < self.warmup_epochs:
            raise ValueError(
                "α is frozen during the warm-up: `epoch >= warmup_epochs` must hold, but got "
                f"(epoch={epoch}, warmup_epochs={self.warmup_epochs})."
            )
        if self.arch_optimizer is None:
            return None
        with self._handler():
            self.arch_optimizer.zero_grad(set_to_none=True)
            loss = self._loss(batch)
            loss.backward(inputs=self.arch_parameters)
            if self.grad_reduce is not None:
                self.grad_reduce(self.arch_parameters)
            self.arch_optimizer.step()
        return float(loss.detach())

    def step(self, weight_batch: Sequence[Any], alpha_batch: Sequence[Any], *, epoch: int) -> dict[str, Any]:
        """One W step on ``weight_batch`` and (after the warm-up) one α step on ``alpha_batch``
        (alg. 1 lines 5–14); returns the metrics: ``loss``, ``arch_loss`` (``None`` in the
        warm-up), ``lr`` and the γs."""
        metrics = self._prepare(epoch)
        metrics["loss"] = self.weight_step(weight_batch, epoch=epoch)
        metrics["arch_loss"] = (
            self.arch_step(alpha_batch, epoch=epoch) if epoch >= self.warmup_epochs else None
        )
        self.num_steps += 1
        self.last_epoch = epoch
        return metrics

    # -- alg. 1, lines 15–17: the α of the lowest validation error ------------------------------
    def keep_best(self, val_error: float) -> bool:
        """Save q(α) (μ, log σ²) if ``val_error`` is below every earlier one; ``True`` if saved."""
        if isinstance(val_error, bool) or not isinstance(val_error, int | float) or math.isnan(val_error):
            raise ValueError(f"`val_error` must be a number, but got val_error={val_error!r}.")
        if not val_error < self.best_error:
            return False
        self.best_error = float(val_error)
        self.best_epoch = self.last_epoch
        self.best_arch_state = {k: v.detach().clone() for k, v in self.arch_guide.state_dict().items()}
        return True

    def restore_best(self) -> None:
        """Load the kept α into the arch guide (e.g. before ``arch_guide.select()``)."""
        if self.best_arch_state is None:
            raise RuntimeError("No α was kept yet: call keep_best(val_error) after a step first.")
        self.arch_guide.load_state_dict(self.best_arch_state)

    # -- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a killed search needs to resume exactly: both guides, the model's
        ``state_dict`` when it is a module (buffers included), the ``params`` Ψ, both Adam
        states, the best α, the step count and torch's RNG states (Pyro samples from the global
        generator). The schedules are functions of the epoch and need no state. Plain tensors
        and containers only: :func:`bayesnas.runs.load_checkpoint` reads it with
        ``weights_only=True``."""
        rng: dict[str, Any] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        model_state = self.model.state_dict() if isinstance(self.model, nn.Module) else {}
        return {
            "weight_guide": self.weight_guide.state_dict(),
            "arch_guide": self.arch_guide.state_dict(),
            "model": model_state,
            "params": [p.detach().clone() for p in self.params],
            "weight_optimizer": self.weight_optimizer.state_dict(),
            "arch_optimizer": None if self.arch_optimizer is None else self.arch_optimizer.state_dict(),
            "num_steps": self.num_steps,
            "last_epoch": self.last_epoch,
            "best": {"error": self.best_error, "epoch": self.best_epoch, "arch_guide": self.best_arch_state},
            "rng": rng,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weight_guide.load_state_dict(state["weight_guide"])
        self.arch_guide.load_state_dict(state["arch_guide"])
        if isinstance(self.model, nn.Module):
            self.model.load_state_dict(state["model"])
        with torch.no_grad():  # Ψ given as `params` may live outside the model
            for p, saved in zip(self.params, state["params"], strict=True):
                p.copy_(saved)
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        if self.arch_optimizer is not None:
            self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        self.num_steps = int(state["num_steps"])
        self.last_epoch = state["last_epoch"]
        best = state["best"]
        self.best_error, self.best_epoch = float(best["error"]), best["epoch"]
        self.best_arch_state = best["arch_guide"]
        torch.set_rng_state(state["rng"]["cpu"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
