"""Per-site posterior marginals: one discrete view of every guide family.

Every architecture site, whatever its family, ends up as a *decision* per variable: a bit,
an op index, an integer width, the winning op of an edge. A :class:`SiteMarginal` holds the
marginal probabilities of those decisions, ``probs`` of shape ``(*shape, V)`` over ``V``
values, plus the family's own parameters. Entropy, the most likely architecture, the ranked
credible set, convergence and collapse statistics and the plots are then written once, for
the discrete view, and hold for every family:

==================  ==================================  ====================================
family              parameters (``posterior.json``)     decision of one variable
==================  ==================================  ====================================
bernoulli           θ = P(m = 1)                        m ∈ {0, 1}
shared-bernoulli    one θ per group of ``group_size``   each unit's m ∈ {0, 1} (θ shared)
categorical         θ on the simplex, ``choices``       the op index
gaussian-integer    μ, σ, ``low``, ``high``             ⌊x⌋ clipped to [low, high], x ~ N(μ, σ²)
normal              μ, σ per op (``choices``)            the op whose strength α ~ N(μ, σ²) wins
fixed               ``value``                           the value itself (a point mass)
==================  ==================================  ====================================

A family names its marginal class (:class:`bayesnas.families.Family.marginal`);
:func:`marginal_from_summary` reads the entries a guide's ``summary()`` writes to
``posterior.json`` through it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch

from bayesnas.analysis.winner import winner_probabilities

__all__ = [
    "SiteMarginal",
    "BernoulliMarginal",
    "SharedBernoulliMarginal",
    "CategoricalMarginal",
    "GaussianIntegerMarginal",
    "NormalStrengthMarginal",
    "FixedMarginal",
    "marginal_from_summary",
]

_DTYPE = torch.float64  # analysis runs on the CPU in double precision: no rounding surprises


def _tensor(x: Any) -> torch.Tensor:
    return torch.as_tensor(x, dtype=_DTYPE).detach().cpu()


class SiteMarginal:
    """Marginal probabilities of the decisions of one arch site.

    Attributes:
        name: the site name (a key of exported architectures).
        family: the guide family, a key of the registry.
        probs: ``(*shape, V)``, each row a distribution over :attr:`values`.
        values: the ``V`` values a variable takes, as written into an architecture.
        labels: human-readable names of the ``V`` values (op names, "skip"/"layer", widths).
        edges: optional ``(source, target)`` node names per variable (flattened order), for
            cell diagrams; ``None`` draws the variables as a chain.
    """

    family: ClassVar[str] = ""

    def __init__(
        self,
        name: str,
        probs: torch.Tensor,
        values: Sequence[int],
        labels: Sequence[str] | None = None,
        edges: Sequence[Sequence[str]] | None = None,
    ) -> None:
        probs = _tensor(probs)
        if probs.dim() < 1 or probs.shape[-1] != len(values):
            raise ValueError(
                f"Site {name!r}: `probs` must end in the number of values {len(values)}, but got "
                f"shape {tuple(probs.shape)}."
            )
        if bool((probs < -1e-9).any()) or not torch.allclose(
            probs.sum(-1), torch.ones((), dtype=_DTYPE), atol=1e-6
        ):
            raise ValueError(f"Site {name!r}: every row of `probs` must be a distribution.")
        self.name = name
        self.probs = probs.clamp_min(0.0)
        self.values = tuple(int(v) for v in values)
        self.labels = tuple(str(x) for x in labels) if labels else tuple(str(v) for v in self.values)
        if len(self.labels) != len(self.values):
            raise ValueError(
                f"Site {name!r}: {len(self.values)} values need as many labels, but got "
                f"{len(self.labels)}: {list(self.labels)}."
            )
        self.edges = None
        if edges is not None:
            self.edges = [(str(s), str(t)) for s, t in edges]
            if len(self.edges) != self.num_variables:
                raise ValueError(
                    f"Site {name!r} has {self.num_variables} variables, but got "
                    f"{len(self.edges)} edges."
                )

    # -- shape -----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.probs.shape[:-1])

    @property
    def num_variables(self) -> int:
        return int(torch.Size(self.shape).numel())

    def flat_probs(self) -> torch.Tensor:
        """``(num_variables, V)``: one row per variable, in flattened order."""
        return self.probs.reshape(-1, len(self.values))

    # -- uncertainty -----------------------------------------------------------------------
    def entropy(self) -> torch.Tensor:
        """Entropy of each variable's decision in nats, shape :attr:`shape`."""
        p = self.probs
        return -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)

    def max_prob(self) -> torch.Tensor:
        """Probability of each variable's most likely value, shape :attr:`shape`."""
        return self.probs.gather(-1, self.mode_index().unsqueeze(-1)).squeeze(-1)

    def mode_index(self) -> torch.Tensor:
        """Index (into :attr:`values`) of each variable's most likely value."""
        return self.probs.argmax(-1)

    def mode(self) -> torch.Tensor:
        """The most likely value of every variable (the site's value in the mode architecture)."""
        return torch.tensor(self.values)[self.mode_index()]

    def index_of(self, value: Any) -> torch.Tensor:
        """Indices into :attr:`values` of an architecture's value for this site."""
        value = torch.as_tensor(value).long()
        if tuple(value.shape) != self.shape:
            raise ValueError(
                f"Site {self.name!r} has shape {self.shape}, but got a value of shape "
                f"{tuple(value.shape)}."
            )
        table = torch.tensor(self.values)
        match = value.unsqueeze(-1) == table
        if not bool(match.any(-1).all()):
            raise ValueError(
                f"Site {self.name!r} takes values {list(self.values)}, but got {value.tolist()}."
            )
        return match.long().argmax(-1)

    def log_prob(self, value: Any) -> float:
        """log P(site = value) under the product of the marginals."""
        idx = self.index_of(value)
        return float(self.probs.gather(-1, idx.unsqueeze(-1)).log().sum())

    def parameter_stats(self) -> dict[str, torch.Tensor]:
        """The family's own parameters per variable (θ; μ, σ, SNR), for tables and plots."""
        return {}

    def expected_value(self) -> torch.Tensor:
        """E[value] per variable (Σθ for bits; the mean width for integers)."""
        return (self.probs * torch.tensor(self.values, dtype=_DTYPE)).sum(-1)

    # -- serialisation -----------------------------------------------------------------------
    def to_summary(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_summary(cls, name: str, entry: Mapping[str, Any]) -> SiteMarginal:
        raise NotImplementedError

    def _meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {"family": self.family, "shape": list(self.shape)}
        if self.labels != tuple(str(v) for v in self.values):
            out["choices"] = list(self.labels)
        if self.edges is not None:
            out["edges"] = [list(e) for e in self.edges]
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, shape={self.shape}, values={list(self.values)})"


class _ThetaMarginal(SiteMarginal):
    """A family held in expectation parameters θ (a guide of :mod:`bayesnas.guides`)."""

    theta: torch.Tensor

    def parameter_stats(self) -> dict[str, torch.Tensor]:
        return {"theta": self.theta}

    def to_summary(self) -> dict[str, Any]:
        return {**self._meta(), "theta": self.theta.tolist(), "entropy": float(self.entropy().sum())}

    @classmethod
    def from_summary(cls, name: str, entry: Mapping[str, Any]) -> SiteMarginal:
        return cls(name, entry["theta"], labels=entry.get("choices"), edges=entry.get("edges"))


class BernoulliMarginal(_ThetaMarginal):
    """Independent bits, θ = P(m = 1) (shirakawa2018 §2, saito2018 eq. 3)."""

    family = "bernoulli"

    def __init__(
        self,
        name: str,
        theta: Any,
        *,
        labels: Sequence[str] | None = None,
        edges: Sequence[Sequence[str]] | None = None,
    ) -> None:
        self.theta = _tensor(theta)
        if bool(((self.theta < 0) | (self.theta > 1) | self.theta.isnan()).any()):
            raise ValueError(f"Site {name!r}: θ must lie in [0, 1], but got {self.theta.tolist()}.")
        super().__init__(name, torch.stack([1 - self.theta, self.theta], -1), (0, 1), labels, edges)

    def mode_index(self) -> torch.Tensor:
        # m = 1 iff θ ≥ 0.5: the deterministic prediction of shirakawa2018 (ties keep the bit).
        return (self.theta >= 0.5).long()


class SharedBernoulliMarginal(BernoulliMarginal):
    """Bits that share one rate per group (shirakawa2018 §III, a dropout rate per layer).

    ``theta`` has one entry per group; each group has ``group_size`` units, each an
    independent bit with that rate, so the variables are the units, shape ``(*groups, U)``.
    """

    family = "shared-bernoulli"

    def __init__(
        self,
        name: str,
        theta: Any,
        *,
        group_size: int,
        labels: Sequence[str] | None = None,
        edges: Sequence[Sequence[str]] | None = None,
    ) -> None:
        if int(group_size) < 1:
            raise ValueError(f"`group_size` must be >= 1, but got group_size={group_size}.")
        self.group_theta = _tensor(theta)
        self.group_size = int(group_size)
        units = self.group_theta.unsqueeze(-1).expand(*self.group_theta.shape, self.group_size)
        super().__init__(name, units, labels=labels, edges=edges)

    def to_summary(self) -> dict[str, Any]:
        meta = self._meta()
        meta["shape"] = list(self.group_theta.shape)
        return {**meta, "theta": self.group_theta.tolist(), "group_size": self.group_size,
                "entropy": float(self.entropy().sum())}

    @classmethod
    def from_summary(cls, name: str, entry: Mapping[str, Any]) -> SharedBernoulliMarginal:
        return cls(name, entry["theta"], group_size=entry["group_size"],
                   labels=entry.get("choices"), edges=entry.get("edges"))


class CategoricalMarginal(_ThetaMarginal):
    """Independent categorical choices, θ on the simplex (pdas2019 §2)."""

    family = "categorical"

    def __init__(
        self,
        name: str,
        theta: Any,
        *,
        labels: Sequence[str] | None = None,
        edges: Sequence[Sequence[str]] | None = None,
    ) -> None:
        self.theta = _tensor(theta)
        super().__init__(name, self.theta, range(self.theta.shape[-1]), labels, edges)


def _normal_cdf(z: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-z / math.sqrt(2.0))


class GaussianIntegerMarginal(SiteMarginal):
    """Ordered integers drawn as ⌊x⌋, x ~ N(μ, σ²), clipped to [low, high] (nes2019 eq. 6).

    The values are ``low, low + step, ..., high`` (:class:`bayesnas.sites.IntegerGrid`; μ and
    σ in the same units): P(v) = Φ((v + step − μ)/σ) − Φ((v − μ)/σ) inside the range; the tails
    below ``low`` and above ``high`` fall on the bounds, as the weight-sharing network cannot
    be smaller or larger.
    """

    family = "gaussian-integer"

    def __init__(
        self,
        name: str,
        mu: Any,
        sigma: Any,
        *,
        low: int,
        high: int,
        step: int = 1,
        edges: Sequence[Sequence[str]] | None = None,
    ) -> None:
        if int(low) > int(high):
            raise ValueError(f"`low <= high` must hold, but got (low={low}, high={high}).")
        if int(step) < 1 or (int(high) - int(low)) % int(step):
            raise ValueError(f"`step` must be >= 1 and divide `high - low`, but got (low={low}, high={high}, "
                             f"step={step}).")
        self.mu, self.sigma = _tensor(mu), _tensor(sigma)
        if self.mu.shape != self.sigma.shape:
            raise ValueError(
                f"Site {name!r}: μ and σ need one shape, but got {tuple(self.mu.shape)} and "
                f"{tuple(self.sigma.shape)}."
            )
        if bool((self.sigma <= 0).any()):
            raise ValueError(f"Site {name!r}: σ must be positive, but got {self.sigma.tolist()}.")
        self.low, self.high, self.step = int(low), int(high), int(step)
        values = torch.arange(self.low, self.high + 1, self.step, dtype=_DTYPE)
        # CDF at the cell boundaries v and v+1; the outer boundaries take the tails.
        upper = _normal_cdf((values[1:, None] - self.mu.reshape(-1)) / self.sigma.reshape(-1)).T
        ones, zeros = torch.ones_like(upper[:, :1]), torch.zeros_like(upper[:, :1])
        cdf = torch.cat([zeros, upper, ones], -1)
        probs = (cdf[:, 1:] - cdf[:, :-1]).clamp_min(0).reshape(*self.mu.shape, len(values))
        probs = probs / probs.sum(-1, keepdim=True)
        super().__init__(name, probs, range(self.low, self.high + 1, self.step), None, edges)

    def parameter_stats(self) -> dict[str, torch.Tensor]:
        return {"mu": self.mu, "sigma": self.sigma}

    def to_summary(self) -> dict[str, Any]:
        return {**self._meta(), "mu": self.mu.tolist(), "sigma": self.sigma.tolist(),
                "low": self.low, "high": self.high, "step": self.step, "entropy": float(self.entropy().sum())}

    @classmethod
    def from_summary(cls, name: str, entry: Mapping[str, Any]) -> GaussianIntegerMarginal:
        return cls(name, entry["mu"], entry["sigma"], low=entry["low"], high=entry["high"],
                   step=entry.get("step", 1), edges=entry.get("edges"))


class NormalStrengthMarginal(SiteMarginal):
    """Op strengths α ~ N(μ, σ²) per op of each edge (vinnas2020 §IV, a mean-field Normal guide).

    The decision of an edge is the op with the largest α; its probability is estimated by
    Monte Carlo (:func:`~bayesnas.analysis.winner.winner_probabilities`) with a fixed seed, so
    the marginal is reproducible. The positive SNR μ/σ² (vinnas2020 alg. 1, line 21) is in
    :meth:`parameter_stats` and :meth:`snr_selection`.
    """

    family = "normal"

    def __init__(
        self,
        name: str,
        mu: Any,
        sigma: Any,
        *,
        labels: Sequence[str] | None = None,
        edges: Sequence[Sequence[str]] | None = None,
        num_samples: int = 20_000,
        seed: int = 0,
    ) -> None:
        self.mu, self.sigma = _tensor(mu), _tensor(sigma)
        if self.mu.dim() < 1 or self.mu.shape != self.sigma.shape or self.mu.shape[-1] < 2:
            raise ValueError(
                f"Site {name!r}: μ and σ need one shape (*edges, K) with K >= 2 ops, but got "
                f"{tuple(self.mu.shape)} and {tuple(self.sigma.shape)}."
            )
        if bool((self.sigma <= 0).any()):
            raise ValueError(f"Site {name!r}: σ must be positive, but got {self.sigma.tolist()}.")
        self.num_samples, self.seed = int(num_samples), int(seed)
        probs = winner_probabilities(
            self.mu, self.sigma, num_samples=num_samples, generator=torch.Generator().manual_seed(seed)
        )
        super().__init__(name, probs, range(self.mu.shape[-1]), labels, edges)

    @property
    def snr(self) -> torch.Tensor:
        """Positive signal-to-noise ratio μ/σ² of every op (vinnas2020 §IV-C)."""
        return self.mu / self.sigma**2

    def snr_selection(self) -> torch.Tensor:
        """The op of largest positive SNR on every edge: vinnas2020's selection rule."""
        return self.snr.argmax(-1)

    def parameter_stats(self) -> dict[str, torch.Tensor]:
        return {"mu": self.mu, "sigma": self.sigma, "snr": self.snr}

    def to_summary(self) -> dict[str, Any]:
        meta = self._meta()
        meta["shape"] = list(self.shape)
        return {**meta, "mu": self.mu.tolist(), "sigma": self.sigma.tolist(),
                "num_samples": self.num_samples, "seed": self.seed, "entropy": float(self.entropy().sum())}

    @classmethod
    def from_summary(cls, name: str, entry: Mapping[str, Any]) -> NormalStrengthMarginal:
        return cls(name, entry["mu"], entry["sigma"], labels=entry.get("choices"), edges=entry.get("edges"),
                   num_samples=entry.get("num_samples", 20_000), seed=entry.get("seed", 0))


class FixedMarginal(SiteMarginal):
    """A point mass on one value per variable (the fixed-network baselines)."""

    family = "fixed"

    def __init__(self, name: str, value: Any, *, edges: Sequence[Sequence[str]] | None = None) -> None:
        self.value = torch.as_tensor(value).long()
        values = sorted(set(self.value.reshape(-1).tolist())) or [0]
        onehot = (self.value.unsqueeze(-1) == torch.tensor(values)).to(_DTYPE)
        super().__init__(name, onehot, values, None, edges)

    def to_summary(self) -> dict[str, Any]:
        return {"family": self.family, "value": self.value.tolist()}

    @classmethod
    def from_summary(cls, name: str, entry: Mapping[str, Any]) -> FixedMarginal:
        return cls(name, entry["value"], edges=entry.get("edges"))


def marginal_from_summary(name: str, entry: Mapping[str, Any]) -> SiteMarginal:
    """The marginal of one ``posterior.json`` entry (a guide's ``summary()[name]``), read by the
    marginal its family registered (:mod:`bayesnas.families`)."""
    from bayesnas.families import get_family

    family = entry.get("family")
    try:
        marginal = get_family(family).marginal
    except (ValueError, NotImplementedError) as err:
        raise ValueError(f"Site {name!r} has family {family!r}, which the analysis cannot read: "
                         f"{err}") from None
    return marginal.from_summary(name, entry)
