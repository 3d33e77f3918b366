"""The symmetric convolutional autoencoder (CAE) of pdas2019 §4.2 "Inpainting" (after Suganuma
et al. 2018, E-CAE; RED-Net-like, Mao et al. 2016), with its genotype and weight sharing.

**Encoding** (pdas2019 §4.2 "Search Space"). N_c hidden layers i = 1..N_c and an output layer.
Hidden layer i has three categorical variables: its *type*, one of the six
:data:`LAYER_TYPES` (kernel {1×1, 3×3, 5×5} × {skip connection, downsampling}); its output
*channels*, one of three (pdas2019: {64, 128, 256}); and its *input*, one of the layers
max(0, i − b) .. i − 1 (b the level-back, layer 0 the input image), i.e. min(i, b) categories
— layer 1 always reads the image, so it has no input variable. The output layer reads one of
the last b hidden layers. With N_c = 20, b = 5: D = 60 variables and 274 θ entries.

The arch site names (:func:`site_names`) are ``cae.layer{i}.type``, ``cae.layer{i}.channels``,
``cae.layer{i}.input`` and ``cae.output.input``. A *genotype* names every choice, as JSON::

    {"layers": [{"type": "conv3x3+skip", "channels": 64, "input": "input"},
                {"type": "conv5x5+down", "channels": 128, "input": "layer1"}, ...],
     "output": {"input": "layer20"}}

**Decoding.** Following the output layer's input back to the image gives the *active chain*
L_1 < ... < L_k (:func:`active_chain`): the encoder. Layers off the chain are inactive and
never computed. The decoder mirrors the encoder in reverse order:

- encoder layer j: ``e_j = ReLU(conv_k(e_{j−1}))`` with stride 1 (skip type) or 2
  (downsampling type), padding k // 2, c_j output channels; e_0 is the (masked) image;
- decoder layer j (for j = k .. 1), input d_{j+1} (d_{k+1} = e_k): a k×k deconvolution from
  c_{j+1} (c_{k+1} = c_k) to c_j channels; for a skip layer, stride 1 and
  ``d_j = ReLU(deconv(d_{j+1}) + e_j)``; for a downsampling layer, stride 2 with the output
  size matched to e_{j−1}'s (``output_padding``) and ``d_j = ReLU(deconv(d_{j+1}))``;
- output: ``y = deconv_3×3(d_1)``, stride 1, from c_1 to the image's channels, no activation.

**Choices the paper leaves open** (decided here):

- *Channels a decoder layer maps back to*: its mirrored encoder layer's own c_j, as in
  Suganuma et al.'s code (``sg-nm/Evolutionary-Autoencoders``); the output deconvolution then
  maps c_1 to the image channels. So the image is never a bottleneck inside the network.
- *What a skip adds*: the mirrored encoder layer's output e_j (same channels; a skip layer has
  stride 1, so the same size). So a skip never adds the image itself, and the channel counts
  always match (Suganuma et al. zero-pad mismatched channels instead).
- *Order of the addition and the ReLU* in a skip layer: added before the ReLU (pdas2019: "the
  input feature maps from the encoder part are added to the output of deconvolution operation
  followed by ReLU").
- *Bias, normalisation*: none (Suganuma et al.'s layers have ``bias=False`` and no BatchNorm).
- *Weight sharing* (:class:`CAESearchNetwork`): every (hidden layer, type) holds one encoder and
  one decoder weight of the largest size, sliced to the chosen channels — the first c output
  and the first c' input channels; different types do not share weights (pdas2019 "The layers
  with different settings do not share weight parameters"). The output deconvolution is one
  weight sliced to c_1 input channels.
- *Output layer's input with N_c < b*: one of all N_c hidden layers (never the image).

:class:`SymmetricCAE` is a plain ``nn.Module`` built from the JSON alone (no Pyro);
:meth:`SymmetricCAE.load_search_weights` copies the slices of a search network into it, and
both run the same functional core (:func:`run_cae`), so it replays the search network exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

KERNELS = (1, 3, 5)
LAYER_TYPES = tuple(f"conv{k}x{k}+{kind}" for k in KERNELS for kind in ("skip", "down"))
DEFAULT_CHANNELS = (64, 128, 256)
IMAGE = "input"
OUTPUT_KERNEL = 3

__all__ = [
    "DEFAULT_CHANNELS",
    "IMAGE",
    "LAYER_TYPES",
    "CAESearchNetwork",
    "Layer",
    "SymmetricCAE",
    "active_chain",
    "check_space_options",
    "decode_genotype",
    "encode_genotype",
    "genotype_from_arch",
    "input_choices",
    "node_label",
    "output_choices",
    "run_cae",
    "search_variables",
    "site_names",
]


@dataclass(frozen=True)
class Layer:
    """One decoded hidden layer: its type (an index into :data:`LAYER_TYPES`), output
    channels and input (0 = the image, j = hidden layer j)."""

    type: int
    channels: int
    input: int

    @property
    def kernel(self) -> int:
        return KERNELS[self.type // 2]

    @property
    def skip(self) -> bool:
        """Skip connection (stride 1) if true, downsampling (stride 2, no skip) otherwise."""
        return self.type % 2 == 0


def node_label(j: int) -> str:
    """The label of layer ``j`` as an input: ``"input"`` (the image) or ``"layer{j}"``."""
    return IMAGE if j == 0 else f"layer{j}"


def _node_index(label: Any) -> int | None:
    if label == IMAGE:
        return 0
    if isinstance(label, str) and label.startswith("layer") and label[5:].isdigit():
        return int(label[5:])
    return None


def input_choices(i: int, level_back: int) -> range:
    """The layers hidden layer ``i`` may read: max(0, i − b) .. i − 1 (pdas2019 §4.2)."""
    return range(max(0, i - level_back), i)


def output_choices(num_hidden: int, level_back: int) -> range:
    """The hidden layers the output layer may read: the last b (all N_c when N_c < b)."""
    return range(max(1, num_hidden + 1 - level_back), num_hidden + 1)


def site_names(i: int) -> tuple[str, str, str]:
    """The arch sites of hidden layer ``i``: its type, its channels and its input."""
    return f"cae.layer{i}.type", f"cae.layer{i}.channels", f"cae.layer{i}.input"


OUTPUT_SITE = "cae.output.input"


def check_space_options(num_hidden: int, level_back: int, channels: Sequence[int], in_channels: int) -> None:
    """Validate the options of the space (Optuna-style messages)."""
    for name, value in (("num_hidden", num_hidden), ("level_back", level_back), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1, but got {name}={value!r}.")
    chans = tuple(channels)
    if len(chans) < 1 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in chans):
        raise ValueError(f"`channels` must be positive integers, but got channels={chans!r}.")
    if len(set(chans)) != len(chans):
        raise ValueError(f"`channels` must be distinct, but got channels={chans!r}.")


def search_variables(
    num_hidden: int, level_back: int, channels: Sequence[int]
) -> dict[str, tuple[str, ...]]:
    """``site name -> labels`` of every categorical variable, in layer order.

    A choice with a single option is fixed, not a variable: layer 1's input, every input when
    b = 1, the channels when only one is given, the output's input when b = 1.
    """
    out: dict[str, tuple[str, ...]] = {}
    for i in range(1, num_hidden + 1):
        type_name, channels_name, input_name = site_names(i)
        out[type_name] = LAYER_TYPES
        if len(channels) > 1:
            out[channels_name] = tuple(str(c) for c in channels)
        inputs = input_choices(i, level_back)
        if len(inputs) > 1:
            out[input_name] = tuple(node_label(j) for j in inputs)
    outputs = output_choices(num_hidden, level_back)
    if len(outputs) > 1:
        out[OUTPUT_SITE] = tuple(node_label(j) for j in outputs)
    return out


def _value(arch: Mapping[str, Any], name: str) -> int:
    if name not in arch:
        return 0  # a fixed choice (one option)
    v = arch[name]
    while isinstance(v, list | tuple):  # one architecture's value, possibly wrapped
        (v,) = v
    return int(v)


def genotype_from_arch(
    arch: Mapping[str, Any], *, num_hidden: int, level_back: int, channels: Sequence[int]
) -> dict[str, Any]:
    """The JSON genotype of an architecture ``{site: category index}`` (a sampled or most
    likely one, e.g. ``bayesnas.sites.tensors_to_architecture(guide.mode())``)."""
    variables = search_variables(num_hidden, level_back, channels)
    unknown = sorted(set(arch) - set(variables))
    if unknown:
        raise KeyError(f"Unknown arch sites {unknown}. Known sites: {sorted(variables)}.")
    for name, labels in variables.items():
        if name not in arch:
            raise KeyError(f"The architecture gives no value for the arch site {name!r}.")
        if not 0 <= _value(arch, name) < len(labels):
            raise ValueError(f"Site {name!r} takes values in [0, {len(labels)}), but got {arch[name]!r}.")
    layers = []
    for i in range(1, num_hidden + 1):
        type_name, channels_name, input_name = site_names(i)
        layers.append(Layer(type=_value(arch, type_name), channels=int(channels[_value(arch, channels_name)]),
                            input=input_choices(i, level_back)[_value(arch, input_name)]))
    return encode_genotype(layers, output_choices(num_hidden, level_back)[_value(arch, OUTPUT_SITE)])


def encode_genotype(layers: Sequence[Layer], output: int) -> dict[str, Any]:
    """The JSON genotype of decoded layers (the inverse of :func:`decode_genotype`)."""
    return {
        "layers": [{"type": LAYER_TYPES[layer.type], "channels": int(layer.channels),
                    "input": node_label(layer.input)} for layer in layers],
        "output": {"input": node_label(output)},
    }


def decode_genotype(
    genotype: Mapping[str, Any],
    *,
    num_hidden: int | None = None,
    level_back: int | None = None,
    channels: Sequence[int] | None = None,
) -> tuple[list[Layer], int]:
    """Check a JSON genotype and decode it into its hidden layers and the output's input.

    Always checked: every layer has a known type, positive integer channels and reads an
    earlier layer; the output reads a hidden layer. With ``num_hidden``, ``level_back`` and
    ``channels``, also the space's rules: N_c layers, inputs within the level-back, channels
    among the choices.
    """
    if not isinstance(genotype, Mapping) or set(genotype) != {"layers", "output"}:
        got = sorted(genotype) if isinstance(genotype, Mapping) else type(genotype).__name__
        raise ValueError(f"A CAE genotype maps exactly ['layers', 'output'], but got {got}.")
    raw = genotype["layers"]
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise ValueError(f"`layers` must be a non-empty list of hidden layers, but got {raw!r}.")
    if num_hidden is not None and len(raw) != num_hidden:
        raise ValueError(f"The space has num_hidden={num_hidden} hidden layers, but the genotype "
                         f"has {len(raw)}.")
    layers = []
    for i, item in enumerate(raw, start=1):
        if not isinstance(item, Mapping) or set(item) != {"type", "channels", "input"}:
            raise ValueError(f"Layer {i} must map exactly ['channels', 'input', 'type'], but got {item!r}.")
        if item["type"] not in LAYER_TYPES:
            raise ValueError(f"Layer {i} has a type among {list(LAYER_TYPES)}, "
                             f"but got type={item['type']!r}.")
        c = item["channels"]
        if isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise ValueError(f"Layer {i} needs a positive integer channel count, but got channels={c!r}.")
        if channels is not None and c not in tuple(channels):
            raise ValueError(f"Layer {i} has channels among {list(channels)}, but got channels={c!r}.")
        j = _node_index(item["input"])
        allowed = range(0, i) if level_back is None else input_choices(i, level_back)
        if j is None or j not in allowed:
            labels = [node_label(a) for a in allowed]
            rule = "an earlier layer" if level_back is None else f"one of the last b={level_back} layers"
            raise ValueError(f"Layer {i} reads {rule}, {labels}, but got input={item['input']!r}.")
        layers.append(Layer(LAYER_TYPES.index(item["type"]), c, j))
    out = genotype["output"]
    j = _node_index(out.get("input")) if isinstance(out, Mapping) and set(out) == {"input"} else None
    n = len(layers)
    allowed = range(1, n + 1) if level_back is None else output_choices(n, level_back)
    if j is None or j not in allowed:
        labels = [node_label(a) for a in allowed]
        rule = "a hidden layer" if level_back is None else f"one of the last b={level_back} hidden layers"
        raise ValueError(f"The output layer reads {rule}, {labels}, but got output={out!r}.")
    return layers, j


def active_chain(layers: Sequence[Layer], output: int) -> list[int]:
    """The active hidden layers, in encoder order: the output's input, its input, ... back to
    the image (1-based layer numbers). The others are inactive."""
    chain = []
    j = output
    while j > 0:
        chain.append(j)
        j = layers[j - 1].input
    return chain[::-1]


# One step of the chain: (encoder weight (c_j, c_{j-1}, k, k), decoder weight (c_{j+1}, c_j, k, k), skip).
Step = tuple[torch.Tensor, torch.Tensor, bool]


def run_cae(x: torch.Tensor, steps: Sequence[Step], output_weight: torch.Tensor) -> torch.Tensor:
    """The CAE of an active chain on images ``x`` (N, C, H, W); the functional core both the
    search network and :class:`SymmetricCAE` run (module docstring for the equations)."""
    encoded, sizes = [], []
    h = x
    for enc, _, skip in steps:
        sizes.append(tuple(h.shape[-2:]))
        h = F.relu(F.conv2d(h, enc, stride=1 if skip else 2, padding=enc.shape[-1] // 2))
        encoded.append(h)
    for (_, dec, skip), e, size in zip(reversed(steps), reversed(encoded), reversed(sizes), strict=True):
        pad = dec.shape[-1] // 2
        if skip:
            h = F.relu(F.conv_transpose2d(h, dec, padding=pad) + e)
        else:
            # (n − 1)·2 − 2p + k = 2n − 1 for odd k, p = k // 2: one more row / column when the
            # encoder's input had an even size.
            extra = tuple(s - (2 * n - 1) for s, n in zip(size, h.shape[-2:], strict=True))
            h = F.relu(F.conv_transpose2d(h, dec, stride=2, padding=pad, output_padding=extra))
    return F.conv_transpose2d(h, output_weight, padding=OUTPUT_KERNEL // 2)


def _chain_channels(
    layers: Sequence[Layer], chain: Sequence[int], in_channels: int
) -> list[tuple[int, int, int]]:
    """(c_{j−1}, c_j, c_{j+1}) along the chain: encoder input, own and decoder input channels."""
    cs = [layers[i - 1].channels for i in chain]
    prev = [in_channels, *cs[:-1]]
    nxt = [*cs[1:], cs[-1]]
    return list(zip(prev, cs, nxt, strict=True))


def _init_(weight: torch.Tensor) -> torch.Tensor:
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # PyTorch's default for conv layers
    return weight


class CAESearchNetwork(nn.Module):
    """The weight-sharing CAE of the search: per hidden layer and type, one encoder and one
    decoder weight of the largest size, plus the output deconvolution; ``forward(x, layers,
    output)`` computes the given architecture's active chain only, on slices of them.

    Args:
        in_channels: the image channels.
        num_hidden: N_c.
        channels: the channel choices of a hidden layer.
    """

    def __init__(self, *, in_channels: int = 3, num_hidden: int = 20,
                 channels: Sequence[int] = DEFAULT_CHANNELS) -> None:
        super().__init__()
        check_space_options(num_hidden, 1, channels, in_channels)
        self.in_channels = in_channels
        self.num_hidden = num_hidden
        c_max = max(channels)
        c_in = max(c_max, in_channels)  # a layer may read the image or any hidden layer
        self.encoders = nn.ModuleList(
            nn.ParameterList(nn.Parameter(_init_(torch.empty(c_max, c_in, KERNELS[t // 2], KERNELS[t // 2])))
                             for t in range(len(LAYER_TYPES)))
            for _ in range(num_hidden))
        # ConvTranspose2d weights are (in, out, k, k): from c_{j+1} back to c_j.
        self.decoders = nn.ModuleList(
            nn.ParameterList(nn.Parameter(_init_(torch.empty(c_max, c_max, KERNELS[t // 2], KERNELS[t // 2])))
                             for t in range(len(LAYER_TYPES)))
            for _ in range(num_hidden))
        self.output = nn.Parameter(_init_(torch.empty(c_max, in_channels, OUTPUT_KERNEL, OUTPUT_KERNEL)))

    def slices(self, layers: Sequence[Layer], output: int) -> tuple[list[Step], torch.Tensor]:
        """The weights of an architecture's active chain: slices of the shared weights."""
        chain = active_chain(layers, output)
        steps = []
        channels = _chain_channels(layers, chain, self.in_channels)
        for i, (c_prev, c, c_next) in zip(chain, channels, strict=True):
            layer = layers[i - 1]
            steps.append((self.encoders[i - 1][layer.type][:c, :c_prev],
                          self.decoders[i - 1][layer.type][:c_next, :c], layer.skip))
        return steps, self.output[: layers[chain[0] - 1].channels]

    def forward(self, x: torch.Tensor, layers: Sequence[Layer], output: int) -> torch.Tensor:
        return run_cae(x, *self.slices(layers, output))


class SymmetricCAE(nn.Module):
    """The CAE of one genotype as a plain ``nn.Module`` (no Pyro): only the active chain's
    layers exist, ``encoder[j]`` and its mirror ``decoder[j]`` (module docstring).

    Args:
        genotype: the JSON genotype (:func:`encode_genotype`).
        in_channels: the image channels.
    """

    def __init__(self, genotype: Mapping[str, Any], *, in_channels: int = 3) -> None:
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"`in_channels` must be an integer >= 1, but got in_channels={in_channels!r}.")
        self.layers, self.output_input = decode_genotype(genotype)
        self.genotype = encode_genotype(self.layers, self.output_input)
        self.in_channels = in_channels
        self.chain = active_chain(self.layers, self.output_input)
        self.skips = [self.layers[i - 1].skip for i in self.chain]
        encoder, decoder = [], []
        for i, (c_prev, c, c_next) in zip(self.chain, _chain_channels(self.layers, self.chain, in_channels),
                                          strict=True):
            layer = self.layers[i - 1]
            k, stride = layer.kernel, 1 if layer.skip else 2
            encoder.append(nn.Conv2d(c_prev, c, k, stride=stride, padding=k // 2, bias=False))
            decoder.append(nn.ConvTranspose2d(c_next, c, k, stride=stride, padding=k // 2, bias=False))
        self.encoder = nn.ModuleList(encoder)
        self.decoder = nn.ModuleList(decoder)
        c_first = self.layers[self.chain[0] - 1].channels
        self.output = nn.ConvTranspose2d(c_first, in_channels, OUTPUT_KERNEL, padding=OUTPUT_KERNEL // 2,
                                         bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = [(e.weight, d.weight, s)
                 for e, d, s in zip(self.encoder, self.decoder, self.skips, strict=True)]
        return run_cae(x, steps, self.output.weight)

    @torch.no_grad()
    def load_search_weights(self, search: CAESearchNetwork) -> SymmetricCAE:
        """Copy this architecture's slices of a search network's weights (returns ``self``)."""
        if search.in_channels != self.in_channels:
            raise ValueError(f"The search network takes in_channels={search.in_channels}, but this "
                             f"network in_channels={self.in_channels}.")
        if search.num_hidden != len(self.layers):
            raise ValueError(f"The search network has num_hidden={search.num_hidden} hidden layers, but "
                             f"this genotype {len(self.layers)}.")
        steps, out = search.slices(self.layers, self.output_input)
        for (enc, dec, _), e, d in zip(steps, self.encoder, self.decoder, strict=True):
            e.weight.copy_(enc)
            d.weight.copy_(dec)
        self.output.weight.copy_(out)
        return self
