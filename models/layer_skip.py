"""Selection of layers: shirakawa2018 experiment (I)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas import sites


def build_skippable_layers(
    module: nn.Module, in_features: int, num_classes: int, *, depth: int, width: int
) -> None:
    """The layers of a skip-forward MLP (shirakawa2018 §I, §III) on ``module``: ``input``,
    ``hidden`` (layers 2..depth, each skippable), ``output``, He-initialised with zero biases,
    and ``_edges``, the graph edge each layer bit decides (for the analysis)."""
    module.input = nn.Linear(in_features, width)
    module.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 1))
    module.output = nn.Linear(width, num_classes)
    # Bit j decides the edge from hidden layer j + 1 to j + 2: run the layer, or skip it.
    module._edges = [(f"h{j + 1}", f"h{j + 2}") for j in range(depth - 1)]
    for layer in [module.input, *module.hidden, module.output]:
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        nn.init.zeros_(layer.bias)


class LayerSkipMLP(nn.Module):
    """A fully connected ReLU net whose hidden layers 2..depth can each be skipped.

    shirakawa2018 §(I): 32 hidden layers × 128 units; bit m_l = 0 skips layer l, so layer
    l+1 reads X_{l+1} = X_l (skip-forward); the first hidden layer is never skipped, d = 31.
    He initialisation, softmax cross-entropy.

    Arch site: ``"layers"``, 31 Bernoulli bits (``layers[j]`` is hidden layer j + 2).

    The λ sampled architectures run as one batched pass: the input layer is shared, and each
    hidden layer runs only on the architectures that keep it (all of them, a subset, or none),
    so a layer skipped by every sample costs nothing.
    """

    def __init__(
        self, in_features: int = 784, num_classes: int = 10, *, depth: int = 32, width: int = 128
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
        build_skippable_layers(self, in_features, num_classes, depth=depth, width=width)

    @classmethod
    def for_data(
        cls, input_shape: Sequence[int], num_classes: int, *, depth: int = 32, width: int = 128
    ) -> LayerSkipMLP:
        return cls(int(torch.Size(input_shape).numel()), num_classes, depth=depth, width=width)

    def complexity_costs(self) -> dict[str, torch.Tensor]:
        """c_l = number of weights a kept layer uses (saito2018's weight count)."""
        per_layer = float(self.width * self.width + self.width)
        return {"layers": torch.full((self.depth - 1,), per_layer)}

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
            pieces, start = [], 0
            for s in range(1, num_arch + 1):  # runs of consecutive samples with equal flags
                if s == num_arch or flags[s] != flags[start]:
                    block = h[start * rows : s * rows]
                    pieces.append(F.relu(layer(block)) if flags[start] else block)
                    start = s
            h = torch.cat(pieces)
        logits = self.output(h)
        logits = (
            logits.expand(num_arch, *logits.shape) if shared else logits.view(num_arch, -1, logits.shape[-1])
        )
        sites.classification_likelihood(logits, y)
        return logits
