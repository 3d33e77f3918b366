"""Analytic FLOPs of an architecture from its layer records (nes2019 §4.2, the FLOPs constraint).

Counted: the multiply-accumulates (MACs) of every convolution and dense layer, from the
:class:`~bayesnas.resources.layers.LayerSpec` list of ``backbone.layers(hparams)``, for one
image, without building a network (pure integer arithmetic: many thousands of architectures
a second). BatchNorm, activations, residual additions, pooling, biases and the input rescale
are not counted, as in the MobileNet convention the paper's FLOPs follow.

Two units: :func:`macs` is the multiply-add count that nes2019 (after MobileNet) reports as
"FLOPs" (e.g. "300M" for MobileNetV2 1×); :func:`flops` is ``2 · macs``, one multiply and
one add each, the unit of ``torch.utils.flop_counter.FlopCounterMode``, which the tests match
exactly. A constraint or penalty must use the unit its budget was quoted in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from bayesnas.resources.layers import LayerSpec


class HasLayers(Protocol):
    def layers(self, hparams: Mapping[str, int] | None = None) -> list[LayerSpec]: ...


def layer_macs(spec: LayerSpec) -> int:
    """Multiply-accumulates of one layer on one image.

    A convolution: each of ``out_channels · out_resolution²`` outputs reads
    ``(in_channels / groups) · kernel²`` inputs (padding "same", so the output side is
    ``⌈resolution / stride⌉``; border taps on padding count, as in every analytic counter).
    A dense layer: ``in_channels · out_channels``.
    """
    if spec.kind == "linear":
        return spec.in_channels * spec.out_channels
    out = spec.out_resolution
    return out * out * spec.out_channels * (spec.in_channels // spec.groups) * spec.kernel * spec.kernel


def macs(layers: Iterable[LayerSpec]) -> int:
    """Multiply-accumulates of the layers on one image (the paper's "FLOPs")."""
    return sum(layer_macs(spec) for spec in layers)


def flops(layers: Iterable[LayerSpec]) -> int:
    """FLOPs of the layers on one image, ``2 · macs`` (the unit of torch's ``FlopCounterMode``)."""
    return 2 * macs(layers)


def backbone_macs(backbone: HasLayers, hparams: Mapping[str, int] | None = None) -> int:
    """:func:`macs` of ``backbone.layers(hparams)`` (``None``: the backbone's max architecture)."""
    return macs(backbone.layers(hparams))


def backbone_flops(backbone: HasLayers, hparams: Mapping[str, int] | None = None) -> int:
    """:func:`flops` of ``backbone.layers(hparams)`` (``None``: the backbone's max architecture)."""
    return flops(backbone.layers(hparams))
