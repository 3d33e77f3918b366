"""The chosen symmetric convolutional autoencoder of the inpainting space (pdas2019 §4.2).

The top row is the encoder as the genotype names it: ``input``, ``layer1`` .. ``layerN_c`` and
``output`` on a line. The layers of the *active chain* (:func:`bayesnas.nn.cae.active_chain`:
the output's input, its input, ... back to the image) are filled and labelled with their type
and channels; the others are greyed, as the network never computes them. An arc above the
line runs from each active layer's input to it, and from the output's input to ``output``.

The bottom row is the decoder that mirrors the active chain: one deconvolution under each
active encoder layer, run in reverse order (right to left), ending in the output
deconvolution under ``input``. Dashed arrows bring the output of each ``+skip`` encoder layer
into its mirrored decoder layer (the skip addition).

With ``probabilities`` (:func:`cae_choice_probabilities` reads them from a run's posterior)
each arc gives P(input) of its choice and each active box P(type) · P(channels); a choice
with a single option is fixed (no arch site) and shows no probability. :func:`draw_cae_genotype`
returns the figure (for tests and notebooks), :func:`plot_cae_genotype` writes it as a PNG.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

from bayesnas.analysis.plots import _LABEL_BOX, _figure, _save
from bayesnas.analysis.posterior import as_posterior
from bayesnas.nn.cae import LAYER_TYPES, OUTPUT_KERNEL, OUTPUT_SITE, Layer, active_chain, decode_genotype
from bayesnas.nn.cae import node_label as _node_label
from bayesnas.nn.cae import site_names as _site_names

__all__ = ["cae_choice_probabilities", "draw_cae_genotype", "is_cae_genotype", "plot_cae_genotype"]

#: ``{"layers": [{"type": P, "channels": P, "input": P}, ...], "output": P}``; ``None`` for a
#: fixed choice (a single option, no arch site).
CAEProbabilities = Mapping[str, Any]

_SPACING = 1.25  # data units (inches at full size) between consecutive boxes on a row
_BOX = (1.05, 0.62)  # width, height of a box
_RISE = (0.3, 0.25)  # arc height above the boxes: first value for neighbours, plus the second per box skipped
_GAP = 0.9  # between the encoder's and the decoder's boxes (room for the skip arrows)
_MAX_WIDTH = 23.0  # inches; wider diagrams are scaled down, text included
_FONT = 7.0
_FILL = {"input": "#dbe9f6", "active": "#fdf3d0", "inactive": "#eeeeee", "decoder": "#e6dcf2",
         "output": "#d9f0d3"}


def is_cae_genotype(genotype: Any) -> bool:
    """Whether ``genotype`` has the CAE format (``layers`` / ``output``), valid or not."""
    return isinstance(genotype, Mapping) and "layers" in genotype


def _probability(post: Any, site: str, label: str) -> float:
    m = post[site]
    probs = m.flat_probs()
    if probs.shape[0] != 1:
        raise ValueError(f"Site {site!r} should hold one choice, but has {probs.shape[0]} variables: "
                         "not an inpainting-space posterior.")
    if label not in m.labels:
        raise ValueError(f"Site {site!r} has no value {label!r}; its values are {list(m.labels)}.")
    return float(probs[0, m.labels.index(label)])


def cae_choice_probabilities(genotype: Mapping[str, Any], posterior: Any) -> dict[str, Any]:
    """P of each choice of ``genotype`` under the marginals of the inpainting space's sites
    (``cae.layer{i}.type`` / ``.channels`` / ``.input``, ``cae.output.input``).

    ``posterior`` is anything :func:`~bayesnas.analysis.posterior.as_posterior` takes (a run's
    ``posterior.json``). Returns ``{"layers": [{"type": P, "channels": P, "input": P}, ...],
    "output": P}``, ``None`` for a choice with a single option, which the space fixes instead
    of searching (no site: e.g. layer 1's input, the channels when only one is offered).
    Raises ``ValueError`` for a malformed genotype and ``KeyError`` when the posterior has no
    ``cae.*`` site at all (not an inpainting run).
    """
    layers, output = decode_genotype(genotype)
    post = as_posterior(posterior)
    names = {m.name for m in post}
    if not any(name.startswith("cae.") for name in names):
        raise KeyError(f"The posterior has no site of the inpainting space (cae.*); its sites are "
                       f"{sorted(names)}.")

    def p(site: str, label: str) -> float | None:
        return _probability(post, site, label) if site in names else None

    rows = []
    for i, layer in enumerate(layers, start=1):
        type_site, channels_site, input_site = _site_names(i)
        rows.append({"type": p(type_site, LAYER_TYPES[layer.type]),
                     "channels": p(channels_site, str(layer.channels)),
                     "input": p(input_site, _node_label(layer.input))})
    return {"layers": rows, "output": p(OUTPUT_SITE, _node_label(output))}


def _check_probabilities(probabilities: CAEProbabilities, num_layers: int) -> None:
    def ok(value: Any) -> bool:
        return value is None or (isinstance(value, int | float) and not isinstance(value, bool)
                                 and 0.0 <= value <= 1.0)

    rows = probabilities.get("layers") if isinstance(probabilities, Mapping) else None
    if not isinstance(rows, Sequence) or len(rows) != num_layers:
        raise ValueError(f"`probabilities` must give the {num_layers} layers as "
                         "{'layers': [{'type': P, 'channels': P, 'input': P}, ...], 'output': P} "
                         f"(see cae_choice_probabilities), but got {probabilities!r}.")
    for i, row in enumerate(rows, start=1):
        for key in ("type", "channels", "input"):
            value = row.get(key) if isinstance(row, Mapping) else math.nan
            if not ok(value):
                raise ValueError(f"`probabilities` of layer {i} need {key!r}: a probability in [0, 1] "
                                 f"or None (fixed), but got {value!r}.")
    if not ok(probabilities.get("output")):
        raise ValueError("`probabilities` need 'output': a probability in [0, 1] or None (fixed), "
                         f"but got {probabilities.get('output')!r}.")


def _fmt_p(value: float | None) -> str:
    return "fixed" if value is None else f"{value:.2f}"


def _box(ax: Axes, x: float, y: float, label: str, fill: str, gid: str, font: float, *,
         grey: bool = False) -> FancyBboxPatch:
    w, h = _BOX
    box = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.1",
                         facecolor=_FILL[fill], edgecolor="#aaaaaa" if grey else "black",
                         linewidth=0.6 if grey else 0.9, linestyle=":" if grey else "-", zorder=3)
    ax.add_patch(box)
    ax.text(x, y, label, ha="center", va="center", fontsize=font, zorder=4, gid=gid,
            color="#999999" if grey else "black", linespacing=1.1)
    return box


def _arc_height(span: int) -> float:
    return _RISE[0] + _RISE[1] * (span - 1)


def _arc(ax: Axes, xa: float, xb: float, **style: Any) -> float:
    """An arc above the encoder line from box top ``xa`` to box top ``xb``; returns the apex's y."""
    top = _BOX[1] / 2
    height = _arc_height(round(abs(xb - xa) / _SPACING))
    rad = -2 * height / abs(xb - xa)  # arc3: the apex lies rad · length / 2 off the chord
    ax.add_patch(FancyArrowPatch((xa, top), (xb, top), connectionstyle=f"arc3,rad={rad:.4f}",
                                 arrowstyle="-|>", mutation_scale=9, shrinkA=0, shrinkB=0, zorder=2,
                                 **style))
    return top + height


def _layer_label(i: int, layer: Layer, probs: Mapping[str, float | None] | None) -> str:
    text = f"layer{i}\n{LAYER_TYPES[layer.type]}\n{layer.channels} ch"
    if probs is not None and (probs["type"] is not None or probs["channels"] is not None):
        text += f"\nP {_fmt_p(probs['type'])} · {_fmt_p(probs['channels'])}"
    return text


def draw_cae_genotype(genotype: Mapping[str, Any], *,
                      probabilities: CAEProbabilities | None = None) -> Figure:
    """The figure of :func:`plot_cae_genotype`, not saved. Its texts carry gids: ``layer:{i}``
    (every encoder box, ``"layer{i}\\n{type}\\n{channels} ch"`` for an active one),
    ``input:{i}`` / ``input:output`` (the arcs' P), ``decoder:{i}`` and ``decoder:output``."""
    layers, output = decode_genotype(genotype)  # raises ValueError naming what is wrong
    if probabilities is not None:
        _check_probabilities(probabilities, len(layers))
    chain = active_chain(layers, output)
    active = set(chain)
    n = len(layers)
    xs = [_SPACING * j for j in range(n + 2)]  # input, layer1 .. layerN, output
    spans = [i - layers[i - 1].input for i in chain] + [n + 1 - output]
    top = _BOX[1] / 2 + _arc_height(max(spans)) + 0.35
    dec_y = -(_BOX[1] + _GAP)
    bottom = dec_y - _BOX[1] / 2 - 0.2
    x0, x1 = -_BOX[0] / 2 - 0.2, xs[-1] + _BOX[0] / 2 + 0.2
    scale = min(1.0, _MAX_WIDTH / (x1 - x0))
    font = max(4.5, _FONT * scale)
    fig = _figure(scale * (x1 - x0) + 0.4, scale * (top - bottom) + 1.3)
    ax = fig.subplots()

    layer_probs = probabilities["layers"] if probabilities is not None else None
    boxes = [_box(ax, xs[0], 0.0, "input", "input", "layer:input", font)]
    for i, layer in enumerate(layers, start=1):
        if i in active:
            label = _layer_label(i, layer, None if layer_probs is None else layer_probs[i - 1])
            boxes.append(_box(ax, xs[i], 0.0, label, "active", f"layer:{i}", font))
        else:
            boxes.append(_box(ax, xs[i], 0.0, f"layer{i}\n(inactive)", "inactive", f"layer:{i}", font,
                              grey=True))
    boxes.append(_box(ax, xs[-1], 0.0, "output", "output", "layer:output", font))

    # Arcs: each active layer's input, and the output's.
    joint = 1.0
    ends = [(layers[i - 1].input, i, f"input:{i}",
             None if layer_probs is None else layer_probs[i - 1]["input"]) for i in chain]
    ends.append((output, n + 1, "input:output", None if probabilities is None else probabilities["output"]))
    for a, b, gid, p in ends:
        y = _arc(ax, xs[a], xs[b], color="C0", linewidth=1.4 if p is None else 0.8 + 1.8 * p)
        if probabilities is not None and p is not None:
            ax.text((xs[a] + xs[b]) / 2, y, f"P {p:.2f}", ha="center", va="center", fontsize=font,
                    bbox=_LABEL_BOX, zorder=5, gid=gid)
    if probabilities is not None:
        for i in chain:
            for key in ("type", "channels", "input"):
                joint *= layer_probs[i - 1][key] if layer_probs[i - 1][key] is not None else 1.0
        joint *= probabilities["output"] if probabilities["output"] is not None else 1.0

    # The mirrored decoder: right to left under the chain, then the output deconvolution.
    decoders = {}
    for i in chain:
        layer = layers[i - 1]
        stride = 1 if layer.skip else 2
        label = f"deconv{layer.kernel}x{layer.kernel}\nstride {stride}\n{layer.channels} ch"
        decoders[i] = _box(ax, xs[i], dec_y, label, "decoder", f"decoder:{i}", font)
    final = _box(ax, xs[0], dec_y, f"output\ndeconv{OUTPUT_KERNEL}x{OUTPUT_KERNEL}", "output",
                 "decoder:output", font)
    solid = dict(arrowstyle="-|>", mutation_scale=9, color="black", linewidth=1.0, zorder=2)
    # e_k goes from the output layer down to the deepest decoder layer.
    ax.add_patch(FancyArrowPatch((xs[-1], -_BOX[1] / 2), (xs[chain[-1]] + _BOX[0] / 2, dec_y),
                                 connectionstyle="angle,angleA=-90,angleB=180,rad=0", shrinkA=0,
                                 shrinkB=0, **solid))
    order = [decoders[i] for i in reversed(chain)] + [final]
    for a, b in zip(order, order[1:], strict=False):
        ax.add_patch(FancyArrowPatch((a.get_x(), dec_y), (b.get_x() + b.get_width(), dec_y), shrinkA=0,
                                     shrinkB=0, **solid))
    for i in chain:
        if layers[i - 1].skip:  # d_i = ReLU(deconv(d_{i+1}) + e_i)
            ax.add_patch(FancyArrowPatch((xs[i], -_BOX[1] / 2), (xs[i], dec_y + _BOX[1] / 2),
                                         arrowstyle="-|>", mutation_scale=9, color="C3", linewidth=1.0,
                                         linestyle="--", shrinkA=0, shrinkB=0, zorder=2))

    ax.set_xlim(x0, x1)
    ax.set_ylim(bottom, top)
    ax.set_aspect("equal")
    ax.set_axis_off()
    path = " → ".join(["input", *(f"layer{i}" for i in chain), "output"])
    title = f"Encoder: {path} ({len(chain)} of {n} layers active)"
    if probabilities is not None:
        title += f"; P(these choices) = {joint:.3g}"
    ax.set_title(title, fontsize=10)
    handles = [Patch(facecolor=_FILL["active"], edgecolor="black", label="active encoder layer"),
               Patch(facecolor=_FILL["inactive"], edgecolor="#aaaaaa", linestyle=":", label="inactive layer"),
               Patch(facecolor=_FILL["decoder"], edgecolor="black", label="mirrored decoder layer"),
               Line2D([], [], color="C0", label="input of a layer"),
               Line2D([], [], color="C3", linestyle="--", label="skip: added to its mirror")]
    fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncols=len(handles))
    sub = "; arcs: P(input), boxes: P(type) · P(channels)" if probabilities is not None else ""
    fig.suptitle(f"Chosen symmetric CAE (genotype.json){sub}", fontsize=10)
    return fig


def plot_cae_genotype(genotype: Mapping[str, Any], path: str | os.PathLike, *,
                      probabilities: CAEProbabilities | None = None) -> Path:
    """Draw a JSON genotype of the inpainting space (``RUN_DIR/genotype.json``) to a PNG at
    ``path``. ``probabilities`` is :func:`cae_choice_probabilities`'s output. A malformed
    genotype or probabilities raise ``ValueError`` before anything is written."""
    return _save(draw_cae_genotype(genotype, probabilities=probabilities), path)
