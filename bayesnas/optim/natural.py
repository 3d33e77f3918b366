"""Natural-gradient optimizers over expectation parameters θ (torch.optim contract)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from bayesnas.optim import functional as Fn


def _check_positive(name: str, value: float | None) -> None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise ValueError(f"`{name}` must be positive, but got {name}={value}.")


class _NaturalGradient(torch.optim.Optimizer):
    """θ ← Π(θ − η F(θ)⁻¹ ∇θ surrogate), optionally with the adaptive η of pdas2019 app. C.

    ``p.grad`` must hold the Euclidean gradient of the surrogate (see
    :class:`bayesnas.infer.RankingNaturalGradientLoss`). Subclasses give the family's inverse
    Fisher, its projection Π and the number of free parameters Σ(K−1).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        *,
        lr: float | None = None,
        adaptive: bool = False,
        alpha: float = 1.5,
        lr_min: float = 0.0,
        lr_max: float | None = None,
        num_samples: int = 2,
    ) -> None:
        _check_positive("lr", lr)
        _check_positive("alpha", alpha)
        _check_positive("lr_max", lr_max)
        if lr_max is not None and lr_max > 2:
            raise ValueError(f"`lr_max` must be <= 2 (η(2−η) ≥ 0), but got lr_max={lr_max}.")
        if lr_min < 0:
            raise ValueError(f"`lr_min` must be >= 0, but got lr_min={lr_min}.")
        if num_samples < 2:
            raise ValueError(f"`num_samples` (λ) must be >= 2, but got num_samples={num_samples}.")
        defaults = dict(lr=lr, adaptive=adaptive, alpha=alpha, lr_min=lr_min, lr_max=lr_max,
                        num_samples=num_samples, gamma=0.0)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._check_domain(p.detach())
            free = self._free_parameters(group)
            if group["lr_max"] is None:
                group["lr_max"] = free ** -0.5  # ηmax = (Σ(K−1))^(−1/2), pdas2019 app. C
            if group["lr"] is None:
                # Adaptive: η⁰ = ηmax (app. C). Otherwise 1/Σ(K−1) (pdas2019 §2; 1/d for Bernoulli).
                group["lr"] = group["lr_max"] if adaptive else 1.0 / free

    # -- family hooks ------------------------------------------------------------------
    def _check_domain(self, theta: torch.Tensor) -> None:
        raise NotImplementedError

    def _free_parameters(self, group: dict) -> int:
        raise NotImplementedError

    def _natural(self, theta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _project(self, theta: torch.Tensor, group: dict) -> None:
        raise NotImplementedError

    def _full(self, theta: torch.Tensor) -> torch.Tensor:
        """θ as (..., K) rows (Bernoulli: (1−θ, θ) is not needed; see subclasses)."""
        raise NotImplementedError

    # -- step ----------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr = group["lr"]
            s_norm_sq, any_grad = 0.0, False
            for p in group["params"]:
                if p.grad is None:
                    continue
                any_grad = True
                natural = self._natural(p, p.grad)
                state = self.state[p]
                state["step"] = state.get("step", 0) + 1
                if group["adaptive"]:
                    # Δθ is the ascent direction −natural; v its F^{1/2}-image (app. C eq. 14).
                    v = Fn.fisher_sqrt_image(self._full(p), self._full_delta(p, -natural))
                    s = state.get("s")
                    if s is None:
                        s = torch.zeros_like(v)
                    beta = min(lr, 2.0)
                    s = (1 - beta) * s + math.sqrt(beta * (2 - beta)) * v / math.sqrt(
                        self._trace_fcov(group)
                    )
                    state["s"] = s
                    s_norm_sq += float((s * s).sum())
                p.sub_(lr * natural)
                self._project(p, group)
            if group["adaptive"] and any_grad:
                group["lr"], group["gamma"] = Fn.adaptive_lr_update(
                    lr=lr, gamma=group["gamma"], s_norm_sq=s_norm_sq, alpha=group["alpha"],
                    lr_min=group["lr_min"], lr_max=group["lr_max"],
                )
        return loss

    def _trace_fcov(self, group: dict) -> float:
        """Tr(F Cov[Δθ]) = (Σu²/λ²) Σ(K−1), ⌈λ/4⌉ utilities of ±1 (½Σ(K−1) for λ = 2)."""
        lam = group["num_samples"]
        return 2 * math.ceil(lam / 4) / lam**2 * self._free_parameters(group)


class BernoulliNaturalGradient(_NaturalGradient):
    """Stochastic natural gradient for Bernoulli θ (shirakawa2018 eq. 9, saito2018 eq. 7).

    θ ← clip(θ − η θ(1−θ)⊙∇, [1/d, 1−1/d]); default η = 1/d (saito2018 §4), d the number of
    bits in the group (or ``dim``). ``theta_min`` replaces the lower bound 1/d (the range is
    [theta_min, 1 − theta_min]); it is required when d < 3, where [1/d, 1 − 1/d] is degenerate.
    ``adaptive=True``: the step size of pdas2019 app. C with
    K = 2.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        *,
        dim: int | None = None,
        theta_min: float | None = None,
        **kwargs,
    ) -> None:
        if dim is not None and dim < 1:
            raise ValueError(f"`dim` must be >= 1, but got dim={dim}.")
        if theta_min is not None and not 0 < theta_min < 0.5:
            raise ValueError(f"`theta_min` must lie in (0, 0.5), but got theta_min={theta_min}.")
        self._dim = dim
        self._theta_min = theta_min
        super().__init__(params, **kwargs)
        if theta_min is None and any(self._free_parameters(g) < 3 for g in self.param_groups):
            d = min(self._free_parameters(g) for g in self.param_groups)
            raise ValueError(
                f"The clipping range [1/d, 1 - 1/d] needs d >= 3 bits to be non-degenerate, but "
                f"got d={d}; pass theta_min (e.g. theta_min=0.05) to set the range explicitly."
            )

    def _check_domain(self, theta: torch.Tensor) -> None:
        if theta.numel() and (float(theta.min()) < 0 or float(theta.max()) > 1):
            raise ValueError(
                "θ must lie in [0, 1], but got values in "
                f"[{float(theta.min())}, {float(theta.max())}]."
            )

    def _free_parameters(self, group: dict) -> int:
        return self._dim or sum(p.numel() for p in group["params"])

    def _natural(self, theta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return Fn.bernoulli_natural_gradient(theta, grad)

    def _project(self, theta: torch.Tensor, group: dict) -> None:
        low = self._theta_min or 1.0 / self._free_parameters(group)
        Fn.project_bernoulli(theta, low)

    def _full(self, theta: torch.Tensor) -> torch.Tensor:
        return torch.stack([theta, 1 - theta], -1)  # reduced θ̄ = θ, θ_K = 1 − θ

    def _full_delta(self, theta: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return torch.stack([delta, -delta], -1)


class CategoricalNaturalGradient(_NaturalGradient):
    """Stochastic natural gradient for categorical θ of shape (..., K) (pdas2019 eq. 4).

    Default η = 1/Σ(K_i−1) (pdas2019 §2); after each step the projection of app. B with
    θmin = 1/(D(K−1)), D the number of categorical variables in the group (or
    ``num_variables``). ``adaptive=True``: the step size of app. C.
    """

    def __init__(
        self, params: Iterable[torch.Tensor], *, num_variables: int | None = None, **kwargs
    ) -> None:
        if num_variables is not None and num_variables < 1:
            raise ValueError(f"`num_variables` must be >= 1, but got num_variables={num_variables}.")
        self._num_variables = num_variables
        super().__init__(params, **kwargs)

    def _check_domain(self, theta: torch.Tensor) -> None:
        if theta.dim() < 1 or theta.shape[-1] < 2:
            raise ValueError(
                f"Categorical θ needs a last dimension K >= 2, but got shape {tuple(theta.shape)}."
            )
        sums = theta.sum(-1)
        if bool((theta < 0).any()) or not torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
            raise ValueError(
                "Categorical θ rows must be non-negative and sum to 1, but got row sums "
                f"{sums.flatten().tolist()[:8]} and min {float(theta.min())}."
            )

    def _variables(self, group: dict) -> int:
        return self._num_variables or sum(p.numel() // p.shape[-1] for p in group["params"])

    def _free_parameters(self, group: dict) -> int:
        return sum(p.numel() // p.shape[-1] * (p.shape[-1] - 1) for p in group["params"])

    def _natural(self, theta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return Fn.categorical_natural_gradient(theta, grad)

    def _project(self, theta: torch.Tensor, group: dict) -> None:
        k = theta.shape[-1]
        Fn.project_categorical(theta, 1.0 / (self._variables(group) * (k - 1)))

    def _full(self, theta: torch.Tensor) -> torch.Tensor:
        return theta

    def _full_delta(self, theta: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return delta
