"""Selection of hidden units under a complexity penalty: saito2018 §4.1."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas import sites


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}, but got {name}={value!r}.")
    return value


class UnitSelectMLP(nn.Module):
    """A fully connected ReLU net whose every hidden unit can be removed.

    saito2018 §4.1 "Unit Selection of the Fully-Connected Neural Network": three hidden
    layers of 784 units; unit i outputs ``m_i F(X_i)`` with F = ReLU, so bit m_i = 1 keeps the
    unit and m_i = 0 removes it (its output is zero, so the connections to and from it can be
    omitted); d = 2,352 on MNIST. Every bit has the same complexity cost, c = 1. He
    initialisation (saito2018 §4), softmax cross-entropy.

    Arch site: ``"units"`` of shape ``(depth, width)`` with choices ``("removed", "kept")``;
    ``units[l][i]`` is unit i of hidden layer l + 1. No ``edges`` (one arc pair per unit would
    be unreadable).

    Baselines of the paper: the full network is the fixed architecture with every bit 1;
    "fixed networks with units removed uniformly" are this space with a smaller ``width``
    and every bit 1 — their weight usage relative to the full network is
    ``weights_of_widths(784, [width] * 3, 10) / weights_of_widths(784, [784] * 3, 10)``;
    "Dropout with a dropout rate of 0.5" is the all-ones network with ``dropout=0.5``
    (inverted dropout on the hidden units, in training mode only: all units are kept at test
    time).

    Batching: the S architectures run as one pass. The first layer is computed once for all of
    them; a layer whose units are all kept in every sample is not masked; while the samples
    agree on every bit the activations stay shared, ``(N, width)``; otherwise the masked
    activations are ``(S, N, width)``, with no loop over samples. One host read per pass.
    With ``dropout`` and shared activations the S samples share the dropout noise.
    """

    def __init__(
        self,
        in_features: int = 784,
        num_classes: int = 10,
        *,
        depth: int = 3,
        width: int = 784,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_int("in_features", in_features, 1)
        _check_int("num_classes", num_classes, 2)
        _check_int("depth", depth, 1)
        _check_int("width", width, 1)
        if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must lie in [0, 1), but got dropout={dropout!r}.")
        self.in_features = in_features
        self.num_classes = num_classes
        self.depth = depth
        self.width = width
        self.dropout = float(dropout)
        dims = [in_features, *([width] * depth)]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:], strict=False))
        self.output = nn.Linear(width, num_classes)
        for layer in [*self.hidden, self.output]:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    @classmethod
    def for_data(
        cls,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        depth: int = 3,
        width: int = 784,
        dropout: float = 0.0,
    ) -> UnitSelectMLP:
        """The space for flattened inputs of ``input_shape`` (e.g. ``(1, 28, 28)`` → 784)."""
        return cls(
            int(torch.Size(input_shape).numel()), num_classes, depth=depth, width=width, dropout=dropout
        )

    def extra_repr(self) -> str:
        return f"depth={self.depth}, width={self.width}, d={self.depth * self.width}, dropout={self.dropout}"

    # -- complexity -----------------------------------------------------------------------
    def complexity_costs(self) -> dict[str, torch.Tensor]:
        """c = 1 for every unit (saito2018 §4.1: "the same coefficients ... c = (1, ..., 1)")."""
        return {"units": torch.ones(self.depth, self.width)}

    def units_per_layer(self, arch: Mapping[str, Any]) -> list[int]:
        """The number of kept units in each hidden layer (saito2018 table 1)."""
        units = torch.as_tensor(arch["units"])
        if tuple(units.shape) != (self.depth, self.width):
            raise ValueError(
                f"Arch site 'units' has shape {(self.depth, self.width)}, but the architecture "
                f"gives a value of shape {tuple(units.shape)}."
            )
        if not bool(((units == 0) | (units == 1)).all()):
            raise ValueError("Arch site 'units' takes 0/1 values, but got other values.")
        return [int(k) for k in units.long().sum(-1).tolist()]

    @staticmethod
    def weights_of_widths(in_features: int, widths: Sequence[int], num_classes: int) -> int:
        """Weights and biases of a dense net ``in_features → widths... → num_classes``.

        A layer of width 0 passes nothing on; the next layer then keeps only its biases.
        """
        dims = [in_features, *widths, num_classes]
        for i, w in enumerate(dims):
            if isinstance(w, bool) or not isinstance(w, int) or w < 0:
                raise ValueError(f"Layer widths must be integers >= 0, but got {w!r} at position {i}.")
        return sum(a * b + b for a, b in zip(dims, dims[1:], strict=False))

    def num_weights_used(self, arch: Mapping[str, Any]) -> int:
        """Weights (and biases) of the fixed network of ``arch``, with removed units deleted.

        saito2018 §4.1: "When m_i = 0, the connections to/from the i-th unit can be omitted".
        Between consecutive layers only the weights between kept units remain (the 784 inputs
        and the output classes are always kept), plus the biases of kept units and of the
        output layer: the numerator of the paper's weight usage rate. With every bit 1 it is
        the number of parameters of the module.
        """
        return self.weights_of_widths(self.in_features, self.units_per_layer(arch), self.num_classes)

    def weight_usage_rate(self, arch: Mapping[str, Any]) -> float:
        """saito2018's weight usage rate: :meth:`num_weights_used` over all the weights."""
        total = self.weights_of_widths(self.in_features, [self.width] * self.depth, self.num_classes)
        return self.num_weights_used(arch) / total

    # -- model ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of shape ``(S, N, C)`` for x of shape ``(N, F)`` (or ``(S, n, F)``, eq. 5)."""
        if x.dim() not in (2, 3) or x.shape[-1] != self.in_features:
            raise ValueError(
                f"UnitSelectMLP takes flattened inputs (N, {self.in_features}) or "
                f"(S, n, {self.in_features}), but got x of shape {tuple(x.shape)}."
            )
        keep = sites.bernoulli(
            "units", (self.depth, self.width), choices=("removed", "kept"), device=x.device
        )
        num_arch = keep.shape[0]
        per_sample = x.dim() == 3  # shirakawa2018 eq. (5): each architecture its own batch part
        if per_sample and x.shape[0] != num_arch:
            raise ValueError(
                f"With per-architecture batches (S, n, F) the leading size must be the number of "
                f"architectures S={num_arch}, but got x of shape {tuple(x.shape)}."
            )
        keep = keep.to(x.dtype)
        # One host read: per layer, the number of kept units over all samples, and whether
        # the samples all keep the same units there.
        agree = (keep == keep[:1]).all(-1).all(0)
        plan = torch.stack([keep.sum((0, 2)), agree.to(keep.dtype)], 1).long().tolist()
        h, shared = x, not per_sample
        for i, layer in enumerate(self.hidden):
            h = F.relu(layer(h))
            kept, same = plan[i]
            if kept == num_arch * self.width:
                pass
            elif shared and same:  # one layout for every sample: stay shared, (N, W)
                h = h * keep[0, i]
            else:  # m ⊙ relu(z), broadcast to (S, N, W)
                h = h * keep[:, i].unsqueeze(-2)
                shared = False
            if self.dropout and self.training:
                h = F.dropout(h, self.dropout, training=True)
        logits = self.output(h)
        if shared:
            logits = logits.expand(num_arch, *logits.shape)
        sites.classification_likelihood(logits, y)
        return logits
