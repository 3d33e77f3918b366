"""Architecture sites: architectural decisions declared as named ``pyro.sample`` sites.

A search space is a Pyro model. Each architectural decision ("is layer 7 on", "which op on
edge 3") is a ``pyro.sample`` site marked ``infer={"arch": True}``. Every arch site value has a
leading *architecture dimension* of size S, the number of architectures evaluated together in
one batched pass: the search loss opens ``pyro.plate("arch", S)`` around the model and the
guide, so a model written once serves λ search samples, S = 100 stochastic-prediction samples
and the single fixed network (S = 1) alike.

An architecture is a plain mapping ``site name -> value`` (ints, or nested lists of ints for
vector sites; the op strengths α of a "normal" site as nested lists of floats, or one op
index per edge); it round-trips through JSON and replays into the model with
:func:`fixed_architecture` (``poutine.condition``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import Message

from bayesnas.distributions import LogUniform
from bayesnas.integer_grid import IntegerGrid

ARCH_PLATE = "arch"
Architecture = dict[str, Any]

__all__ = [
    "ARCH_PLATE",
    "Architecture",
    "SiteSpec",
    "arch_plate",
    "bernoulli",
    "categorical",
    "shared_bernoulli",
    "normal_strength",
    "integer",
    "IntegerGrid",
    "discover_sites",
    "fixed_architecture",
    "architecture_to_tensors",
    "save_architecture",
    "load_architecture",
    "regression_likelihood",
]


@dataclass(frozen=True)
class SiteSpec:
    """Static description of one architecture site.

    Attributes:
        name: the stable hierarchical site name, e.g. ``"cell.normal.n2.op0"``.
        family: ``"bernoulli"``, ``"shared-bernoulli"``, ``"categorical"``, ``"normal"``
            (continuous op strengths α, :func:`normal_strength`) or ``"integer"`` (ordered
            integers, :func:`integer`).
        shape: the shape of the site's *value*, without the leading architecture dimension.
            For a shared-rate Bernoulli site it is ``(*groups, group_size)``: one 0/1 value
            per unit (a value of the model), while θ has the group shape ``shape[:-1]``
            (:attr:`theta_shape`).
            For a "normal" site it is the shape of α, ``(*edges, K)``: one strength per op.
        num_categories: K for a categorical or "normal" site (the number of ops, the last
            dimension of α), ``None`` for a Bernoulli or shared-rate one.
        choices: optional human-readable labels of the K categories (of 0 and 1 for a bit; the
            K op names of a "normal" site).
        edges: optional ``(source, target)`` node names, one per variable in flattened order:
            the graph the site's choices live on, for cell diagrams (``bayesnas.analysis``).
            The variables of a shared-rate site are its units, so it needs one per unit; those
            of a "normal" site are its edges (``shape[:-1]``), each choosing among K ops.
        group_size: U, the number of units that share one rate, for a shared-rate Bernoulli
            site (shirakawa2018 §III); ``None`` for the other families.
        grid: the ordered values of an ``"integer"`` site (:func:`integer`, nes2019), ``None``
            for the other families.
    """

    name: str
    family: str
    shape: tuple[int, ...] = ()
    num_categories: int | None = None
    choices: tuple[str, ...] | None = field(default=None)
    edges: tuple[tuple[str, str], ...] | None = field(default=None)
    group_size: int | None = None
    grid: IntegerGrid | None = None

    @property
    def numel(self) -> int:
        """Number of random variables (bits or categorical choices) in the site.

        For a shared-rate Bernoulli site these are its units, ``prod(groups) * U``: each unit is
        an independent bit given θ, as in ``bayesnas.analysis.SharedBernoulliMarginal``
        (``num_variables``). The number of θ entries is ``prod(theta_shape)``.
        """
        return int(torch.Size(self.shape).numel())

    @property
    def theta_shape(self) -> tuple[int, ...]:
        """The shape of the site's expectation parameter θ (and of its complexity costs c):
        ``shape`` for Bernoulli bits, ``(*shape, K)`` for categorical choices, ``shape[:-1]``
        (one rate per group) for shared-rate Bernoulli units."""
        if self.family == "categorical":
            return (*self.shape, int(self.num_categories or 0))
        if self.family == "shared-bernoulli":
            return self.shape[:-1]
        return self.shape


def arch_plate(size: int) -> pyro.plate:
    """The plate over the S architectures evaluated together (always ``dim=-1``)."""
    return pyro.plate(ARCH_PLATE, size, dim=-1)


def _check_shape(shape: Sequence[int] | int) -> tuple[int, ...]:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if any(int(s) < 1 for s in shape):
        raise ValueError(f"Site shapes must have positive sizes, but got shape={shape}.")
    return tuple(int(s) for s in shape)


def _labels_and_edges(
    name: str, shape: tuple[int, ...], labels: tuple[str, ...] | None, edges: Sequence | None
) -> dict[str, Any]:
    """The ``infer`` metadata of an arch site, checked against its shape."""
    infer: dict[str, Any] = {"arch": True, "choices": labels}
    if edges is not None:
        edges = tuple((str(s), str(t)) for s, t in edges)
        numel = int(torch.Size(shape).numel())
        if len(edges) != numel:
            raise ValueError(
                f"Site {name!r} has {numel} variables, so `edges` needs {numel} (source, target) "
                f"pairs, but got {len(edges)}."
            )
        infer["edges"] = edges
    return infer


def bernoulli(
    name: str,
    shape: Sequence[int] | int = (),
    *,
    probs: float = 0.5,
    choices: Sequence[str] | None = None,
    edges: Sequence[tuple[str, str]] | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Declare Bernoulli bits (layer on/off, unit on/off, ReLU vs tanh, a connection).

    Returns a float tensor of 0/1 of shape ``(S, *shape)``. ``probs`` is the prior, used only
    when the model runs without a guide. ``choices`` names the values 0 and 1 (e.g.
    ``("skip", "layer")``) and ``edges`` places each bit on a graph, for the analysis.
    """
    if not 0.0 <= probs <= 1.0:
        raise ValueError(f"`probs` must lie in [0, 1], but got probs={probs}.")
    labels = None if choices is None else tuple(str(c) for c in choices)
    if labels is not None and len(labels) != 2:
        raise ValueError(f"A Bernoulli site names its 2 values 0 and 1, but got choices={list(labels)}.")
    shape = _check_shape(shape)
    prior = dist.Bernoulli(torch.full(shape, float(probs), device=device))
    infer = _labels_and_edges(name, shape, labels, edges)
    return pyro.sample(name, prior.to_event(len(shape)), infer=infer)


def shared_bernoulli(
    name: str,
    shape: Sequence[int] | int,
    group_size: int,
    *,
    probs: float = 0.5,
    choices: Sequence[str] | None = None,
    edges: Sequence[tuple[str, str]] | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Declare groups of ``group_size`` Bernoulli units that share one rate per group.

    shirakawa2018 §III "Adaptation of Stochastic Network": the dropout masks m_li, i = 1..U,
    of layer l are i.i.d. Bernoulli(θ_l), one rate θ_l per layer. Returns a float tensor of
    0/1 of shape ``(S, *shape, group_size)``: ``shape`` is the shape of the groups (and of
    θ), the last dimension runs over the U units of a group. ``probs`` is the prior, used only
    when the model runs without a guide. ``choices`` names the values 0 and 1 (e.g.
    ``("drop", "keep")``); ``edges``, if given, places each *unit* on a graph (one pair per
    unit, in flattened order), like the variables of every other site.

    :func:`discover_sites` reports it as ``SiteSpec(family="shared-bernoulli",
    shape=(*shape, group_size), group_size=group_size)``.
    """
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"`group_size` must be an integer >= 1, but got group_size={group_size!r}.")
    if not 0.0 <= probs <= 1.0:
        raise ValueError(f"`probs` must lie in [0, 1], but got probs={probs}.")
    labels = None if choices is None else tuple(str(c) for c in choices)
    if labels is not None and len(labels) != 2:
        raise ValueError(f"A Bernoulli site names its 2 values 0 and 1, but got choices={list(labels)}.")
    groups = _check_shape(shape)
    value_shape = (*groups, group_size)
    rate = torch.full((*groups, 1), float(probs), device=device)
    prior = dist.Bernoulli(rate.expand(value_shape))
    infer = _labels_and_edges(name, value_shape, labels, edges)
    infer.update(shared=True, group_size=group_size)
    return pyro.sample(name, prior.to_event(len(value_shape)), infer=infer)


def categorical(
    name: str,
    choices: int | Sequence[str],
    shape: Sequence[int] | int = (),
    *,
    edges: Sequence[tuple[str, str]] | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Declare categorical choices (op type, input node, kernel size, channel count).

    ``choices`` is K or the K labels. Returns a long tensor of indices of shape ``(S, *shape)``.
    ``edges`` places each choice on a graph (e.g. ``[("n0", "n2"), ("n1", "n2")]``), for the
    cell diagrams of the analysis.
    """
    labels = None if isinstance(choices, int) else tuple(str(c) for c in choices)
    k = choices if isinstance(choices, int) else len(labels)
    if k < 2:
        raise ValueError(f"A categorical site needs at least 2 choices, but got {k} for {name!r}.")
    shape = _check_shape(shape)
    prior = dist.Categorical(torch.full((*shape, k), 1.0 / k, device=device))
    infer = _labels_and_edges(name, shape, labels, edges)
    return pyro.sample(name, prior.to_event(len(shape)), infer=infer)


def normal_strength(
    name: str,
    shape: Sequence[int] | int,
    *,
    labels: Sequence[str] | None = None,
    edges: Sequence[tuple[str, str]] | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Declare continuous op strengths α with the improper log-uniform prior (vinnas2020 eq. 4).

    ``shape`` is ``(*edges, K)``: one relevance α^{i,j}_k per op k of every edge (i, j), with
    ``p(α) ∝ 1/|α|`` elementwise. Returns a float tensor of shape ``(S, *shape)``. ``labels``
    names the K ops; ``edges`` places each edge (``prod(shape[:-1])`` of them, flattened
    order) on a graph, for the cell diagrams.

    The prior is improper and cannot be sampled, so a guide must provide the site
    (:class:`bayesnas.guides.NormalGuide`, a mean-field Normal, vinnas2020 eq. 5), or the site
    is conditioned on a value (:func:`fixed_architecture`); :func:`discover_sites` values it
    with ones (every op at full strength) while it looks at the model. With
    ``TraceMeanField_ELBO`` the KL(Normal ‖ LogUniform) term is the analytic approximation
    registered in :mod:`bayesnas.distributions.kl` (the γ₂ term of vinnas2020 eq. 8).
    """
    shape = _check_shape(shape)
    if not shape or shape[-1] < 2:
        raise ValueError(
            f"Op strengths need shape (*edges, K) with K >= 2 ops in the last dimension, but got "
            f"shape={shape} for {name!r}."
        )
    names = None if labels is None else tuple(str(c) for c in labels)
    if names is not None and len(names) != shape[-1]:
        raise ValueError(
            f"Site {name!r} has K={shape[-1]} ops (the last dimension of its shape), so `labels` "
            f"needs {shape[-1]} names, but got {len(names)}: {list(names)}."
        )
    # The variables of the analysis are the edges (each picks one of K ops), so `edges` is
    # checked against shape[:-1], not against the number of α entries.
    infer = _labels_and_edges(name, shape[:-1], names, edges)
    infer["device"] = None if device is None else str(device)  # for discover_sites' placeholder
    return pyro.sample(name, LogUniform(shape).to_event(len(shape)), infer=infer)


def integer(
    name: str,
    low: int,
    high: int,
    *,
    step: int = 1,
    base: int | None = None,
    shape: Sequence[int] | int = (),
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Declare ordered integer hyper-parameters (a width, a depth, an input resolution) with
    values ``low, low + step, ..., high`` (nes2019 §3.1.2, table 4).

    The site is a real number in the site's units; the model uses the grid value it rounds
    down to (:class:`IntegerGrid`), as nes2019 eq. (6) floors ``H + n``. So a Gaussian guide
    (:class:`bayesnas.guides.GaussianGuide`) samples it directly and its NES gradient sees
    the real draw, while the network only ever sees values on the grid. The prior, used only
    when the model runs without a guide, is uniform over the values. ``base`` is the base
    architecture's value, where the search starts. Returns the values, a long tensor of shape
    ``(S, *shape)``.
    """
    grid = IntegerGrid(low, high, step, base)
    shape = _check_shape(shape)
    # Uniform on [low, high + step): every value's cell [v, v + step) equally likely.
    prior = dist.Uniform(torch.full(shape, float(low), device=device),
                         torch.full(shape, float(high + step), device=device))
    infer = {"arch": True, "choices": None, "integer": grid.to_dict()}
    x = pyro.sample(name, prior.to_event(len(shape)), infer=infer)
    return grid.value(grid.index(grid.coordinate(x)))


class _ImproperPlaceholder(Messenger):
    """Values unobserved arch sites with an improper prior (``LogUniform``) by ones.

    ``discover_sites`` runs the model without a guide; a log-uniform site cannot be sampled,
    and its value only matters for the shapes of the forward pass, so α = 1 (every op at full
    strength) lets the model run through. ``Message`` fields used: ``fn`` (its base is checked
    and its ``shape()`` gives the value's shape), ``infer`` (``arch`` and ``device``),
    ``is_observed`` and ``value`` (left alone when already set); ``value`` is set here.
    """

    def _pyro_sample(self, msg: Message) -> None:
        if msg["is_observed"] or msg["value"] is not None or not msg["infer"].get("arch"):
            return
        if isinstance(_base(msg["fn"]), LogUniform):
            msg["value"] = torch.ones(msg["fn"].shape(), device=msg["infer"].get("device"))


def _base(fn: dist.Distribution) -> dist.Distribution:
    # Unwrap Independent / Expanded / MaskedDistribution down to the family.
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


def discover_sites(model: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, SiteSpec]:
    """Run ``model(*args, **kwargs)`` once (S = 1) and describe every arch site it declares."""
    # The placeholder sits outside the plate so it sees the plate-broadcast shape (1, *shape).
    with poutine.block(), poutine.trace() as tracer, _ImproperPlaceholder(), arch_plate(1):
        model(*args, **kwargs)
    specs: dict[str, SiteSpec] = {}
    for name, node in tracer.trace.nodes.items():
        if node["type"] != "sample" or not node["infer"].get("arch"):
            continue
        fn = node["fn"]
        shape = tuple(fn.event_shape)
        base = _base(fn)
        labels, edges = node["infer"].get("choices"), node["infer"].get("edges")
        if node["infer"].get("integer"):
            if not isinstance(base, torch.distributions.Uniform):
                raise TypeError(f"Integer arch site {name!r} must be declared with bayesnas.sites.integer, "
                                f"but its distribution is {type(base).__name__}.")
            specs[name] = SiteSpec(name, "integer", shape, grid=IntegerGrid(**node["infer"]["integer"]))
        elif node["infer"].get("shared"):
            group_size = int(node["infer"]["group_size"])
            if not isinstance(base, torch.distributions.Bernoulli) or not shape or shape[-1] != group_size:
                raise TypeError(
                    f"Shared-rate arch site {name!r} must be a Bernoulli whose last event dimension "
                    f"is its group size {group_size}, but got {type(base).__name__} with event "
                    f"shape {shape}; declare it with bayesnas.sites.shared_bernoulli."
                )
            specs[name] = SiteSpec(name, "shared-bernoulli", shape, None, labels, edges, group_size)
        elif isinstance(base, torch.distributions.Bernoulli):
            specs[name] = SiteSpec(name, "bernoulli", shape, None, labels, edges)
        elif isinstance(base, torch.distributions.Categorical):
            k = int(base.probs.shape[-1])
            specs[name] = SiteSpec(name, "categorical", shape, k, labels, edges)
        elif isinstance(base, LogUniform):
            if len(shape) < 1 or shape[-1] < 2:
                raise TypeError(
                    f"Op-strength arch site {name!r} needs event shape (*edges, K) with K >= 2, "
                    f"but got {shape}; declare it with bayesnas.sites.normal_strength."
                )
            specs[name] = SiteSpec(name, "normal", shape, shape[-1], labels, edges)
        else:
            raise TypeError(
                f"Arch site {name!r} has an unsupported distribution {type(base).__name__}; "
                "use bayesnas.sites.bernoulli, shared_bernoulli, categorical, normal_strength or integer."
            )
    return specs


def architecture_to_tensors(
    arch: Mapping[str, Any],
    specs: Mapping[str, SiteSpec],
    *,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """Turn a plain architecture into tensors with a leading architecture dim of size 1."""
    unknown = sorted(set(arch) - set(specs))
    if unknown:
        raise KeyError(f"Unknown arch sites {unknown}. Known sites: {sorted(specs)}.")
    missing = sorted(set(specs) - set(arch))
    if missing:
        raise KeyError(f"The architecture gives no value for the arch sites {missing}.")
    out = {}
    for name, spec in specs.items():
        if spec.family == "normal":
            out[name] = _strengths(name, arch[name], spec, device).unsqueeze(0)
            continue
        dtype = torch.long if spec.family == "categorical" else torch.get_default_dtype()
        value = torch.as_tensor(arch[name], dtype=dtype, device=device)
        if tuple(value.shape) != spec.shape:
            raise ValueError(
                f"Arch site {name!r} has shape {spec.shape}, but the architecture gives a value "
                f"of shape {tuple(value.shape)}."
            )
        if spec.family in ("bernoulli", "shared-bernoulli") and not bool(
            ((value == 0) | (value == 1)).all()
        ):
            kind = "Bernoulli" if spec.family == "bernoulli" else "Shared-rate Bernoulli"
            raise ValueError(f"{kind} site {name!r} takes 0/1 values, but got {arch[name]}.")
        if spec.family == "integer" and not spec.grid.contains(value):
            g = spec.grid
            raise ValueError(f"Integer site {name!r} takes the values {g.low}, {g.low + g.step}, ..., "
                             f"{g.high}, but got {arch[name]}.")
        if spec.family == "categorical" and not bool(
            ((value >= 0) & (value < spec.num_categories)).all()
        ):
            raise ValueError(
                f"Categorical site {name!r} takes values in [0, {spec.num_categories}), "
                f"but got {arch[name]}."
            )
        out[name] = value.unsqueeze(0)
    return out


def _strengths(name: str, given: Any, spec: SiteSpec, device: torch.device | str | None) -> torch.Tensor:
    """α of a "normal" site from an architecture: the strengths themselves, shape
    ``(*edges, K)``, or one op index per edge, shape ``(*edges,)`` (e.g. ``Posterior.mode()``
    or the SNR selection of vinnas2020 alg. 1, line 21), which becomes one-hot α: the chosen
    op at strength 1, the others off."""
    value = torch.as_tensor(given, device=device)
    k = int(spec.num_categories or spec.shape[-1])
    if tuple(value.shape) == spec.shape:
        return value.to(torch.get_default_dtype())
    if tuple(value.shape) == spec.shape[:-1]:
        if value.is_floating_point() and not bool((value == value.round()).all()):
            raise ValueError(
                f"Op-strength site {name!r} takes α of shape {spec.shape} or one op index per "
                f"edge, but got non-integer indices {given}."
            )
        index = value.long()
        if not bool(((index >= 0) & (index < k)).all()):
            raise ValueError(f"Op-strength site {name!r} takes op indices in [0, {k}), but got {given}.")
        return torch.nn.functional.one_hot(index, k).to(torch.get_default_dtype())
    raise ValueError(
        f"Arch site {name!r} has shape {spec.shape} (α) or {spec.shape[:-1]} (op indices), but the "
        f"architecture gives a value of shape {tuple(value.shape)}."
    )


def tensors_to_architecture(values: Mapping[str, torch.Tensor]) -> Architecture:
    """Plain ``name -> int | float | nested list`` mapping from tensors of one architecture.

    Integer-valued tensors (bits, indices) become ints; a floating tensor with fractional
    entries (the op strengths α of a "normal" site, e.g. a ``NormalGuide``'s mode μ) keeps its
    floats, which truncating to ints would silently destroy.
    """
    out: Architecture = {}
    for name, v in values.items():
        v = torch.as_tensor(v).detach().cpu()
        fractional = v.is_floating_point() and not bool((v == v.round()).all())
        out[name] = v.tolist() if fractional else v.long().tolist()
    return out


def fixed_architecture(
    model: Callable[..., Any],
    arch: Mapping[str, Any],
    specs: Mapping[str, SiteSpec],
    *,
    device: torch.device | str | None = None,
) -> Callable[..., Any]:
    """The model with every arch site conditioned on ``arch`` (run it inside ``arch_plate(1)``)."""
    return poutine.condition(model, data=architecture_to_tensors(arch, specs, device=device))


def save_architecture(arch: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write an architecture as JSON, atomically."""
    from bayesnas.runs import atomic_write_text

    atomic_write_text(path, json.dumps(dict(arch), indent=2, sort_keys=True) + "\n")


def load_architecture(path: str | os.PathLike) -> Architecture:
    """Read an architecture written by :func:`save_architecture`."""
    with open(path) as f:
        return json.load(f)


def classification_likelihood(logits: torch.Tensor, y: torch.Tensor | None) -> None:
    """Declare ``y ~ Categorical(logits)`` over the N data of every architecture.

    ``logits`` has shape ``(S, N, C)`` (or ``(S, n, C)`` with ``y`` of shape ``(S, n)``). The
    site is only declared when labels are given, so prediction (``y=None``) draws nothing.
    """
    if y is not None:
        pyro.sample("obs", dist.Categorical(logits=logits).to_event(1), obs=y)


def regression_likelihood(pred: torch.Tensor, target: torch.Tensor | None) -> None:
    """Declare ``target ~ Normal(pred, σ = 1/√2)`` over every element of every architecture.

    ``pred`` has shape ``(S, N, ...)``; ``target`` ``(N, ...)`` (shared by the S architectures)
    or ``(S, N, ...)``. Everything but the arch dimension is the event, so
    :func:`bayesnas.infer.losses.per_architecture_loss`, which divides −log p by the event's
    number of elements, is the per-architecture mean squared error plus a constant:
    (y − μ)²/(2σ²) + log σ + ½ log 2π = (y − μ)² + ½ log π with σ² = ½. Ranking the
    architectures by it is ranking by the MSE loss of pdas2019 §4.2 ("Training Detail").
    The site is only declared when a target is given.
    """
    if target is not None:
        scale = torch.full((), 2.0**-0.5, dtype=pred.dtype, device=pred.device)
        obs = target.expand_as(pred) if target.dim() < pred.dim() else target
        pyro.sample("obs", dist.Normal(pred, scale).to_event(pred.dim() - 1), obs=obs)
