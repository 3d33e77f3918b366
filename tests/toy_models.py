"""Tiny search spaces for exact tests."""

import pyro
import torch

from bayesnas import sites


class HammingToy(torch.nn.Module):
    """Loss = Hamming distance of 10 bits to a hidden target, plus Gaussian noise."""

    def __init__(self, target, noise=0.0, generator=None):
        super().__init__()
        self.register_buffer("target", torch.as_tensor(target, dtype=torch.float32))
        self.noise = noise
        self.generator = generator

    def forward(self, x=None):
        bits = sites.bernoulli("bits", self.target.shape[-1])
        loss = (bits != self.target).float().sum(-1)
        if self.noise:
            loss = loss + self.noise * torch.randn(loss.shape, generator=self.generator)
        pyro.factor("neg_loss", -loss)
        return loss


class MixedToy(torch.nn.Module):
    """Two Bernoulli bits and one 3-way choice; loss from a fixed table."""

    def __init__(self):
        super().__init__()
        self.register_buffer("table", torch.arange(12, dtype=torch.float32).reshape(2, 2, 3))

    def forward(self, x=None):
        b = sites.bernoulli("block.skip", 2).long()
        op = sites.categorical("cell.n0.op", ["conv", "pool", "skip"])
        loss = self.table[b[..., 0], b[..., 1], op]
        pyro.factor("neg_loss", -loss)
        return loss
