"""Selection of activation functions: shirakawa2018 experiment (II)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas import sites
from bayesnas.models.layer_skip import init_linear_


def check_int(name: str, value: object, low: int) -> int:
    """Eager validation of an integer option (the rule and the value in the message)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}, but got {name}={value!r}.")
    return value


class ActivationSelectMLP(nn.Module):
    """A fully connected net whose every hidden unit picks ReLU or tanh.

    shirakawa2018 §(II) "Selection of Activation Functions": three hidden layers of 1,024
    units; the activation of unit i is ``m_i F_relu(X_i) + (1 − m_i) F_tanh(X_i)``, so bit
    m_i = 1 means ReLU and m_i = 0 tanh; d = 3,072 on MNIST. Softmax cross-entropy.

    Arch site: ``"activation"`` of shape ``(depth, width)`` with choices ``("tanh", "relu")``;
    ``activation[l][i]`` is unit i of hidden layer l + 1. The site carries no ``edges``: the
    bits are per unit, and one arc pair per bit would draw 3,072 useless arcs.

    Baselines of the paper: ReLU and tanh are the fixed networks with every bit 1 or 0
    (the runner's ``fixed`` method with ``fixed_value=1`` / ``0``); StochasticActivation is θ
    held at 0.5 (the runner's ``stochastic`` method).

    Initialisation: the paper does not state it for this experiment; it runs on Chainer 1.23,
    whose ``L.Linear`` draws W ~ N(0, 1/fan_in) (LeCun normal) with zero biases, which is
    what is used here (He's initialisation is only stated for experiment IV).

    Batching: the S architectures run as one pass. The first layer's pre-activation is
    computed once for all of them; a layer whose bits are all 1 (all 0) in every sample uses
    plain ReLU (tanh); while the samples agree on every bit the activations stay shared,
    ``(N, width)``; otherwise the mixed activation is evaluated on ``(S, N, width)`` with no
    loop over samples. One host read per pass decides the plan.
    """

    def __init__(
        self, in_features: int = 784, num_classes: int = 10, *, depth: int = 3, width: int = 1024
    ) -> None:
        super().__init__()
        check_int("in_features", in_features, 1)
        check_int("num_classes", num_classes, 2)
        check_int("depth", depth, 1)
        check_int("width", width, 1)
        self.in_features = in_features
        self.num_classes = num_classes
        self.depth = depth
        self.width = width
        dims = [in_features, *([width] * depth)]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:], strict=False))
        self.output = nn.Linear(width, num_classes)
        for layer in [*self.hidden, self.output]:
            init_linear_(layer, "lecun")  # Chainer's default

    @classmethod
    def for_data(
        cls, input_shape: Sequence[int], num_classes: int, *, depth: int = 3, width: int = 1024
    ) -> ActivationSelectMLP:
        """The space for flattened inputs of ``input_shape`` (e.g. ``(1, 28, 28)`` → 784)."""
        return cls(int(torch.Size(input_shape).numel()), num_classes, depth=depth, width=width)

    def extra_repr(self) -> str:
        return f"depth={self.depth}, width={self.width}, d={self.depth * self.width}"

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of shape ``(S, N, C)`` for x of shape ``(N, F)`` (or ``(S, n, F)``, eq. 5)."""
        if x.dim() not in (2, 3) or x.shape[-1] != self.in_features:
            raise ValueError(
                f"ActivationSelectMLP takes flattened inputs (N, {self.in_features}) or "
                f"(S, n, {self.in_features}), but got x of shape {tuple(x.shape)}."
            )
        is_relu = sites.bernoulli(
            "activation", (self.depth, self.width), choices=("tanh", "relu"), device=x.device
        ).bool()
        num_arch = is_relu.shape[0]
        per_sample = x.dim() == 3  # eq. (5): each architecture has its own part of the batch
        if per_sample and x.shape[0] != num_arch:
            raise ValueError(
                f"With per-architecture batches (S, n, F) the leading size must be the number of "
                f"architectures S={num_arch}, but got x of shape {tuple(x.shape)}."
            )
        # One host read: per layer, how many bits are 1 over all samples, and whether the
        # samples all make the same choices there.
        agree = (is_relu == is_relu[:1]).all(-1).all(0)
        plan = torch.stack([is_relu.sum((0, 2)), agree.long()], 1).tolist()
        h, shared = x, not per_sample
        for i, layer in enumerate(self.hidden):
            z = layer(h)
            ones, same = plan[i]
            if ones == num_arch * self.width:
                h = F.relu(z)
            elif ones == 0:
                h = torch.tanh(z)
            elif shared and same:  # one mixed layout for every sample: stay shared, (N, W)
                h = torch.where(is_relu[0, i], F.relu(z), torch.tanh(z))
            else:  # m relu(z) + (1 − m) tanh(z), broadcast to (S, N, W)
                mask = is_relu[:, i].unsqueeze(-2)
                h = torch.where(mask, F.relu(z), torch.tanh(z))
                shared = False
        logits = self.output(h)
        if shared:
            logits = logits.expand(num_arch, *logits.shape)
        sites.classification_likelihood(logits, y)
        return logits
