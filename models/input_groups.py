"""Selection of input feature groups: a Bernoulli space whose answer is known.

An MLP whose inputs come in equal groups, each kept or dropped by one bit. On ``digits-noise``
(80 features: the 8 pixel rows of sklearn's digits, then 16 features of planted noise) with the
default groups of 8, the 10 bits are the 8 rows and 2 noise groups. Dropping a row loses signal;
keeping a noise group lets the small network fit noise: the table of every architecture trained
alone (:mod:`bayesnas.bench`) shows what each costs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas import sites


class InputGroupsMLP(nn.Module):
    """``in_features → width → classes`` ReLU MLP; input group g is multiplied by bit g.

    Arch site: ``"inputs"`` of shape ``(in_features // group_size,)`` with choices
    ``("dropped", "kept")``; bit g gates features ``g·group_size ... (g+1)·group_size − 1``.
    Weight sharing: every architecture uses the same first layer, on its kept features.
    """

    def __init__(self, in_features: int, num_classes: int, *, group_size: int = 8, width: int = 32) -> None:
        super().__init__()
        for name, value, low in (("group_size", group_size, 1), ("width", width, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}, but got {name}={value!r}.")
        if in_features % group_size:
            raise ValueError(f"`group_size` must divide the {in_features} input features, but got "
                             f"group_size={group_size}.")
        self.in_features, self.num_classes = in_features, num_classes
        self.group_size, self.width = group_size, width
        self.num_groups = in_features // group_size
        self.hidden = nn.Linear(in_features, width)
        self.output = nn.Linear(width, num_classes)

    @classmethod
    def for_data(cls, input_shape: Sequence[int], num_classes: int, *, group_size: int = 8,
                 width: int = 32) -> InputGroupsMLP:
        return cls(int(torch.Size(input_shape).numel()), num_classes, group_size=group_size, width=width)

    def extra_repr(self) -> str:
        return f"groups={self.num_groups} x {self.group_size}, width={self.width}"

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(S, N, C)`` for x of shape ``(N, in_features)``, one row per architecture."""
        if x.dim() != 2 or x.shape[-1] != self.in_features:
            raise ValueError(f"InputGroupsMLP takes flattened inputs (N, {self.in_features}), but got x of "
                             f"shape {tuple(x.shape)}.")
        keep = sites.bernoulli("inputs", (self.num_groups,), choices=("dropped", "kept"), device=x.device)
        mask = keep.to(x.dtype).repeat_interleave(self.group_size, -1)  # (S, in_features)
        logits = self.output(F.relu(self.hidden(x.unsqueeze(0) * mask.unsqueeze(1))))
        sites.classification_likelihood(logits, y)
        return logits
