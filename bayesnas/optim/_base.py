"""The natural-gradient step shared by the Bernoulli and categorical optimizers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from bayesnas.optim import functional as F

ParamsT = Iterable[torch.Tensor] | Iterable[dict[str, Any]]


def check_positive(name: str, value: Any, *, allow_none: bool = False) -> None:
    """Raise unless ``value`` is a finite number > 0 (or None where allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
        math.isfinite(value) and value > 0
    ):
        raise ValueError(f"`{name}` must be positive, but got {name}={value!r}.")


def check_int(name: str, value: Any, low: int, *, allow_none: bool = False) -> None:
    """Raise unless ``value`` is an int >= ``low`` (or None where allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}, but got {name}={value!r}.")


class NaturalGradientOptimizer(torch.optim.Optimizer):
    """θ ← Π(θ − η F(θ)⁻¹ ∇θ surrogate), optionally with the adaptive η of pdas2019 app. C.

    ``p.grad`` must hold the Euclidean gradient of the score-function surrogate
    ``−(1/λ) Σᵢ uᵢ log p_θ(Mᵢ) + ε E_θ[R(M)]``
    (see :class:`bayesnas.infer.RankingNaturalGradientLoss`).
    Subclasses supply the family: its domain check, inverse Fisher, projection Π, the
    F^{1/2}-image used by the adaptive step size and its number of free parameters Σ(K − 1).

    Options common to both families (keyword-only, per param group):

    - ``lr``: the step size η; default 1/Σ(K − 1) (pdas2019 §2; 1/d for Bernoulli, saito2018
      §4), or ηmax when ``adaptive``.
    - ``adaptive``: adapt η after every step (pdas2019 app. C, after Nishida et al. 2018).
    - ``alpha``: the threshold α of app. C eq. (13) (1.5).
    - ``lr_min``, ``lr_max``: ηmin (0) and ηmax (default (Σ(K − 1))^(−1/2), at most 2).
    - ``num_samples``: λ, the number of architectures per step, with ⌈λ/4⌉ utilities of ±1;
      it sets Tr(F Cov[Δθ]) (:func:`~bayesnas.optim.functional.fisher_trace`).

    State: ``state[p]["step"]`` and, when adaptive, ``state[p]["s"]`` (p's slice of the
    accumulation s, shaped like the reduced parameter); group scalars ``group["lr"]`` (the
    current η) and ``group["gamma"]`` (γ). Everything round-trips through
    ``state_dict()`` / ``load_state_dict()`` (and ``torch.load(weights_only=True)``).

    A parameter whose ``.grad`` is None is skipped (θ and its state untouched); in adaptive mode
    its stored slice of s still counts in ‖s‖², since s is the group's vector. η is not
    updated when no parameter of the group has a gradient.
    """

    family: str = ""

    def __init__(
        self,
        params: ParamsT,
        *,
        lr: float | None = None,
        adaptive: bool = False,
        alpha: float = 1.5,
        lr_min: float = 0.0,
        lr_max: float | None = None,
        num_samples: int = 2,
        **family_defaults: Any,
    ) -> None:
        defaults = dict(
            lr=lr, adaptive=adaptive, alpha=alpha, lr_min=lr_min, lr_max=lr_max,
            num_samples=num_samples, gamma=0.0, **family_defaults,
        )
        super().__init__(params, defaults)

    # -- family hooks ---------------------------------------------------------------------------
    def _check_domain(self, theta: torch.Tensor) -> None:
        raise NotImplementedError

    def _check_family_options(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _num_free(self, group: dict[str, Any]) -> int:
        """Σᵢ(Kᵢ − 1) over the group (the number of bits for Bernoulli θ)."""
        raise NotImplementedError

    def _natural_gradient(self, theta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _fisher_sqrt_image(self, theta: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _project(self, theta: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    # -- param groups ---------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group, validating its options and θ and resolving the default η, ηmax."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            self._setup_group(group)
        except Exception:
            self.param_groups.pop()
            raise

    def _setup_group(self, group: dict[str, Any]) -> None:
        for p in group["params"]:
            if not p.is_floating_point():
                raise ValueError(f"θ must be a floating-point tensor, but got dtype={p.dtype}.")
            self._check_domain(p.detach())
        check_positive("lr", group["lr"], allow_none=True)
        check_positive("alpha", group["alpha"])
        check_positive("lr_max", group["lr_max"], allow_none=True)
        if group["lr_max"] is not None and group["lr_max"] > 2:
            raise ValueError(
                "`lr_max` must be <= 2 (η(2 − η) >= 0 in pdas2019 app. C), "
                f"but got lr_max={group['lr_max']!r}."
            )
        lr_min = group["lr_min"]
        if isinstance(lr_min, bool) or not isinstance(lr_min, int | float) or not (
            math.isfinite(lr_min) and lr_min >= 0
        ):
            raise ValueError(f"`lr_min` must be >= 0, but got lr_min={lr_min!r}.")
        check_int("num_samples", group["num_samples"], 2)
        if not isinstance(group["adaptive"], bool):
            raise ValueError(f"`adaptive` must be a bool, but got adaptive={group['adaptive']!r}.")
        self._check_family_options(group)
        free = self._num_free(group)
        if group["lr_max"] is None:
            group["lr_max"] = free**-0.5  # ηmax = (Σ(Kᵢ − 1))^(−1/2), pdas2019 app. C
        if lr_min > group["lr_max"]:
            raise ValueError(
                "`lr_min <= lr_max` must hold, but got "
                f"(lr_min={lr_min!r}, lr_max={group['lr_max']!r})."
            )
        if group["lr"] is None:
            # η⁰ = ηmax when adaptive (app. C), else 1/Σ(Kᵢ − 1) (pdas2019 §2, saito2018 §4).
            group["lr"] = group["lr_max"] if group["adaptive"] else 1.0 / free
        group["lr"] = float(group["lr"])

    # -- step -----------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One natural-gradient descent step per group; returns the closure's loss, if any."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        lr = float(group["lr"])
        adaptive = group["adaptive"]
        trace = F.fisher_trace(self._num_free(group), group["num_samples"]) if adaptive else 1.0
        stepped = False
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients.")
            stepped = True
            state = self.state[p]
            natural = self._natural_gradient(p, p.grad)
            if adaptive:
                # Δθ = −natural is the estimated ascent direction (app. C), v its F^{1/2}-image.
                v = self._fisher_sqrt_image(p, natural.neg())
                s = state.get("s")
                state["s"] = F.evolution_path_update(
                    torch.zeros_like(v) if s is None else s, v, lr=lr, trace=trace
                )
            p.copy_(self._project(p.sub(natural, alpha=lr), group))
            state["step"] = state.get("step", 0) + 1
        if adaptive and stepped:
            parts = [
                self.state[p]["s"].square().sum()
                for p in group["params"]
                if "s" in self.state.get(p, {})
            ]
            device = parts[0].device
            s_norm_sq = float(torch.stack([t.to(device, torch.float64) for t in parts]).sum())
            group["lr"], group["gamma"] = F.adaptive_lr_update(
                lr=lr, gamma=float(group["gamma"]), s_norm_sq=s_norm_sq, alpha=group["alpha"],
                lr_min=group["lr_min"], lr_max=group["lr_max"],
            )
