"""Adaptation of a stochastic network: shirakawa2018 experiment (III)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas import sites
from bayesnas.models.layer_skip import build_skippable_layers, skippable_layer_costs


def _check_int(name: str, value: object, low: int, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}{why}, but got {name}={value!r}.")
    return value


class StochasticNetMLP(nn.Module):
    """A fully connected ReLU net with skippable layers and a learned dropout rate per layer.

    shirakawa2018 §(III) "Adaptation of Stochastic Network": L = 10 hidden layers of U = 1,024
    units on MNIST; M has L − 1 + LU bits:

    - ``"layers"`` (Bernoulli, shape ``(L − 1,)``, choices ``("skip", "layer")``): bit j is
      m^layer_{j+2}; 0 skips hidden layer j + 2, whose successor then reads X_{j+1}
      (skip-forward, as in :class:`~bayesnas.models.LayerSkipMLP`; layer 1 is never skipped).
    - ``"units"`` (shared-rate Bernoulli, shape ``(L, U)``, one rate θ^unit_l per layer,
      choices ``("drop", "keep")``): ``units[l][i]`` = m^unit_{l+1,i}; 0 drops unit i of hidden
      layer l + 1. The site has no ``edges``: one arc per unit would draw 10,240 useless arcs.

    θ = (θ^layer_2..L, θ^unit_1..L) ∈ R^{2L−1}; ``auto_guide`` gives a Bernoulli guide and a
    :class:`~bayesnas.guides.SharedBernoulliGuide`, and their ``make_optimizers()`` one
    optimizer with d = 2L − 1 = 19 (the paper's "problem dimension").

    **Dropout** multiplies the output X_l = ReLU(W_l X + b_l) of a kept layer by its unit mask,
    *without rescaling*, in training and at test time alike: in the paper's framework the
    network φ(W, M) is a function of the weights and the bits only, so its loss L(W, M) and
    the natural gradient eq. (3) carry no θ. Inverted dropout (× 1/θ in training) or the
    classic test-time scaling by the keep probability would make φ depend on θ, and neither is
    mentioned in the paper. Consequences:

    - *stochastic prediction* (the average over 100 networks drawn from p_θ) is the paper's
      reported metric for this experiment (Table 3) and sees the same masks as training;
    - *deterministic prediction* is the literal mode, m = 1 for every unit of a layer iff
      θ^unit_l ≥ 0.5: no dropout and no rescaling, so a layer trained with keep rate θ runs
      with about 1/θ times its training-time input mass (the paper observes θ^unit → "not
      dropped with high probability", where this gap is small); a layer with θ^unit_l < 0.5
      outputs zeros, cutting everything before it.

    The mask of a skipped layer is sampled (it is part of M) but has no effect.

    ``init`` as in :class:`~bayesnas.models.LayerSkipMLP` (default ``"lecun"``, Chainer's, which
    the paper ran on): §III uses "the same training parameters as used in the first
    experiment"; the paper states He's initialisation only for experiment IV.

    Batching: the S architectures run as one pass, rows sample-major ``(S·N, U)``. The first
    layer's affine map is computed once for all samples; every sample then has its own mask,
    so from there on each hidden layer runs on the rows of the samples that keep it (all, a
    run of consecutive samples, or none: a layer skipped by every sample costs nothing). A
    layer whose every unit is kept by every sample (a fixed network, the deterministic mode)
    skips its mask. One host read per pass (the layer bits and, per layer, whether its mask is
    all ones) decides the plan; the masks themselves never leave the device.
    """

    def __init__(
        self,
        in_features: int = 784,
        num_classes: int = 10,
        *,
        depth: int = 10,
        width: int = 1024,
        init: str = "lecun",
    ) -> None:
        super().__init__()
        _check_int("in_features", in_features, 1)
        _check_int("num_classes", num_classes, 2)
        _check_int("depth", depth, 2, " (layer 1 is never skipped, so L - 1 >= 1 layer bits)")
        _check_int("width", width, 1)
        self.in_features = in_features
        self.num_classes = num_classes
        self.depth = depth
        self.width = width
        self.init = init
        build_skippable_layers(self, in_features, num_classes, depth=depth, width=width, init=init)

    @classmethod
    def for_data(
        cls,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        depth: int = 10,
        width: int = 1024,
        init: str = "lecun",
    ) -> StochasticNetMLP:
        """The paper's 10 × 1,024 net for flattened inputs of ``input_shape``."""
        return cls(int(torch.Size(input_shape).numel()), num_classes, depth=depth, width=width, init=init)

    def complexity_costs(self) -> dict[str, torch.Tensor]:
        """c_l = weights (and biases) a kept hidden layer 2..L uses (saito2018's weight count).

        Only the layer bits get costs: the unit rates' expected cost would depend on the rates
        of the neighbouring layers (a dropped unit frees its row and the next layer's column).
        """
        return {"layers": skippable_layer_costs(depth=self.depth, width=self.width)}

    def num_weights_used(self, arch: Mapping[str, Any]) -> int:
        """Weights and biases the fixed network of ``arch`` uses (structurally).

        A skipped layer uses none. A kept layer with a_l kept units uses a_l·a_prev + a_l, where
        a_prev counts the non-zero inputs it reads (the input features for layer 1, else the kept
        units of the last kept layer before it); the output layer uses C·a_last + C. A kept
        layer with no kept unit outputs zeros, so nothing before it reaches the output.
        """
        layers = torch.as_tensor(arch["layers"]).long()
        units = torch.as_tensor(arch["units"]).long()
        if tuple(layers.shape) != (self.depth - 1,) or tuple(units.shape) != (self.depth, self.width):
            raise ValueError(
                f"An architecture of this space has `layers` of shape {(self.depth - 1,)} and "
                f"`units` of shape {(self.depth, self.width)}, but got {tuple(layers.shape)} and "
                f"{tuple(units.shape)}."
            )
        active = units.sum(-1).tolist()
        kept = [0] + [j + 1 for j, m in enumerate(layers.tolist()) if m]
        used, prev = 0, self.in_features
        for layer in kept:
            a = int(active[layer])
            used = 0 if a == 0 else used + a * prev + a
            prev = a
        return used + self.num_classes * prev + self.num_classes

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of shape ``(S, N, C)`` for x of shape ``(N, F)`` (or ``(S, n, F)``, eq. 5)."""
        if x.dim() not in (2, 3) or x.shape[-1] != self.in_features:
            raise ValueError(
                f"StochasticNetMLP takes flattened inputs (N, {self.in_features}) or "
                f"(S, n, {self.in_features}), but got x of shape {tuple(x.shape)}."
            )
        keep = sites.bernoulli("layers", self.depth - 1, choices=("skip", "layer"),
                               edges=self._edges, device=x.device)
        units = sites.shared_bernoulli("units", self.depth, self.width, choices=("drop", "keep"),
                                       device=x.device)
        num_arch = keep.shape[0]
        if x.dim() == 3 and x.shape[0] != num_arch:
            raise ValueError(
                f"Per-architecture inputs (S, n, F) need S = {num_arch} architectures, but got "
                f"x of shape {tuple(x.shape)}."
            )
        # One host read per pass decides the plan: which samples run each layer, and which
        # layers keep every unit (a fixed network, the mode) so that their mask is skipped.
        plan = torch.cat([keep.bool(), units.bool().all(-1)], -1).tolist()
        runs = [row[: self.depth - 1] for row in plan]
        whole = [row[self.depth - 1 :] for row in plan]
        masks = units.to(x.dtype).unsqueeze(-2)  # (S, L, 1, U): broadcasts over the rows

        def dropout(out: torch.Tensor, start: int, stop: int, layer: int) -> torch.Tensor:
            """Multiply the rows of samples start..stop−1 by their unit masks of ``layer``."""
            if all(whole[s][layer] for s in range(start, stop)):
                return out
            return (out.view(stop - start, -1, self.width) * masks[start:stop, layer]).view_as(out)

        # The first layer's affine map is shared by all samples when x is (N, F).
        h = F.relu(self.input(x))  # (N, U), or (S, n, U) for eq. (5)
        rows = h.shape[-2]
        if all(whole[s][0] for s in range(num_arch)):
            h = h.expand(num_arch, rows, self.width).reshape(-1, self.width)
        else:
            h = (h * masks[:, 0]).reshape(-1, self.width)  # rows sample-major, (S·N, U)
        for j, layer in enumerate(self.hidden):
            flags = [runs[s][j] for s in range(num_arch)]
            if not any(flags):
                continue
            if all(flags):
                h = dropout(F.relu(layer(h)), 0, num_arch, j + 1)
                continue
            pieces, start = [], 0
            for s in range(1, num_arch + 1):  # runs of consecutive samples with equal flags
                if s == num_arch or flags[s] != flags[start]:
                    block = h[start * rows : s * rows]
                    if flags[start]:
                        block = dropout(F.relu(layer(block)), start, s, j + 1)
                    pieces.append(block)
                    start = s
            h = torch.cat(pieces)
        logits = self.output(h).view(num_arch, rows, -1)
        sites.classification_likelihood(logits, y)
        return logits
