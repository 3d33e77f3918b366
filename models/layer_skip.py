"""Selection of layers: shirakawa2018 experiment (I)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas import sites

INITS = ("lecun", "he")
# Above this many runs of consecutive samples that agree on a layer, the batched pass runs the
# layer on every row and masks, instead of once per run.
_MAX_RUNS = 4


def init_linear_(layer: nn.Linear, init: str) -> None:
    """Initialise ``layer`` in place with zero bias and W ~ N(0, s²/fan_in): s² = 1 for
    ``"lecun"`` (Chainer 1.x's ``L.Linear`` default, which shirakawa2018 ran on and which its
    experiments I–III do not override) or s² = 2 for ``"he"`` (He et al. 2015, stated by the
    paper only for experiment IV).

    The choice matters for layer selection: with LeCun's scale a kept ReLU layer halves the
    signal's variance while a skipped one keeps it, so deep architectures start out worse and
    the ranking sees it. That is why the paper's plain nets stop training beyond 21 layers and
    why its search settles on 8–10; with He's scale every depth starts out alike.
    """
    if init not in INITS:
        raise ValueError(f"`init` must be one of {INITS}, but got init={init!r}.")
    gain = 1.0 if init == "lecun" else 2.0
    nn.init.normal_(layer.weight, 0.0, (gain / layer.in_features) ** 0.5)
    nn.init.zeros_(layer.bias)


def skippable_layer_costs(*, depth: int, width: int) -> torch.Tensor:
    """c_l of the layer bits of a skip-forward MLP: the weights and biases a kept hidden layer
    2..depth uses (saito2018's weight count), shape ``(depth - 1,)``."""
    return torch.full((depth - 1,), float(width * width + width))


def build_skippable_layers(
    module: nn.Module, in_features: int, num_classes: int, *, depth: int, width: int, init: str = "lecun"
) -> None:
    """The layers of a skip-forward MLP (shirakawa2018 §I, §III) on ``module``: ``input``,
    ``hidden`` (layers 2..depth, each skippable), ``output``, initialised by
    :func:`init_linear_`, and ``_edges``, the graph edge each layer bit decides (for the
    analysis)."""
    module.input = nn.Linear(in_features, width)
    module.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 1))
    module.output = nn.Linear(width, num_classes)
    # Bit j decides the edge from hidden layer j + 1 to j + 2: run the layer, or skip it.
    module._edges = [(f"h{j + 1}", f"h{j + 2}") for j in range(depth - 1)]
    for layer in [module.input, *module.hidden, module.output]:
        init_linear_(layer, init)


class LayerSkipMLP(nn.Module):
    """A fully connected ReLU net whose hidden layers 2..depth can each be skipped.

    shirakawa2018 §(I): 32 hidden layers × 128 units; bit m_l = 0 skips layer l, so layer
    l+1 reads X_{l+1} = X_l (skip-forward); the first hidden layer is never skipped, d = 31.
    Softmax cross-entropy. ``init``: ``"lecun"`` (default; Chainer's, as the paper ran) or
    ``"he"``; see :func:`init_linear_` for why it decides whether the search works.

    Arch site: ``"layers"``, 31 Bernoulli bits (``layers[j]`` is hidden layer j + 2).

    The λ sampled architectures run as one batched pass: the input layer is shared, and each
    hidden layer runs only on the architectures that keep it (all of them, a subset, or none),
    so a layer skipped by every sample costs nothing; when the keeping samples form more than
    a few separate runs (large λ) it runs on every row and a mask keeps the skipping rows.
    """

    def __init__(
        self,
        in_features: int = 784,
        num_classes: int = 10,
        *,
        depth: int = 32,
        width: int = 128,
        init: str = "lecun",
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"`depth` must be >= 2 (layer 1 is never skipped), but got depth={depth}.")
        if width < 1 or in_features < 1 or num_classes < 2:
            raise ValueError(
                f"Need width >= 1, in_features >= 1, num_classes >= 2, but got width={width}, "
                f"in_features={in_features}, num_classes={num_classes}."
            )
        self.in_features = in_features
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
        depth: int = 32,
        width: int = 128,
        init: str = "lecun",
    ) -> LayerSkipMLP:
        return cls(int(torch.Size(input_shape).numel()), num_classes, depth=depth, width=width, init=init)

    def complexity_costs(self) -> dict[str, torch.Tensor]:
        """c_l = number of weights a kept layer uses (saito2018's weight count)."""
        return {"layers": skippable_layer_costs(depth=self.depth, width=self.width)}

    def num_weights_used(self, arch: dict) -> int:
        """Weights (and biases) of the fixed network of ``arch``: a skipped layer uses none."""
        total = sum(p.numel() for p in self.parameters())
        skipped = sum(1 - int(m) for m in arch["layers"])
        return total - skipped * (self.width * self.width + self.width)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of shape ``(S, N, C)`` for x of shape ``(N, F)`` (or ``(S, n, F)``, eq. 5)."""
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"LayerSkipMLP takes flattened inputs with {self.in_features} features, but got "
                f"x of shape {tuple(x.shape)}."
            )
        keep = sites.bernoulli("layers", self.depth - 1, choices=("skip", "layer"),
                               edges=self._edges, device=x.device)
        num_arch = keep.shape[0]
        plan = keep.bool().tolist()  # one host read per pass decides which rows each layer runs
        # Rows are laid out sample-major, (S * N, F). While every sample makes the same
        # choices the activations are shared, (N, F), and computed once for all samples.
        per_sample = x.dim() == 3  # eq. (5): each architecture has its own part of the batch
        h = F.relu(self.input(x.reshape(-1, x.shape[-1])))
        shared = not per_sample
        for j, layer in enumerate(self.hidden):
            flags = [plan[s][j] for s in range(num_arch)]
            if shared and len(set(flags)) > 1:
                h, shared = h.repeat(num_arch, 1), False
            if shared or all(flags) or not any(flags):
                h = F.relu(layer(h)) if flags[0] else h
                continue
            rows = h.shape[0] // num_arch
            starts = [0] + [s for s in range(1, num_arch) if flags[s] != flags[s - 1]]
            if len(starts) > _MAX_RUNS:
                # Many short runs (large λ, eq. 5's few rows each): one matrix product over every
                # row, kept where the sample keeps the layer, beats one small product per run.
                kept = keep[:, j].bool().repeat_interleave(rows).unsqueeze(-1)
                h = torch.where(kept, F.relu(layer(h)), h)
                continue
            pieces = []
            for start, stop in zip(starts, [*starts[1:], num_arch], strict=True):  # equal-flag runs
                block = h[start * rows : stop * rows]
                pieces.append(F.relu(layer(block)) if flags[start] else block)
            h = torch.cat(pieces)
        logits = self.output(h)
        logits = (
            logits.expand(num_arch, *logits.shape) if shared else logits.view(num_arch, -1, logits.shape[-1])
        )
        sites.classification_likelihood(logits, y)
        return logits
