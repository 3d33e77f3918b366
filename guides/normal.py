"""Mean-field Normal guides of vinnas2020: over op strengths α and over network weights w.

vinnas2020 §IV-A, eq. 5: ``q(α) = Π N(μ_α, σ²_α)`` and ``q(w) = Π N(μ_w, σ²_w)``, both against
the log-uniform prior of eq. 4. "The variance parameters are optimised as logarithms"
(§IV-C), so each site holds μ and log σ², and "all the log-variances" start at −10 (§V-A).
Every site is sampled directly from ``dist.Normal(μ, exp(½ log σ²))`` (DESIGN.md: no auxiliary
Normal + Delta), so ``TraceMeanField_ELBO`` finds the registered analytic
KL(Normal ‖ LogUniform) (the γ₁/γ₂ terms of eq. 8) and
:func:`bayesnas.handlers.local_reparameterization` sees the Normal of every weight.

Training: the parameters are plain ``nn.Parameter`` tensors (like θ of the other guides), not
Pyro params, so step them with :meth:`NormalGuide.make_optimizers` (Adam, as vinnas2020 §V-A)
after ``TraceMeanField_ELBO().differentiable_loss(model, guide, ...)``. For ``pyro.infer.SVI``
to step them instead, register the guide first: ``pyro.module("arch_guide", guide)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from bayesnas.guides.base import ExpectationGuide, _init_value
from bayesnas.guides.state import NamedSiteState
from bayesnas.nn.parameter_layout import ParameterLayout
from bayesnas.sites import SiteSpec

__all__ = ["DEFAULT_LOG_SIGMA2", "NormalGuide", "NormalWeightGuide"]

#: vinnas2020 §V-A: "We initialise all the log-variances to −10."
DEFAULT_LOG_SIGMA2 = -10.0

_LOG_2PI_E = math.log(2.0 * math.pi) + 1.0


def _finite(value: torch.Tensor, what: str, name: str) -> torch.Tensor:
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"`{what}` of site {name!r} must be finite, but got {value.tolist()}.")
    return value


def _check_lr(lr: float) -> None:
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"`lr` must be a positive finite number, but got lr={lr!r}.")


class NormalGuide(ExpectationGuide):
    """q(α) = Π N(μ, σ²) over the op strengths of "normal" arch sites (vinnas2020 eq. 5).

    θ of the base class is μ = E_q[α] (so :meth:`expected_cost` is E_q[Σ c·α]); log σ² sits
    beside it in :attr:`log_sigma2s`. Both are stepped by Adam (:meth:`make_optimizers`).

    Args:
        sites: the "normal" arch sites (:func:`bayesnas.sites.normal_strength`).
        init_loc: the centre of the initial μ, a float or a mapping site → float/array.
        init_loc_std: the standard deviation of the noise added to it; vinnas2020 §V-A
            initialises "µα through sampling N(0., 0.001)", read here, as in DARTS' code, as
            a standard deviation of 1e-3. ``0`` gives μ = ``init_loc`` exactly.
        init_log_sigma2: initial log σ², a float or mapping (default −10, vinnas2020 §V-A).
        generator: the random generator of the μ noise (default: torch's global one).
        learnable: ``False`` holds μ and log σ² fixed.
    """

    family = "normal"
    theta_field = "loc"

    def __init__(
        self,
        sites: Mapping[str, SiteSpec] | Iterable[SiteSpec],
        *,
        init_loc: float | Mapping[str, Any] = 0.0,
        init_loc_std: float = 1e-3,
        init_log_sigma2: float | Mapping[str, Any] = DEFAULT_LOG_SIGMA2,
        generator: torch.Generator | None = None,
        learnable: bool = True,
    ) -> None:
        super().__init__(sites)
        if not (init_loc_std >= 0 and math.isfinite(init_loc_std)):
            raise ValueError(f"`init_loc_std` must be finite and >= 0, but got init_loc_std={init_loc_std}.")
        self.log_sigma2s = nn.ParameterList()
        dtype = torch.get_default_dtype()
        for name, spec in self.specs.items():
            loc = torch.as_tensor(_init_value(init_loc, name, 0.0), dtype=dtype).expand(spec.shape).clone()
            if init_loc_std > 0:
                loc = loc + init_loc_std * torch.randn(spec.shape, generator=generator, dtype=dtype)
            log_sigma2 = torch.as_tensor(_init_value(init_log_sigma2, name, DEFAULT_LOG_SIGMA2), dtype=dtype)
            log_sigma2 = log_sigma2.expand(spec.shape).clone()
            self.thetas.append(nn.Parameter(_finite(loc, "init_loc", name), requires_grad=learnable))
            self.log_sigma2s.append(
                nn.Parameter(_finite(log_sigma2, "init_log_sigma2", name), requires_grad=learnable)
            )

    # -- parameters ---------------------------------------------------------------------
    def loc(self, name: str) -> torch.Tensor:
        """μ of a site (the same tensor as :meth:`theta`)."""
        return self.theta(name)

    def log_sigma2(self, name: str) -> torch.Tensor:
        """log σ² of a site (vinnas2020 §IV-C: variances are optimised as logarithms)."""
        self.theta(name)  # an unknown name raises the KeyError that lists the known sites
        return self.log_sigma2s[self.site_names.index(name)]

    def scale(self, name: str) -> torch.Tensor:
        """σ = exp(½ log σ²), differentiable in log σ²."""
        return torch.exp(0.5 * self.log_sigma2(name))

    def arch_parameters(self) -> list[nn.Parameter]:
        """μ and log σ² of every site (those that are learnable), the tensors Adam steps."""
        pairs = zip(self.thetas, self.log_sigma2s, strict=True)
        return [p for pair in pairs for p in pair if p.requires_grad]

    def _site_fields(self) -> dict[str, tuple[str, str]]:
        """State keys ``sites.<site>.loc`` (μ) and ``sites.<site>.log_sigma2``."""
        log_sigma2s = {f"log_sigma2s.{i}": (name, "log_sigma2") for i, name in enumerate(self.specs)}
        return {**super()._site_fields(), **log_sigma2s}

    # -- family-specific ----------------------------------------------------------------
    def distribution(self, name: str) -> dist.Distribution:
        loc = self.loc(name)
        return dist.Normal(loc, self.scale(name)).to_event(loc.dim())

    def mode_of(self, name: str) -> torch.Tensor:
        """μ: the most likely α (and the value vinnas2020 evaluates the supergraph at)."""
        return self.loc(name).detach()

    def entropy_of(self, name: str) -> torch.Tensor:
        """Differential entropy ½(log 2π + 1 + log σ²) of every α, in nats (may be negative)."""
        return 0.5 * (_LOG_2PI_E + self.log_sigma2(name).detach())

    def snr(self, name: str) -> torch.Tensor:
        """The positive signal-to-noise ratio μ/σ² of every op (vinnas2020 §IV-C)."""
        return (self.loc(name) * torch.exp(-self.log_sigma2(name))).detach()

    def select(self) -> dict[str, torch.Tensor]:
        """vinnas2020 alg. 1, line 21: on every edge, the op of largest positive SNR μ/σ²."""
        return {name: self.snr(name).argmax(-1) for name in self.specs}

    def summary(self) -> dict[str, Any]:
        """μ, σ and log σ² per site, in the format of
        :class:`bayesnas.analysis.marginals.NormalStrengthMarginal` (``shape`` is the shape of
        its decisions, the edges ``shape[:-1]``; ``choices`` the K op names)."""
        out: dict[str, Any] = {}
        for name, spec in self.specs.items():
            entry: dict[str, Any] = {
                "family": self.family,
                "shape": list(spec.shape[:-1]),
                "mu": self.loc(name).detach().cpu().tolist(),
                "sigma": self.scale(name).detach().cpu().tolist(),
                "log_sigma2": self.log_sigma2(name).detach().cpu().tolist(),
            }
            if spec.choices:
                entry["choices"] = list(spec.choices)
            if spec.edges:
                entry["edges"] = [list(e) for e in spec.edges]
            out[name] = entry
        return out

    def make_optimizers(self, *, lr: float = 3e-4, **adam_kwargs: Any) -> list[torch.optim.Optimizer]:
        """Adam over μ and log σ² (vinnas2020 §V-A: Adam, the architecture's learning rate
        kept constant). The paper gives no value; the default 3e-4 is DARTS' architecture rate,
        on which vinnas2020 builds. ``adam_kwargs`` go to ``torch.optim.Adam``."""
        _check_lr(lr)
        params = self.arch_parameters()
        return [torch.optim.Adam(params, lr=lr, **adam_kwargs)] if params else []

    @property
    def optimizer_class(self) -> type[torch.optim.Optimizer]:
        return torch.optim.Adam


class NormalWeightGuide(NamedSiteState):
    """q(w) = Π N(μ_w, σ²_w) over the parameters of an ``nn.Module`` (vinnas2020 eq. 5).

    Per tensor (default): one Normal site per parameter of ``module``, named
    ``f"{prefix}.{param_name}"`` (or the bare parameter name without a prefix), the names
    ``pyro.nn.PyroModule`` gives a module's ``PyroSample`` attributes: the model declares each
    as ``PyroSample(LogUniform(p.shape).to_event(p.dim()))`` (eq. 4) and uses it through
    :mod:`bayesnas.nn.lrt`.

    Flat (``flat=True``): one site named ``prefix`` over all the covered parameters,
    flattened and concatenated in order (:class:`bayesnas.nn.parameter_layout.ParameterLayout`);
    the model declares ``pyro.sample(prefix, LogUniform((n,)).to_event(1))`` and splits it with
    the same layout (:meth:`weights`). Same q(w), same KL, one site instead of one per tensor:
    the per-site tracing, replay and KL were a third of a VINNAS search step on CPU.

    μ starts at the module's own initial values (vinnas2020 §V-A uses Xavier uniform for the
    means: initialise the module so), log σ² at −10. The sites are weights, not arch sites:
    run this guide outside the arch plate.

    ``state_dict()`` keys μ and log σ² by site, ``sites.<site>.loc`` / ``sites.<site>.log_sigma2``
    (:mod:`bayesnas.guides.state`).

    Minimal by design: every parameter of the module (or those named in ``include``) is
    covered; layers whose forward does not go through :mod:`bayesnas.nn.lrt` still work with
    the sampled weight, without the variance reduction of the LRT.

    Args:
        module: the network whose parameters become Bayesian.
        prefix: the site-name prefix (the ``PyroModule`` name of ``module``, "" for the root);
            with ``flat=True`` the name of the one site (not empty).
        include: the parameter names to cover (default: all of ``named_parameters()``).
        init_log_sigma2: initial log σ² of every weight (default −10).
        flat: one site over all the weights instead of one per tensor.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        prefix: str = "",
        include: Iterable[str] | None = None,
        init_log_sigma2: float = DEFAULT_LOG_SIGMA2,
        flat: bool = False,
    ) -> None:
        super().__init__()
        if not math.isfinite(init_log_sigma2):
            raise ValueError(f"`init_log_sigma2` must be finite, but got init_log_sigma2={init_log_sigma2}.")
        if flat and not prefix:
            raise ValueError("With flat=True, `prefix` names the one weight site and must not be empty, "
                             f"but got prefix={prefix!r}.")
        self.layout = ParameterLayout(module, include=include)
        if not self.layout.names:
            raise ValueError("NormalWeightGuide needs at least one parameter, but the module has none.")
        self.prefix, self.flat = prefix, bool(flat)
        self.param_names = self.layout.names
        params = {n: p.detach() for n, p in module.named_parameters()}
        init = [self.layout.flatten(params)] if flat else [params[n] for n in self.param_names]
        # Site i ↔ self.site_names[i] (ParameterDict keys cannot contain ".").
        self.locs = nn.ParameterList(nn.Parameter(t.clone()) for t in init)
        self.log_sigma2s = nn.ParameterList(
            nn.Parameter(torch.full_like(t, float(init_log_sigma2))) for t in init
        )

    def _site_fields(self) -> dict[str, tuple[str, str]]:
        """State keys ``sites.<site>.loc`` and ``sites.<site>.log_sigma2`` (site i ↔ entry i)."""
        names = self.site_names
        return {
            **{f"locs.{i}": (site, "loc") for i, site in enumerate(names)},
            **{f"log_sigma2s.{i}": (site, "log_sigma2") for i, site in enumerate(names)},
        }

    def site_name(self, param_name: str) -> str:
        """The site that holds a parameter (with ``flat=True``, the one site)."""
        if self.flat:
            return self.prefix
        return f"{self.prefix}.{param_name}" if self.prefix else param_name

    @property
    def site_names(self) -> list[str]:
        return [self.prefix] if self.flat else [self.site_name(n) for n in self.param_names]

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Sample every site directly from its Normal (the LRT handler sees μ and σ); returns
        ``site → draw``."""
        out = {}
        for site, loc, log_sigma2 in zip(self.site_names, self.locs, self.log_sigma2s, strict=True):
            fn = dist.Normal(loc, torch.exp(0.5 * log_sigma2)).to_event(loc.dim())
            out[site] = pyro.sample(site, fn)
        return out

    def weights(self, draws: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``parameter name → tensor`` from ``site → value`` (a draw of :meth:`forward`, or
        :meth:`mode`), ready for ``torch.func.functional_call``."""
        if self.flat:
            return self.layout.unflatten(draws[self.prefix])
        return {n: draws[self.site_name(n)] for n in self.param_names}

    def mode(self) -> dict[str, torch.Tensor]:
        """μ of every site (vinnas2020 §IV-B evaluates the network at the means)."""
        return {site: loc.detach() for site, loc in zip(self.site_names, self.locs, strict=True)}

    def make_optimizers(self, *, lr: float = 1e-3, **adam_kwargs: Any) -> list[torch.optim.Optimizer]:
        """Adam over μ_w and log σ²_w (vinnas2020 §V-A; the paper gives no rate, 1e-3 is
        Adam's own default)."""
        _check_lr(lr)
        return [torch.optim.Adam([*self.locs, *self.log_sigma2s], lr=lr, **adam_kwargs)]
