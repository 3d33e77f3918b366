"""Selection of connections in a DenseNet: shirakawa2018 experiment (IV), saito2018 §4.2.

The base network is the DenseNet of Huang et al. (2017) with depth 40 and growth rate k = 12
(no bottleneck, no compression, no dropout, as in saito2018 §4.2): a 3×3 stem convolution with
16 channels, three dense blocks of L = 12 layers (each BN–ReLU–3×3 conv producing k channels
from the concatenation of its inputs), transitions BN–ReLU–1×1 conv (as many output as input
channels)–2×2 average pooling between the blocks, and BN–ReLU–global average pooling–linear at
the end.

One Bernoulli bit per connection inside each block. shirakawa2018 (IV): "the input feature-maps
to the l-th layer is computed by (m_p Y_0, ..., m_{p+l-1} Y_{l-1}), where p = l(l-1)/2", with
Y_0 the block's input. The paper's d = 273 = 3 × 91 = 3 × 13·14/2 counts l = 1, ..., L + 1 in
each block: the L = 12 layers (1 + 2 + ... + 12 = 78 bits) *and* the block's output, the
transition (or, after the last block, the classifier), which reads all L + 1 = 13 feature maps
of the block (13 bits). This module follows that count: a block has (L + 1)(L + 2)/2 bits.

A cut connection (m = 0) is *removed*: its channels reach the consumer's convolution (or the
classifier) as zeros. Because the consumer's BN is per channel, zeroing them after its BN–ReLU
is exactly the network from which the connection (its channels, their BN parameters and the
convolution weights reading them) was deleted; zeroing them before the BN would let the BN shift
β leak through the cut connection, and its weights would still be used. The weight tensors
keep their shape, so every architecture shares them. A layer whose inputs are all cut computes
a convolution of zeros (no bias), so it outputs exactly zero; its consumers still read those
zero maps through their own BN–ReLU (a constant, as in the fixed network of that architecture).
(The papers' formula (m_p Y_0, ...) names the consumer's inputs; neither paper says where the BN
sits relative to the mask, nor treats a layer left without inputs specially: this module takes
"we remove the connection" literally, which also makes saito2018's weight count exact.)

saito2018 §4.2 sets the complexity coefficient c_i "to match the number of weights
corresponding to the i-th connection": here the number of weights of the consuming
convolution (or the classifier) that read the connection's channels,
c = (output channels) × (the connection's channels) × (kernel area). The c_i add up to every
weight of the block convolutions, the transitions and the classifier matrix; the stem
convolution, the BN parameters and the classifier bias are not gated by any connection, so
``sum(c) + num_ungated_weights() == sum of all parameter numels``. DenseNet-40 on CIFAR:
d = 273, Σc = 1,001,184 of 1,019,722 parameters (ungated: 432 stem + 18,096 BN + 10 bias).

Implementation notes: the mask is applied to the BN output right before an in-place ReLU
(m·relu(a) = relu(m·a) for m in {0, 1}), and the transition pools before its 1×1 convolution
(the two commute exactly), so the transition conv and the mask see 4× fewer pixels. Pooling
uses ceil mode, so odd and 1×1 maps work (28 → 14 → 7; 8 → 4 → 2); PyTorch's training-mode BN
still needs more than one value per channel, i.e. N·H·W > 1 at every layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas import sites

__all__ = ["DenseNetConnections"]

_OPTIONS = ("growth", "layers_per_block", "blocks", "stem_channels")


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1, but got {name}={value!r}.")


def _pool(z: torch.Tensor) -> torch.Tensor:
    """2×2 average pooling; ceil mode keeps odd sizes' last row and works on 1×1 maps."""
    return F.avg_pool2d(z, 2, ceil_mode=True)


def _mask_(z: torch.Tensor, mask: torch.Tensor) -> None:
    """Zero the cut channels of a BN output in place, right before its in-place ReLU.

    Not recorded by autograd, and need not be: for m in {0, 1}, relu(m·a) has the gradient
    1[relu(m·a) > 0], which is what the ReLU's backward computes from its output, so the cut
    channels get zero gradient without a masking pass in the backward. (BN's backward reads
    its input, not its output, so changing the output in place is safe.)
    """
    with torch.no_grad():
        z.mul_(mask)


class _Consumer(nn.Module):
    """BN over the concatenated inputs, then the op that reads them (conv or linear)."""

    def __init__(self, in_channels: int, op: nn.Module) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.op = op


class DenseNetConnections(nn.Module):
    """DenseNet whose connections inside each dense block can each be cut.

    shirakawa2018 §(IV) (AdaptiveConnection) and saito2018 §4.2: DenseNet-40 (k = 12, three
    blocks of L = 12 layers), d = 273 connection bits; see the module docstring for the exact
    network and what a cut connection does.

    Arch sites: ``"block{b}.connections"`` for b = 1, ..., ``blocks``, each with
    (L + 1)(L + 2)/2 bits, ``choices=("cut", "keep")``. Consumer l = 1, ..., L + 1 of block b
    (layer l, or the block's output for l = L + 1) owns bits p, ..., p + l - 1 with
    p = l(l - 1)/2; bit p + j is the connection from Y_j (j = 0: the block's input), with the
    ``edges`` ``("b{b}.in" or "b{b}.l{j}", "b{b}.l{l}" or "b{b}.out")``.

    Args (keyword-only):
        growth: k, the channels each layer adds (12).
        layers_per_block: L (12).
        blocks: number of dense blocks (3); transitions sit between them.
        in_channels: channels of the input images (3 for CIFAR).
        num_classes: classes of the classifier (10).
        stem_channels: output channels of the first 3×3 convolution (16, as in Huang et al.
            2017 for the DenseNet without bottleneck/compression that both papers use).

    Batched pass: the S sampled architectures run together. The input x (N, C, H, W) is shared
    until the first consumer whose bits differ between samples; from there rows are laid out
    sample-major, (S·N, ...), and each consumer whose bits differ multiplies its BN–ReLU output
    by a per-sample channel mask (S, 1, C, 1, 1) over the (S, N, C, H, W) view; a consumer
    whose bits agree in all samples uses one shared mask, or none if it keeps every input. In
    training mode each BN normalizes over all S·N rows at once (one batch), so once the samples
    diverge their statistics mix the architectures; in evaluation mode (running statistics) the
    batched pass equals running each architecture alone. x of shape (S, n, C, H, W) (each
    architecture its own part of the batch, shirakawa2018 eq. 5) is laid out per sample from the
    start. One host read of the bits per pass.

    A narrow version for CPU: ``growth=6, layers_per_block=4, stem_channels=12`` has
    d = 3 × 5·6/2 = 45 bits and 36,454 parameters on 1×28×28 inputs.
    """

    def __init__(
        self,
        *,
        growth: int = 12,
        layers_per_block: int = 12,
        blocks: int = 3,
        in_channels: int = 3,
        num_classes: int = 10,
        stem_channels: int = 16,
    ) -> None:
        super().__init__()
        _check_positive(
            growth=growth, layers_per_block=layers_per_block, blocks=blocks,
            in_channels=in_channels, stem_channels=stem_channels,
        )
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an integer >= 2, but got num_classes={num_classes!r}.")
        self.growth = growth
        self.layers_per_block = layers_per_block
        self.num_blocks = blocks
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.stem_channels = stem_channels

        L, k = layers_per_block, growth
        self.stem = nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False)
        self.blocks = nn.ModuleList()
        # Per block: the channel counts of its L + 1 sources [k0, k, ..., k], the edges of its
        # bits, and per consumer (offset of its input channels in the mask table, C_in).
        self._sources: list[list[int]] = []
        self._edges: list[list[tuple[str, str]]] = []
        self._consumers: list[list[tuple[int, int]]] = []
        index: list[int] = []
        k0, bit_base = stem_channels, 0
        for b in range(blocks):
            sources = [k0] + [k] * L
            consumers = nn.ModuleList()
            plan, edges = [], []
            for l in range(1, L + 2):  # noqa: E741 -- the papers' layer index l
                c_in = sum(sources[:l])
                if l <= L:
                    op: nn.Module = nn.Conv2d(c_in, k, 3, padding=1, bias=False)
                elif b < blocks - 1:
                    op = nn.Conv2d(c_in, c_in, 1, bias=False)  # transition, no compression
                else:
                    op = nn.Linear(c_in, num_classes)
                consumers.append(_Consumer(c_in, op))
                p = l * (l - 1) // 2
                plan.append((len(index), c_in))
                for j in range(l):
                    index += [bit_base + p + j] * sources[j]
                    src = f"b{b + 1}.in" if j == 0 else f"b{b + 1}.l{j}"
                    dst = f"b{b + 1}.l{l}" if l <= L else f"b{b + 1}.out"
                    edges.append((src, dst))
            self.blocks.append(consumers)
            self._sources.append(sources)
            self._edges.append(edges)
            self._consumers.append(plan)
            bit_base += (L + 1) * (L + 2) // 2
            k0 = k0 + L * k
        self.bits_per_block = (L + 1) * (L + 2) // 2
        # Channel -> bit of every consumer's input, consumers in order: one gather builds all masks.
        self.register_buffer("_channel_bit", torch.tensor(index, dtype=torch.long), persistent=False)

        # He et al. (2015) initialisation (shirakawa2018 §IV), BN at identity.
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @classmethod
    def for_data(
        cls, input_shape: Sequence[int], num_classes: int, **options: Any
    ) -> DenseNetConnections:
        """Build for images of shape ``(C, H, W)``; ``options`` are the keyword-only options."""
        shape = tuple(input_shape)
        if len(shape) != 3 or any(not isinstance(s, int) or s < 1 for s in shape):
            raise ValueError(
                f"DenseNetConnections takes images of shape (C, H, W) with positive sizes, but got "
                f"input_shape={shape}."
            )
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise TypeError(
                f"Unknown DenseNetConnections options {unknown}; the options are {list(_OPTIONS)}."
            )
        return cls(in_channels=shape[0], num_classes=num_classes, **options)

    # -- sites and costs ---------------------------------------------------------------------
    def site_names(self) -> list[str]:
        """The arch sites, one per block: ``["block1.connections", ...]``."""
        return [f"block{b + 1}.connections" for b in range(self.num_blocks)]

    @property
    def num_connections(self) -> int:
        """d, the number of connection bits (273 for DenseNet-40)."""
        return self.num_blocks * self.bits_per_block

    def edges(self, block: int) -> list[tuple[str, str]]:
        """(source, target) node names of the bits of block ``block`` (1-based)."""
        return list(self._edges[block - 1])

    def complexity_costs(self) -> dict[str, torch.Tensor]:
        """c_i = weights of the consuming conv / classifier that read connection i (saito2018 §4.2)."""
        costs = {}
        for b, name in enumerate(self.site_names()):
            values = []
            for l, consumer in enumerate(self.blocks[b], start=1):  # noqa: E741
                weight = consumer.op.weight
                per_channel = weight.numel() // weight.shape[1]
                values += [per_channel * self._sources[b][j] for j in range(l)]
            costs[name] = torch.tensor(values, dtype=torch.get_default_dtype())
        return costs

    def num_ungated_weights(self) -> int:
        """Parameters no connection switches off: stem conv, every BN, the classifier bias."""
        total = sum(p.numel() for p in self.parameters())
        return total - int(sum(int(c.sum()) for c in self.complexity_costs().values()))

    def num_weights_used(self, arch: Mapping[str, Any]) -> int:
        """Weights of the fixed network ``arch``: Σ_i c_i m_i + the ungated weights."""
        specs = {
            name: sites.SiteSpec(name, "bernoulli", (self.bits_per_block,), None, ("cut", "keep"),
                                 tuple(self._edges[b]))
            for b, name in enumerate(self.site_names())
        }
        bits = sites.architecture_to_tensors(arch, specs)
        costs = self.complexity_costs()
        used = sum(int((costs[name] * bits[name][0]).sum()) for name in specs)
        return used + self.num_ungated_weights()

    # -- forward -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(S, N, classes)`` for x ``(N, C, H, W)`` (or ``(S, n, C, H, W)``, eq. 5)."""
        if x.dim() not in (4, 5) or x.shape[-3] != self.in_channels:
            raise ValueError(
                f"DenseNetConnections takes images (N, {self.in_channels}, H, W) or "
                f"(S, n, {self.in_channels}, H, W), but got x of shape {tuple(x.shape)}."
            )
        bits = [
            sites.bernoulli(name, self.bits_per_block, choices=("cut", "keep"), edges=self._edges[b],
                            device=x.device)
            for b, name in enumerate(self.site_names())
        ]
        bits = torch.cat([m.reshape(-1, self.bits_per_block) for m in bits], dim=1)
        num_arch = bits.shape[0]
        per_sample = x.dim() == 5
        if per_sample and x.shape[0] != num_arch:
            raise ValueError(
                f"x of shape (S, n, C, H, W) needs S = the number of architectures ({num_arch}), "
                f"but got x of shape {tuple(x.shape)}."
            )
        # The one host read: which bits every sample shares, and their value.
        same, first = torch.stack([(bits == bits[:1]).all(0), bits[0].bool()]).tolist()
        masks: torch.Tensor | None = None  # (S, channels of all consumers), built on first need

        h = self.stem(x.reshape(-1, *x.shape[-3:]))
        shared = not per_sample  # rows (N, ...) common to all samples, else (S·N, ...)
        bit_base = 0
        for b, consumers in enumerate(self.blocks):
            cur = h
            is_last_block = b == self.num_blocks - 1
            last = len(consumers)
            for l, (consumer, (chan_start, c_in)) in enumerate(  # noqa: E741
                zip(consumers, self._consumers[b], strict=True), start=1
            ):
                lo, hi = bit_base + l * (l - 1) // 2, bit_base + l * (l + 1) // 2
                agree = all(same[lo:hi])
                keep_all = agree and all(first[lo:hi])
                z = consumer.norm(cur)
                if not keep_all:
                    if masks is None:
                        masks = bits.to(z.dtype)[:, self._channel_bit]
                    m = masks[:, chan_start : chan_start + c_in, None, None]
                    if agree:
                        _mask_(z, m[0])
                    elif shared:  # the samples part here: lay the rows out sample-major
                        cur, shared = cur.repeat(num_arch, 1, 1, 1), False
                        z = (z.unsqueeze(0) * m.unsqueeze(1)).flatten(0, 1)
                    else:
                        _mask_(z.view(num_arch, -1, *z.shape[1:]), m.unsqueeze(1))
                z = F.relu(z, inplace=True)
                if l < last:
                    cur = torch.cat([cur, consumer.op(z)], 1)
                elif is_last_block:
                    h = consumer.op(F.adaptive_avg_pool2d(z, 1).flatten(1))
                else:
                    # Pooling commutes with the 1×1 conv (both linear, one per pixel, one per
                    # channel): pooling first is the same transition on 4× fewer pixels.
                    h = consumer.op(_pool(z))
            bit_base += self.bits_per_block
        logits = h.expand(num_arch, *h.shape) if shared else h.view(num_arch, -1, h.shape[-1])
        sites.classification_likelihood(logits, y)
        return logits
