"""The VINNAS cell search space (vinnas2020 §IV-A, §V-A) as a Pyro model.

Arch sites: one :func:`bayesnas.sites.normal_strength` site per cell kind of the layout,
``cell.normal.alpha`` / ``cell.reduce.alpha``, of shape ``(E, K)`` — the relevance
α^{j,i}_k of every op k on every edge (j, i) — with the K = 10 op labels and the edges'
``(source, target)`` names. Every edge mixes its ops by ``softmax(α)`` (vinnas2020 eq. 3).

Zero op. vinnas2020 §V-A: "we clip the strength of the zero operation to avoid scaling
problems with respect to other operations". The zero op adds nothing to an edge, so a large
α_zero only shrinks every other op's softmax weight — a rescaling the following BatchNorm
undoes, which lets α_zero grow without bound and without any effect on the loss. Here the
sampled α_zero is clamped from above, ``α_zero ← min(α_zero, zero_clip)`` (default 0, the
prior's centre and the initial μ, §V-A), in the model, so the guide's μ and σ² keep
ordinary gradients below the bound and the zero op can never out-weigh an op whose α is
positive. It is never kept in a genotype (:meth:`VinnasSearchSpace.genotype`).

Bayesian weights (vinnas2020 eq. 4–5). ``bayesian=True`` makes every weight of the
supernetwork (stem, cell inputs, ops, classifier; BatchNorm has no parameters in the search)
log-uniform: one ``pyro.sample`` site ``"w"`` over all of them, flattened
(:class:`bayesnas.nn.parameter_layout.ParameterLayout`; one site and one vectorised KL instead
of ~150 of each). The views of the draw replace the parameters through
``torch.func.functional_call``, and every layer computes through :mod:`bayesnas.nn.lrt`, so
under :func:`bayesnas.handlers.local_reparameterization` the guide's Normal draw gives the
local reparameterization. :meth:`VinnasSearchSpace.weight_guide` builds the matching
:class:`bayesnas.guides.NormalWeightGuide` (``flat=True``, μ from the supernetwork's
initialisation). Why not ``PyroSample`` attributes: those are drawn where the module reads
them, inside the arch plate the search loss opens around the model, while the weights are
one draw shared by the S architectures (and ``NormalWeightGuide`` runs outside the plate);
a model site inside the plate would not match the guide's. So the weights are drawn by
:meth:`VinnasSearchSpace.sample_weights`, outside the plate, and handed to the forward::

    def model(x, y):
        w = space.sample_weights()
        with sites.arch_plate(S):
            space(x, y, weights=w)

    def guide(x, y):
        weight_guide()
        with sites.arch_plate(S):
            arch_guide()

:meth:`VinnasSearchSpace.model` is exactly this model (it opens the arch plate itself).
Without an arch plate (S = 1) ``space(x, y)`` samples the weights itself; inside one, a
Bayesian forward without ``weights`` is an error (tools that only look at the arch sites:
``discover_sites(space, x, weights=space.point_weights())``). ``bayesian=False`` (default)
uses the deterministic parameters, trained by an ordinary optimiser next to the arch guide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyro
import torch
from pyro.poutine.runtime import get_plates
from torch import nn
from torch.func import functional_call

from bayesnas import sites
from bayesnas.distributions import LogUniform
from bayesnas.nn.parameter_layout import ParameterLayout
from bayesnas.nn.vinnas_cells import (
    VinnasNetwork,
    VinnasSupernet,
    cell_edges,
    edge_names,
    encode_genotype,
    resolve_layout,
)
from bayesnas.nn.vinnas_ops import OPS, ZERO_INDEX

#: the one site of all the Bayesian weights, flattened.
WEIGHT_PREFIX = "w"
CRITERIA = ("snr", "mean")


def site_name(kind: str) -> str:
    """The α site of a cell kind."""
    return f"cell.{kind}.alpha"


class VinnasSearchSpace(nn.Module):
    """DARTS-style normal and reduction cells whose ops are mixed by softmax(α), α ~ the
    log-uniform prior (vinnas2020 §IV-A, eq. 3–4); see the module docstring for the zero op
    and the weight modes.

    Args:
        in_channels, num_classes: the data's.
        layout: ``"M"`` (one reduction cell, 2 states), ``"F"`` (NNRNNRNN, 3 states) or
            ``"C"`` (NNRNNRNN, 4 states), vinnas2020 §V-A.
        channels: C of the first cells (doubled at each reduction).
        cells: override the layout's cell sequence (``"NNRNNRNN"``, ``"6NR6NR6N"``).
        num_states: override the layout's states per cell I.
        stem_multiplier: the stem outputs ``stem_multiplier · C`` channels.
        bayesian: the weights are log-uniform ``pyro.sample`` sites (vinnas2020 eq. 4).
        zero_clip: the upper bound of the zero op's strength α_zero.
    """

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10, layout: str = "M", channels: int = 8,
                 cells: str | None = None, num_states: int | None = None, stem_multiplier: int = 3,
                 bayesian: bool = False, zero_clip: float = 0.0) -> None:
        super().__init__()
        if not isinstance(zero_clip, int | float) or isinstance(zero_clip, bool) or zero_clip != zero_clip:
            raise ValueError(f"`zero_clip` must be a number, but got zero_clip={zero_clip!r}.")
        self.kinds, self.num_states = resolve_layout(layout, cells=cells, num_states=num_states)
        self.options = dict(in_channels=in_channels, num_classes=num_classes, layout=layout,
                            channels=channels, cells=cells, stem_multiplier=stem_multiplier)
        self.net = VinnasSupernet(**self.options, num_states=num_states, affine=False)
        self.bayesian, self.zero_clip = bool(bayesian), float(zero_clip)
        self.num_edges = len(cell_edges(self.num_states))

    @classmethod
    def for_data(cls, input_shape: Sequence[int], num_classes: int, **options: Any) -> VinnasSearchSpace:
        """The space for images of ``input_shape`` = (C, H, W)."""
        if len(input_shape) != 3:
            raise ValueError(
                f"The VINNAS space takes images (C, H, W), but got input_shape={tuple(input_shape)}.")
        return cls(in_channels=int(input_shape[0]), num_classes=num_classes, **options)

    @property
    def cell_kinds(self) -> tuple[str, ...]:
        """The kinds present in the layout, in a fixed order (one α site each)."""
        return tuple(k for k in ("normal", "reduce") if k in self.kinds)

    # -- Bayesian weights ------------------------------------------------------------------
    def sample_weights(self) -> dict[str, torch.Tensor]:
        """Declare all the weights as one site ``w ~ LogUniform`` over their flat concatenation
        (vinnas2020 eq. 4: the prior is the same for every weight); call it outside the arch
        plate. Returns ``parameter name → sampled tensor`` (views of the one draw)."""
        layout = ParameterLayout(self.net)
        flat = pyro.sample(WEIGHT_PREFIX, LogUniform((layout.numel,)).to_event(1))
        return layout.unflatten(flat)

    def point_weights(self) -> dict[str, torch.Tensor]:
        """The deterministic parameters, as ``weights=`` for a forward that only needs shapes,
        e.g. ``discover_sites(space, x, weights=space.point_weights())`` in Bayesian mode."""
        return dict(self.net.named_parameters())

    def weight_guide(self, **options: Any) -> nn.Module:
        """The :class:`~bayesnas.guides.NormalWeightGuide` over the one weight site (vinnas2020
        eq. 5), μ starting at the supernetwork's initial weights; ``options`` go to it."""
        from bayesnas.guides import NormalWeightGuide

        return NormalWeightGuide(self.net, prefix=WEIGHT_PREFIX, flat=True, **options)

    # -- the model ---------------------------------------------------------------------------
    def _declare(self, device: torch.device) -> dict[str, torch.Tensor]:
        return {kind: sites.normal_strength(site_name(kind), (self.num_edges, len(OPS)), labels=OPS,
                                            edges=edge_names(self.num_states), device=device)
                for kind in self.cell_kinds}

    def mixing_weights(self, alpha: torch.Tensor) -> torch.Tensor:
        """softmax(α) over the K ops, with the zero op's α clamped to ``zero_clip``."""
        zero = alpha[..., ZERO_INDEX : ZERO_INDEX + 1].clamp(max=self.zero_clip)
        alpha = torch.cat([alpha[..., :ZERO_INDEX], zero, alpha[..., ZERO_INDEX + 1 :]], dim=-1)
        return torch.softmax(alpha, dim=-1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, *,
                weights: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Logits ``(S, N, C)`` for images ``(N, C, H, W)`` (or ``(S, n, C, H, W)``)."""
        if self.bayesian and weights is None:
            if any(frame.name == sites.ARCH_PLATE for frame in get_plates()):
                raise ValueError(
                    "Bayesian weights are one draw shared by the S architectures, so they must be "
                    "sampled outside the arch plate: call `w = space.sample_weights()` before "
                    "`with arch_plate(S): space(x, y, weights=w)` (got weights=None inside the plate).")
            weights = self.sample_weights()
        alphas = self._declare(x.device)
        # (S, E, K) inside the arch plate, (E, K) outside it (S = 1).
        mix = {kind: self.mixing_weights(a).reshape(-1, self.num_edges, len(OPS))
               for kind, a in alphas.items()}
        num_arch = next(iter(mix.values())).shape[0]
        if x.dim() == 5 and x.shape[0] != num_arch:
            raise ValueError(f"Per-architecture inputs need a leading dimension S={num_arch}, but got x of "
                             f"shape {tuple(x.shape)}.")
        logits = []
        for s in range(num_arch):  # BatchNorm statistics are per architecture
            xs = x[s] if x.dim() == 5 else x
            mix_s = {kind: m[s] for kind, m in mix.items()}
            if weights is None:
                logits.append(self.net(xs, mix_s))
            else:
                logits.append(functional_call(self.net, dict(weights), (xs, mix_s)))
        out = torch.stack(logits)
        sites.classification_likelihood(out, y)
        return out

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None, *, num_arch: int = 1) -> torch.Tensor:
        """The whole model with its own arch plate: the Bayesian weights (if any) drawn once,
        outside it, then α and the likelihood inside ``arch_plate(num_arch)`` — the contract
        of :class:`bayesnas.infer.variational.VariationalArchitectureSearch` (vinnas2020 §V-A
        trains with a single sample, ``num_arch=1``). Returns the logits ``(S, N, C)``."""
        if isinstance(num_arch, bool) or not isinstance(num_arch, int) or num_arch < 1:
            raise ValueError(f"`num_arch` must be an integer >= 1, but got num_arch={num_arch!r}.")
        weights = self.sample_weights() if self.bayesian else None
        with sites.arch_plate(num_arch):
            return self(x, y, weights=weights)

    # -- export -----------------------------------------------------------------------------
    def _scores(self, selection: Any, criterion: str) -> dict[str, torch.Tensor]:
        if criterion not in CRITERIA:
            raise ValueError(f"`criterion` must be one of {list(CRITERIA)}, but got criterion={criterion!r}.")
        out = {}
        for kind in self.cell_kinds:
            name = site_name(kind)
            if hasattr(selection, "snr") and callable(selection.snr):  # a NormalGuide
                value = selection.snr(name) if criterion == "snr" else selection.loc(name)
            elif isinstance(selection, Mapping) and name in selection:
                value = selection[name]
                if hasattr(value, "snr"):  # a NormalStrengthMarginal
                    value = value.snr if criterion == "snr" else value.mu
            else:
                raise KeyError(f"The selection gives no scores for the α site {name!r}.")
            value = torch.as_tensor(value, dtype=torch.get_default_dtype()).detach().cpu()
            if tuple(value.shape) != (self.num_edges, len(OPS)):
                raise ValueError(f"Scores of {name!r} need shape {(self.num_edges, len(OPS))} (edges, K), "
                                 f"but got {tuple(value.shape)}.")
            out[kind] = value
        return out

    def genotype(self, selection: Any, *, criterion: str = "snr") -> dict[str, Any]:
        """The JSON genotype of a fitted guide (vinnas2020 alg. 1, line 21, and §III).

        ``selection`` is a :class:`~bayesnas.guides.NormalGuide` (its :meth:`snr`, μ/σ², or
        ``loc``, μ, with ``criterion="mean"``), or a mapping ``site → NormalStrengthMarginal``
        (its ``snr`` / ``mu``) or ``site → (E, K)`` scores. Per edge the best op other than zero
        is taken (the zero op means "no connection"); per state, the two incoming edges whose
        best op scores highest are kept, as in DARTS. (μ, not |μ|: α enters a sign-sensitive
        softmax, so a large negative μ marks an op switched off, vinnas2020 §IV-C.)
        """
        scores = self._scores(selection, criterion)
        edges = cell_edges(self.num_states)
        nodes = {}
        for kind, value in scores.items():
            value = value.clone()
            value[:, ZERO_INDEX] = -torch.inf
            best, op = value.max(-1)
            states = []
            for i in range(self.num_states):
                rows = [e for e, (_, t) in enumerate(edges) if t == i]
                kept = sorted(rows, key=lambda e: -float(best[e]))[:2]
                kept.sort(key=lambda e: edges[e][0])  # inputs in state order
                states.append((tuple(edges[e][0] for e in kept), tuple(OPS[int(op[e])] for e in kept)))
            nodes[kind] = states
        return encode_genotype(nodes)

    def stand_alone(self, genotype: Mapping[str, Any], **options: Any) -> VinnasNetwork:
        """The stand-alone network of ``genotype`` with this space's options (``options``
        override them, e.g. ``channels=`` or ``cells="6NR6NR6N"`` for evaluation)."""
        return VinnasNetwork(genotype=genotype, **{**self.options, **options})
