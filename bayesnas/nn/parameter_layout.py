"""Many parameter tensors of a module as one flat vector, and back.

A Bayesian network with a ``pyro.sample`` site per weight tensor pays Pyro's bookkeeping
(tracing, replay, one analytic KL) once per tensor: ~150 sites for a VINNAS supernetwork,
a third of its search step on CPU and most of it on a GPU (``benchmarks/lrt_step_time.py``).
With a :class:`ParameterLayout` the model declares one site over all the weights and the
guide draws one Normal over them; :meth:`ParameterLayout.unflatten` hands each layer its
view, and under :func:`bayesnas.handlers.local_reparameterization` the views keep the LRT
(:func:`~bayesnas.handlers.local_reparameterization.split_draw`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from bayesnas.handlers.local_reparameterization import split_draw


class ParameterLayout:
    """The names and shapes of (some of) a module's parameters, in a fixed order.

    Args:
        module: the network.
        include: the parameter names to cover, in this order (default: all of
            ``named_parameters()``, in its order).
    """

    def __init__(self, module: nn.Module, *, include: Iterable[str] | None = None) -> None:
        params = dict(module.named_parameters())
        names = list(params) if include is None else list(include)
        unknown = sorted(set(names) - set(params))
        if unknown:
            raise KeyError(f"Unknown parameters {unknown}. The module has {sorted(params)}.")
        if len(set(names)) != len(names):
            raise ValueError(f"`include` names a parameter twice: {names}.")
        self.names: list[str] = names
        self.shapes: list[torch.Size] = [params[n].shape for n in names]

    @property
    def numel(self) -> int:
        """The length of the flat vector."""
        return sum(shape.numel() for shape in self.shapes)

    def flatten(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """One vector: the tensors of :attr:`names`, each flattened, concatenated in order."""
        missing = [n for n in self.names if n not in tensors]
        if missing:
            raise KeyError(f"No tensors for the parameters {missing}.")
        return torch.cat([tensors[n].reshape(-1) for n in self.names])

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """``name → view`` of the flat vector (the inverse of :meth:`flatten`); an LRT-registered
        draw gives registered views."""
        return dict(zip(self.names, split_draw(flat, self.shapes), strict=True))
