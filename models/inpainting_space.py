"""The symmetric-CAE inpainting space of pdas2019 §4.2, as a Pyro model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from bayesnas import sites
from bayesnas.nn.cae import (
    DEFAULT_CHANNELS,
    CAESearchNetwork,
    SymmetricCAE,
    check_space_options,
    decode_genotype,
    genotype_from_arch,
    search_variables,
)


class InpaintingSearchSpace(nn.Module):
    """N_c hidden layers of a symmetric convolutional autoencoder searched by categorical θ
    (pdas2019 §4.2 "Search Space", after Suganuma et al. 2018).

    Hidden layer i has the arch sites ``cae.layer{i}.type`` (6 labels, e.g. ``"conv3x3+skip"``),
    ``cae.layer{i}.channels`` (e.g. ``"64"``) and, for i ≥ 2, ``cae.layer{i}.input`` (``"input"``
    or ``"layer{j}"``, one of the last b layers); the output layer has ``cae.output.input``.
    With the defaults (N_c = 20, b = 5, channels {64, 128, 256}): D = 60 variables and 274 θ
    entries, as in the paper. :mod:`bayesnas.nn.cae` describes the decoding and the choices
    the paper leaves open.

    ``forward(x_masked, target=None)`` returns the reconstructions ``(S, N, C, H, W)`` of the S
    sampled architectures, each computing only its active chain on the weight-sharing
    :class:`~bayesnas.nn.cae.CAESearchNetwork`, and declares ``target ~ Normal(·, 1/√2)``
    (:func:`bayesnas.sites.regression_likelihood`: the per-architecture loss is the MSE plus a
    constant). :meth:`genotype` names an architecture's choices; :meth:`stand_alone` builds its
    :class:`~bayesnas.nn.cae.SymmetricCAE` with this network's weights.
    """

    def __init__(
        self,
        in_channels: int = 3,
        *,
        num_hidden: int = 20,
        level_back: int = 5,
        channels: Sequence[int] = DEFAULT_CHANNELS,
    ) -> None:
        super().__init__()
        channels = tuple(channels)
        check_space_options(num_hidden, level_back, channels, in_channels)
        self.options = dict(num_hidden=num_hidden, level_back=level_back, channels=channels)
        self.in_channels = in_channels
        self.variables = search_variables(num_hidden, level_back, channels)
        self.net = CAESearchNetwork(in_channels=in_channels, num_hidden=num_hidden, channels=channels)

    def _declare(self, device: torch.device) -> dict[str, list[int]]:
        """Every arch site, as one list of S category indices per site."""
        return {name: sites.categorical(name, labels, device=device).reshape(-1).tolist()
                for name, labels in self.variables.items()}

    def forward(self, x_masked: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstructions ``(S, N, C, H, W)`` of masked images ``(N, C, H, W)``."""
        choices = self._declare(x_masked.device)
        num_arch = len(next(iter(choices.values())))
        out = []
        for s in range(num_arch):  # one pass per sampled architecture: its active chain only
            layers, output = self.decode({name: v[s] for name, v in choices.items()})
            out.append(self.net(x_masked, layers, output))
        pred = torch.stack(out)
        sites.regression_likelihood(pred, target)
        return pred

    def decode(self, arch: Mapping[str, Any]) -> tuple[list, int]:
        """The hidden layers and the output's input of an architecture ``{site: index}``."""
        return decode_genotype(self.genotype(arch))

    def genotype(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """The named choices (JSON genotype) of an architecture ``{site: index}``."""
        return genotype_from_arch(arch, **self.options)

    def stand_alone(self, arch: Mapping[str, Any]) -> SymmetricCAE:
        """The fixed network of ``arch`` with this search network's weights (replays it exactly)."""
        net = SymmetricCAE(self.genotype(arch), in_channels=self.in_channels)
        return net.to(self.net.output.device).load_search_weights(self.net)

    def num_weights_used(self, arch: Mapping[str, Any]) -> int:
        """Weights of the fixed network of ``arch``."""
        net = SymmetricCAE(self.genotype(arch), in_channels=self.in_channels)
        return sum(p.numel() for p in net.parameters())
