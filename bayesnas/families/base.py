"""What every site family declares, and the static description of one site (:class:`SiteSpec`).

A *family* is one kind of architectural decision together with everything the library does
with it: how a model declares such a site (a ``pyro.sample`` with ``infer["family"]``), how
:func:`bayesnas.sites.discover_sites` describes it, how a plain value of it is checked, how its
guide's distribution is drawn from a seeded generator, which guide and optimizer search it
(with a typed options dataclass), and which posterior marginal the analysis reads from the
guide's summary. A family is a subclass of :class:`Family` registered with
:func:`bayesnas.families.register_family`; the library iterates the registry and never names
a family in an ``if`` chain.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from bayesnas.integer_grid import IntegerGrid

if TYPE_CHECKING:
    from bayesnas.analysis.marginals import SiteMarginal

__all__ = [
    "Family",
    "FamilyOptions",
    "NaturalGradientOptions",
    "SiteSpec",
    "guide_field",
    "base_distribution",
    "check_shape",
    "labels_and_edges",
    "site_infer",
]

Draw = Callable[[torch.distributions.Distribution, torch.Size, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class SiteSpec:
    """Static description of one architecture site.

    Attributes:
        name: the stable hierarchical site name, e.g. ``"cell.normal.n2.op0"``.
        family: the name of its registered family (:mod:`bayesnas.families`): ``"bernoulli"``,
            ``"shared-bernoulli"``, ``"categorical"``, ``"normal"`` (continuous op strengths
            α) or ``"gaussian-integer"`` (ordered integers), or one a user registered.
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
        grid: the ordered values of a ``"gaussian-integer"`` site (nes2019), ``None`` for the
            other families.
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
        """The shape of the site's expectation parameter θ (and of its complexity costs c),
        as its family defines it: ``shape`` for Bernoulli bits, ``(*shape, K)`` for categorical
        choices, ``shape[:-1]`` (one rate per group) for shared-rate Bernoulli units."""
        from bayesnas.families import get_family

        return get_family(self.family).theta_shape(self)


@dataclass(frozen=True, kw_only=True)
class FamilyOptions:
    """Base of the families' typed options. A field made with :func:`guide_field` is an argument
    of the family's guide, every other field one of its optimizer; ``None`` leaves the guide's
    or the optimizer's own default."""

    def guide_kwargs(self) -> dict[str, Any]:
        return self._kwargs(guide=True)

    def optimizer_kwargs(self) -> dict[str, Any]:
        return self._kwargs(guide=False)

    def _kwargs(self, *, guide: bool) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if bool(f.metadata.get("guide")) == guide and getattr(self, f.name) is not None}


def guide_field(default: Any) -> Any:
    """A :class:`FamilyOptions` field that the family's guide takes (not its optimizer)."""
    return field(default=default, metadata={"guide": True})


class Family:
    """One site family. Subclasses set the class attributes and override what applies.

    Class attributes:
        name: the one name of the family, in ``SiteSpec.family``, ``infer["family"]``, the
            guide's ``family``, ``posterior.json`` and everywhere else.
        options: the typed options dataclass of its guide and optimizer.
        draws: the distributions its guide samples, each with the function that draws it from
            a seeded generator (:func:`bayesnas.handlers.seeded_arch`).
        legacy_distributions: distributions that make an arch site declared without
            ``infer["family"]`` one of this family's (a hand-written ``pyro.sample``).
        binary: θ is P(bit = 1) (the Bernoulli families): θ starts at ``theta_init`` in a
            search, and the logs show θ itself.
        guide_class, marginal_class: ``"module:Class"`` of its guide (built as
            ``Class(specs, **options.guide_kwargs())``) and of its posterior marginal, imported
            on first use (guides and the analysis import the core, not the other way round).
            A family defined elsewhere may set classes, or override :meth:`guide` / :attr:`marginal`.
    """

    name: ClassVar[str] = ""
    options: ClassVar[type[FamilyOptions]] = FamilyOptions
    draws: ClassVar[Mapping[type, Draw]] = {}
    legacy_distributions: ClassVar[tuple[type, ...]] = ()
    binary: ClassVar[bool] = False
    guide_class: ClassVar[str | type | None] = None
    marginal_class: ClassVar[str | type | None] = None

    # -- declaring and discovering --------------------------------------------------------
    def spec(self, name: str, fn: torch.distributions.Distribution, infer: Mapping[str, Any]) -> SiteSpec:
        """The :class:`SiteSpec` of a traced site of this family (``fn`` is its distribution,
        with ``event_shape`` the value's shape); raise ``TypeError`` if ``fn`` does not fit."""
        raise NotImplementedError(f"The {self.name!r} family declares no model sites.")

    def theta_shape(self, spec: SiteSpec) -> tuple[int, ...]:
        return spec.shape

    # -- values ---------------------------------------------------------------------------
    def value(self, spec: SiteSpec, given: Any, device: torch.device | str | None) -> torch.Tensor:
        """``given`` (a plain architecture's value) as a tensor of shape ``spec.shape``, checked."""
        raise NotImplementedError(f"The {self.name!r} family takes no architecture values.")

    # -- guide, optimizer, marginal --------------------------------------------------------
    def guide(self, specs: Sequence[SiteSpec], options: FamilyOptions | None = None) -> torch.nn.Module:
        """The family's guide over ``specs``, with the guide's fields of ``options``."""
        if self.guide_class is None:
            raise NotImplementedError(f"The {self.name!r} family has no guide.")
        opts = options if options is not None else self.options()
        return _resolve(self.guide_class)(specs, **opts.guide_kwargs())

    def optimizers(self, guide: Any, options: FamilyOptions | None = None) -> list[torch.optim.Optimizer]:
        """The optimizers of ``guide`` (one of this family's) under ``options``."""
        opts = options if options is not None else self.options()
        return guide.make_optimizers(**opts.optimizer_kwargs())

    @property
    def marginal(self) -> type[SiteMarginal]:
        if self.marginal_class is None:
            raise NotImplementedError(f"The {self.name!r} family has no posterior marginal.")
        return _resolve(self.marginal_class)


def _resolve(target: str | type) -> Any:
    """A class, or the class that ``"module:Class"`` names."""
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)
    return target


# -- helpers of the declaring functions -------------------------------------------------------


def check_shape(shape: Sequence[int] | int) -> tuple[int, ...]:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if any(int(s) < 1 for s in shape):
        raise ValueError(f"Site shapes must have positive sizes, but got shape={shape}.")
    return tuple(int(s) for s in shape)


def labels_and_edges(
    name: str, shape: tuple[int, ...], labels: tuple[str, ...] | None, edges: Sequence | None
) -> dict[str, Any]:
    """The ``choices`` / ``edges`` metadata of an arch site, checked against its shape."""
    infer: dict[str, Any] = {"choices": labels}
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


def site_infer(family: str, **metadata: Any) -> dict[str, Any]:
    """The ``infer`` dict of an arch site of ``family``: ``{"arch": True, "family": ...}``."""
    return {"arch": True, "family": family, **metadata}


def base_distribution(fn: torch.distributions.Distribution) -> torch.distributions.Distribution:
    """``fn`` without its Independent / Expanded / Masked wrappers: the family's distribution."""
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


@dataclass(frozen=True, kw_only=True)
class NaturalGradientOptions(FamilyOptions):
    """Options of the θ natural-gradient optimizers of the Bernoulli, shared-rate Bernoulli and
    categorical families (:class:`bayesnas.optim.NaturalGradientOptimizer`): ``lr`` is η
    (default 1/Σ(K − 1), or ηmax when ``adaptive``), ``adaptive`` pdas2019 app. C's step size
    with threshold ``alpha`` and range [``lr_min``, ``lr_max``], ``num_samples`` λ (it sets
    Tr(F Cov[Δθ]) of the adaptive step), ``theta_min`` the lower end of θ's range."""

    lr: float | None = None
    adaptive: bool = False
    alpha: float = 1.5
    lr_min: float = 0.0
    lr_max: float | None = None
    num_samples: int = 2
    theta_min: float | None = None
