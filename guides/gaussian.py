"""A Gaussian search distribution over ordered integer arch sites (nes2019).

nes2019 perturbs the architecture hyper-parameters H by Gaussian noise, ``⌊H + n⌋`` with
``n ~ N(0, σ)`` (eqs. 6, 8), and moves H by the NES gradient (eqs. 7, 9). Read as a search
distribution, that is ``x ~ N(μ, σ²)`` per hyper-parameter with mean μ = H, rounded down by
the model (:func:`bayesnas.sites.integer`): this guide. Its θ is μ, in *grid coordinates*
(the index of a value on the site's grid, :class:`bayesnas.sites.IntegerGrid`), so σ is in
grid steps for every site — nes2019 app. B starts it at 1.25 — and the site's sampled value
is ``low + step · x`` in the site's own units.

For a fixed σ, μ is the Gaussian's expectation parameter and its Fisher information is
1/σ², so the natural gradient of the score-function surrogate is ``σ² ∇μ`` (the design's key
identity), which :class:`bayesnas.optim.GaussianNaturalGradient` applies.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pyro.distributions as dist
import torch
from torch import nn

from bayesnas.guides.base import ExpectationGuide, _init_value
from bayesnas.sites import SiteSpec

__all__ = ["DEFAULT_SIGMA", "GaussianGuide"]

#: nes2019 app. B: "the deviation σ of the gaussian kernel ... is initialized with 1.25".
DEFAULT_SIGMA = 1.25

_LOG_2PI_E = math.log(2.0 * math.pi) + 1.0


def _check_sigma(sigma: Any) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not (
        math.isfinite(sigma) and sigma > 0
    ):
        raise ValueError(f"`sigma` must be a positive finite number (grid steps), but got sigma={sigma!r}.")
    return float(sigma)


class GaussianGuide(ExpectationGuide):
    """x ~ N(μ, σ²) per integer hyper-parameter, in grid coordinates (nes2019 eqs. 6–9).

    Args:
        sites: the "gaussian-integer" arch sites (:func:`bayesnas.sites.integer`).
        init: the initial μ per site in the sites' own units (a value, or a mapping site →
            value / array); default each site's ``base``, the base architecture (nes2019
            alg. 1 line 1), or its lowest value.
        sigma: σ in grid steps, shared by every site (default 1.25, nes2019 app. B); a
            schedule changes it with :meth:`set_sigma`. With ``adapt_sigma``, the initial σ of
            every hyper-parameter.
        adapt_sigma: beyond nes2019: give every hyper-parameter its own variance σ², learnt
            by the natural gradient along with μ (the Gaussian in expectation parameters, as
            the mixed-variable ASNG treats its integer part; :class:`GaussianNaturalGradient`)
            instead of a schedule. The utility's scale stays the initial σ.
        learnable: ``False`` holds μ (and σ²) fixed.
    """

    family = "gaussian-integer"
    theta_field = "mu"

    def __init__(
        self,
        sites: Mapping[str, SiteSpec] | Iterable[SiteSpec],
        *,
        init: float | Mapping[str, Any] | None = None,
        sigma: float = DEFAULT_SIGMA,
        adapt_sigma: bool = False,
        learnable: bool = True,
    ) -> None:
        super().__init__(sites)
        dtype = torch.get_default_dtype()
        if not isinstance(adapt_sigma, bool):
            raise ValueError(f"`adapt_sigma` must be a bool, but got adapt_sigma={adapt_sigma!r}.")
        self.register_buffer("sigma", torch.tensor(_check_sigma(sigma), dtype=dtype))
        self.adapt_sigma = adapt_sigma
        #: with ``adapt_sigma``: σ² per hyper-parameter and site (grid steps²), else empty.
        self.variances = nn.ParameterList()
        for name, spec in self.specs.items():
            grid = spec.grid
            default = grid.low + grid.step * grid.base_index()
            value = torch.as_tensor(_init_value(init, name, default), dtype=dtype).expand(spec.shape).clone()
            if not bool(((value >= grid.low) & (value <= grid.high)).all()):
                raise ValueError(f"Initial μ of site {name!r} must lie in [{grid.low}, {grid.high}], but got "
                                 f"{value.tolist()}.")
            self.thetas.append(nn.Parameter(grid.coordinate(value), requires_grad=learnable))
            if adapt_sigma:
                self.variances.append(nn.Parameter(torch.full(spec.shape, float(sigma) ** 2, dtype=dtype),
                                                   requires_grad=learnable))

    def set_sigma(self, sigma: float) -> None:
        """Set σ (grid steps), e.g. from nes2019's schedule, 1.25 decaying linearly to 0."""
        if self.adapt_sigma:
            raise ValueError("This guide learns σ² per hyper-parameter (adapt_sigma=True): it has no σ to "
                             "set.")
        self.sigma.fill_(_check_sigma(sigma))

    def scale_of(self, name: str) -> torch.Tensor:
        """σ of every hyper-parameter of a site, in grid steps (differentiable in σ² when adapted)."""
        mu = self.theta(name)
        if self.adapt_sigma:
            return self.variances[self.site_names.index(name)].sqrt()
        return self.sigma.expand(mu.shape)

    def utility_sigma(self) -> float:
        """The σ that scales the NES utility −ΔL/σ (:class:`bayesnas.infer.NESLoss`): the current
        one, or with ``adapt_sigma`` the initial one (a constant normaliser)."""
        return float(self.sigma)

    # -- family-specific ----------------------------------------------------------------
    def distribution(self, name: str) -> dist.Distribution:
        grid, mu = self.specs[name].grid, self.theta(name)
        loc = grid.low + grid.step * mu
        scale = grid.step * self.scale_of(name)
        # A score-function estimator's sample is a constant: no reparameterized draw.
        return dist.Normal(loc, scale).has_rsample_(False).to_event(mu.dim())

    def mode_of(self, name: str) -> torch.Tensor:
        """The value ⌊μ⌋ rounds down to (nes2019 §4.1: the final architecture, re-trained)."""
        grid = self.specs[name].grid
        return grid.value(grid.index(self.theta(name))).to(self.theta(name).dtype)

    def entropy_of(self, name: str) -> torch.Tensor:
        """Differential entropy ½(log 2π + 1) + log σ of each x, in nats, in grid steps."""
        return (0.5 * _LOG_2PI_E + torch.log(self.scale_of(name))).detach()

    def summary(self) -> dict[str, Any]:
        """Per site the entry :class:`bayesnas.analysis.GaussianIntegerMarginal` reads (μ and σ
        in the site's units, the grid), plus μ in grid coordinates, σ in grid steps, the
        base value and the mode ⌊μ⌋."""
        out: dict[str, Any] = {}
        for name, spec in self.specs.items():
            grid, mu = spec.grid, self.theta(name).detach()
            sigma = self.scale_of(name).detach()
            out[name] = {
                "family": "gaussian-integer",
                "shape": list(spec.shape),
                "mu": (grid.low + grid.step * mu).cpu().tolist(),
                "sigma": (grid.step * sigma).cpu().tolist(),
                "low": grid.low,
                "high": grid.high,
                "step": grid.step,
                "base": grid.base,
                "mu_grid": mu.cpu().tolist(),
                "sigma_steps": sigma.cpu().tolist(),
                "mode": self.mode_of(name).cpu().tolist(),
                "entropy": float(self.entropy_of(name).sum()),
            }
        return out

    def arch_parameters(self) -> list[nn.Parameter]:
        """μ (and with ``adapt_sigma`` σ²) of every site, the tensors the optimizer steps."""
        return [p for p in (*self.thetas, *self.variances) if p.requires_grad]

    def _site_fields(self) -> dict[str, tuple[str, str]]:
        """State keys ``sites.<site>.mu`` (grid coordinates) and, with ``adapt_sigma``,
        ``sites.<site>.variance``; the shared σ stays ``sigma``."""
        variances = {f"variances.{i}": (name, "variance") for i, name in enumerate(self.specs)}
        return {**super()._site_fields(), **(variances if self.adapt_sigma else {})}

    def make_optimizers(self, **kwargs: Any) -> list[torch.optim.Optimizer]:
        """:class:`~bayesnas.optim.GaussianNaturalGradient` over μ, one param group per site
        with its grid's bounds, at the guide's current σ — with ``adapt_sigma``, each group
        ``[μ, σ²]`` (``kwargs``: ``lr`` = α, ``sigma_lr``, ...)."""
        from bayesnas.optim import GaussianNaturalGradient

        groups = []
        for i, (spec, mu) in enumerate(zip(self.specs.values(), self.thetas, strict=True)):
            if not mu.requires_grad:
                continue
            group: dict[str, Any] = {"params": [mu], "upper": float(spec.grid.size - 1)}
            if self.adapt_sigma:
                group.update(params=[mu, self.variances[i]], adapt_sigma=True)
            groups.append(group)
        if not groups:
            return []
        return [GaussianNaturalGradient(groups, sigma=float(self.sigma), **kwargs)]

    @property
    def optimizer_class(self) -> type[torch.optim.Optimizer]:
        from bayesnas.optim import GaussianNaturalGradient

        return GaussianNaturalGradient
