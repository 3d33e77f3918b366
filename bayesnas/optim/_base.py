"""The natural-gradient step every optimizer of :mod:`bayesnas.optim` shares.

:class:`NaturalGradientOptimizer` is the one base: eager validation of every param group, the
step θ ← Π(θ − η F(θ)⁻¹ ∇θ surrogate) of every parameter and its lazy state. A family supplies
its maths (:mod:`bayesnas.optim.functional`) through hooks that receive the param group and the
parameter's position in it, so per-parameter options live in the group.
:class:`AdaptiveNaturalGradient` adds the step-size options and the adaptive η of pdas2019
app. C that the Bernoulli, shared-rate and categorical families share.
"""

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


#: θ within this of the bound counts as at the bound (θ is float32; Π puts it there exactly).
AT_BOUND_ATOL = 1e-6


class NaturalGradientOptimizer(torch.optim.Optimizer):
    """θ ← Π(θ − η F(θ)⁻¹ ∇θ surrogate) for every parameter θ of a family of search distributions.

    ``p.grad`` must hold the Euclidean gradient of a score-function surrogate
    ``−(1/λ) Σᵢ uᵢ log p_θ(xᵢ)`` (plus an optional penalty; see
    :class:`bayesnas.infer.RankingNaturalGradientLoss`, :class:`bayesnas.infer.NESLoss`). A
    subclass is one family and supplies, as hooks, its domain check and option validation,
    the inverse Fisher F⁻¹, the step size η and the projection Π; the per-parameter hooks
    receive the param group and the parameter's position ``index`` in ``group["params"]``, so a
    per-parameter option (a shared rate's U, the σ² of a group ``[μ, σ²]``) is read from the
    group. Constructed like any ``torch.optim.Optimizer``, from params and a defaults dict.

    Parameters are stepped in the group's order, each from its own values before it moves; a
    parameter whose ``.grad`` is None is skipped (θ and its state untouched). State:
    ``state[p]["step"]``, the number of steps p has taken.
    """

    #: the guide family whose parameters this optimizer steps (``ExpectationGuide.family``)
    family: str = ""
    #: how messages name a parameter
    param_symbol: str = "θ"

    # -- family hooks ---------------------------------------------------------------------------
    def _check_domain(self, theta: torch.Tensor) -> None:
        """Raise unless θ lies in the family's domain (any value by default)."""

    def _check_options(self, group: dict[str, Any]) -> None:
        """Validate the group's options, resolving those whose default depends on the group."""
        raise NotImplementedError

    def _natural_gradient(
        self, theta: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], index: int
    ) -> torch.Tensor:
        """F(θ)⁻¹ ∇ of the parameter ``group["params"][index]``."""
        raise NotImplementedError

    def _step_size(self, group: dict[str, Any], index: int) -> float:
        """η of the parameter ``group["params"][index]``: the group's ``lr`` by default."""
        return float(group["lr"])

    def _project(self, theta: torch.Tensor, group: dict[str, Any], index: int) -> torch.Tensor:
        """Π: the stepped parameter back in its (clipped) domain."""
        raise NotImplementedError

    def _observe(
        self, theta: torch.Tensor, natural: torch.Tensor, group: dict[str, Any], index: int
    ) -> None:
        """Called with each natural gradient before θ moves (nothing by default)."""

    def _at_bound(self, theta: torch.Tensor, group: dict[str, Any], index: int) -> torch.Tensor | None:
        """Per variable of θ, whether it sits at Π's bound (``None``: the family has no bound)."""
        return None

    # -- param groups ---------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group, validating its parameters and options; a bad group is not added."""
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
                raise ValueError(
                    f"{self.param_symbol} must be a floating-point tensor, but got dtype={p.dtype}."
                )
            self._check_domain(p.detach())
        self._check_options(group)

    @torch.no_grad()
    def at_bound(self) -> dict[torch.Tensor, torch.Tensor]:
        """For each parameter whose family clips θ, a boolean per variable: its most likely value
        has the largest probability the projection Π allows (θ equals Π of the mode's one-hot
        vertex). Such a probability, and a p(mode) made of them, is set by θmin, not by evidence
        (:func:`bayesnas.analysis.diagnostics.at_clip_bound`)."""
        out = {}
        for group in self.param_groups:
            for index, p in enumerate(group["params"]):
                mask = self._at_bound(p, group, index)
                if mask is not None:
                    out[p] = mask
        return out

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

    def _step_group(self, group: dict[str, Any]) -> bool:
        """Step every parameter of ``group`` that has a gradient; returns whether any had one."""
        params = group["params"]
        # Checked up front, so that a bad gradient leaves the whole group untouched.
        if any(p.grad is not None and p.grad.is_sparse for p in params):
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients.")
        stepped = False
        for index, p in enumerate(params):
            if p.grad is None:
                continue
            natural = self._natural_gradient(p, p.grad, group, index)
            self._observe(p, natural, group, index)
            p.copy_(self._project(p.sub(natural, alpha=self._step_size(group, index)), group, index))
            state = self.state[p]
            state["step"] = state.get("step", 0) + 1
            stepped = True
        return stepped


class AdaptiveNaturalGradient(NaturalGradientOptimizer):
    """Natural gradient with the default η of the papers or the adaptive η of pdas2019 app. C.

    The base of the Bernoulli, shared-rate and categorical optimizers. Subclasses add the
    family's domain check, options, inverse Fisher and projection, and the F^{1/2}-image used by
    the adaptive step size and the number of free parameters Σ(K − 1).

    Options common to these families (keyword-only, per param group):

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

    In adaptive mode a parameter without a gradient keeps its stored slice of s, which still
    counts in ‖s‖² since s is the group's vector; η is not updated when no parameter of the
    group has a gradient.
    """

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
    def _check_family_options(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _num_free(self, group: dict[str, Any]) -> int:
        """Σᵢ(Kᵢ − 1) over the group (the number of bits for Bernoulli θ)."""
        raise NotImplementedError

    def _fisher_sqrt_image(
        self, theta: torch.Tensor, delta: torch.Tensor, group: dict[str, Any], index: int
    ) -> torch.Tensor:
        """v with ‖v‖² = Δθᵀ F(θ) Δθ (pdas2019 app. C eq. (14))."""
        raise NotImplementedError

    # -- options --------------------------------------------------------------------------------
    def _check_options(self, group: dict[str, Any]) -> None:
        """Validate the options and resolve the default η and ηmax."""
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

    # -- adaptive step size (pdas2019 app. C) ---------------------------------------------------
    def _observe(
        self, theta: torch.Tensor, natural: torch.Tensor, group: dict[str, Any], index: int
    ) -> None:
        """Accumulate θ's slice of the evolution path s (adaptive groups only)."""
        if not group["adaptive"]:
            return
        trace = F.fisher_trace(self._num_free(group), group["num_samples"])
        # Δθ = −natural is the estimated ascent direction (app. C), v its F^{1/2}-image.
        v = self._fisher_sqrt_image(theta, natural.neg(), group, index)
        state = self.state[theta]
        s = state.get("s")
        state["s"] = F.evolution_path_update(
            torch.zeros_like(v) if s is None else s, v, lr=float(group["lr"]), trace=trace
        )

    def _step_group(self, group: dict[str, Any]) -> bool:
        lr = float(group["lr"])  # the η of this step, which the adaptive update replaces
        stepped = super()._step_group(group)
        if group["adaptive"] and stepped:
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
        return stepped
