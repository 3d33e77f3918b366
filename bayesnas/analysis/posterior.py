"""The posterior over a whole architecture: its site marginals, side by side."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch

from bayesnas.analysis.credible import CredibleArchitecture, credible_set
from bayesnas.analysis.marginals import (
    BernoulliMarginal,
    SiteMarginal,
    marginal_from_summary,
)

__all__ = ["Posterior"]


class Posterior:
    """A product of per-site marginals, built from a guide or from a run's ``posterior.json``.

    >>> post = Posterior.from_guide(guide)            # or Posterior.load("runs/demo/posterior.json")
    >>> post.mode()                                   # the most likely architecture
    >>> post.credible_set(k=5)                        # the 5 most likely, with cumulative mass
    >>> post.table()                                  # one row per variable: p(mode), entropy, θ/μ/σ/SNR
    """

    def __init__(self, marginals: Iterable[SiteMarginal]) -> None:
        self.marginals: dict[str, SiteMarginal] = {}
        for m in marginals:
            if m.name in self.marginals:
                raise ValueError(f"Arch site {m.name!r} appears twice in the posterior.")
            self.marginals[m.name] = m
        if not self.marginals:
            raise ValueError("A posterior needs at least one arch site, but got none.")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_summary(cls, summary: Mapping[str, Mapping[str, Any]]) -> Posterior:
        """From ``guide.summary()`` (the content of ``posterior.json``)."""
        return cls(marginal_from_summary(name, entry) for name, entry in summary.items())

    @classmethod
    def from_guide(cls, guide: Any) -> Posterior:
        """From any guide with a ``summary()`` (Bernoulli, categorical, fixed, and later families)."""
        return cls.from_summary(guide.summary())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Posterior:
        with open(path) as f:
            return cls.from_summary(json.load(f))

    def to_summary(self) -> dict[str, Any]:
        return {name: m.to_summary() for name, m in self.marginals.items()}

    # -- access ------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> SiteMarginal:
        try:
            return self.marginals[name]
        except KeyError:
            raise KeyError(f"Unknown arch site {name!r}. Known sites: {list(self.marginals)}.") from None

    def __iter__(self) -> Iterator[SiteMarginal]:
        return iter(self.marginals.values())

    def __len__(self) -> int:
        return len(self.marginals)

    @property
    def num_variables(self) -> int:
        return sum(m.num_variables for m in self)

    @property
    def families(self) -> list[str]:
        return sorted({m.family for m in self})

    # -- summaries ---------------------------------------------------------------------------
    def entropy(self) -> float:
        """Total entropy of the product posterior, in nats."""
        return float(sum(m.entropy().sum() for m in self))

    def mode(self) -> dict[str, Any]:
        """The most likely architecture, a plain ``site -> value`` mapping."""
        return {m.name: m.mode().tolist() for m in self}

    def log_prob(self, architecture: Mapping[str, Any]) -> float:
        """log P(architecture) under the product of the marginals."""
        missing = sorted(set(self.marginals) - set(architecture))
        if missing:
            raise KeyError(f"The architecture gives no value for the arch sites {missing}.")
        return sum(m.log_prob(architecture[m.name]) for m in self)

    def credible_set(self, k: int = 10, *, mass: float | None = None) -> list[CredibleArchitecture]:
        """The ``k`` most likely distinct architectures (see :func:`credible_set`)."""
        return credible_set(self, k=k, mass=mass)

    def sample(self, num: int, *, generator: torch.Generator) -> list[dict[str, Any]]:
        """``num`` architectures drawn from the product of the marginals (plain mappings)."""
        if not isinstance(num, int) or num < 1:
            raise ValueError(f"`num` must be an integer >= 1, but got num={num!r}.")
        columns = {}
        for m in self:
            idx = torch.multinomial(m.flat_probs(), num, replacement=True, generator=generator)  # (vars, num)
            columns[m.name] = torch.tensor(m.values)[idx.T].reshape(num, *m.shape)
        return [{name: v[i].tolist() for name, v in columns.items()} for i in range(num)]

    def expected_active(self) -> float | None:
        """Σθ over the Bernoulli-family sites (shirakawa2018 fig. 2), ``None`` without any."""
        bits = [m for m in self if isinstance(m, BernoulliMarginal)]
        return float(sum(m.theta.sum() for m in bits)) if bits else None

    def table(self) -> list[dict[str, Any]]:
        """One row per variable: site, index, edge, most likely label, its probability, entropy
        and the family's parameters (θ of the mode for discrete families; μ, σ, SNR)."""
        rows = []
        for m in self:
            mode = m.mode_index().reshape(-1)
            pmax = m.max_prob().reshape(-1)
            ent = m.entropy().reshape(-1)
            stats = {k: v.reshape(m.num_variables, -1) for k, v in m.parameter_stats().items()}
            for i in range(m.num_variables):
                row: dict[str, Any] = {
                    "site": m.name,
                    "index": i,
                    "family": m.family,
                    "mode": m.labels[int(mode[i])],
                    "p_mode": float(pmax[i]),
                    "entropy": float(ent[i]),
                }
                if m.edges is not None:
                    row["edge"] = "→".join(m.edges[i])
                for key, v in stats.items():
                    vals = v[i].tolist()
                    row[key] = vals[0] if len(vals) == 1 else vals
                rows.append(row)
        return rows

    def __repr__(self) -> str:
        return f"Posterior({len(self)} sites, {self.num_variables} variables, families={self.families})"


def as_posterior(obj: Any) -> Posterior:
    """Accept a :class:`Posterior`, a guide, or a ``posterior.json`` summary mapping."""
    if isinstance(obj, Posterior):
        return obj
    if hasattr(obj, "summary") and callable(obj.summary):
        return Posterior.from_guide(obj)
    if isinstance(obj, Mapping):
        return Posterior.from_summary(obj)
    raise TypeError(f"Expected a Posterior, a guide or a posterior summary, but got {type(obj).__name__}.")


def stack_probs(posterior: Posterior) -> torch.Tensor:
    """All variables' max probabilities in one vector (site order)."""
    return torch.cat([m.max_prob().reshape(-1) for m in posterior])
