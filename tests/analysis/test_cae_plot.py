"""The diagram of a chosen CAE (pdas2019 §4.2's inpainting space) and its place in the run report."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from matplotlib.patches import FancyBboxPatch

from bayesnas.analysis import (
    CategoricalMarginal,
    Posterior,
    cae_choice_probabilities,
    draw_cae_genotype,
    plot_cae_genotype,
)
from bayesnas.analysis.report import write_report
from bayesnas.methods import run
from bayesnas.methods.inpainting import InpaintingConfig, load_images
from bayesnas.nn.cae import LAYER_TYPES, active_chain, decode_genotype, genotype_from_arch, search_variables

OPTIONS = {"num_hidden": 6, "level_back": 3, "channels": (8, 16, 32)}

# Layers 1, 2, 4, 6 active (6 reads 4, 4 reads 2, 2 reads 1); 3 and 5 inactive. Layer 2 downsamples.
GENOTYPE = {
    "layers": [{"type": "conv3x3+skip", "channels": 16, "input": "input"},
               {"type": "conv5x5+down", "channels": 32, "input": "layer1"},
               {"type": "conv1x1+skip", "channels": 8, "input": "layer2"},
               {"type": "conv1x1+skip", "channels": 8, "input": "layer2"},
               {"type": "conv3x3+down", "channels": 16, "input": "layer4"},
               {"type": "conv5x5+skip", "channels": 32, "input": "layer4"}],
    "output": {"input": "layer6"},
}
CHAIN = [1, 2, 4, 6]


def cae_posterior(seed: int = 0, **options) -> Posterior:
    """Random categorical marginals for every site of an inpainting space."""
    gen = torch.Generator().manual_seed(seed)
    marginals = []
    for name, labels in search_variables(**{**OPTIONS, **options}).items():
        theta = torch.rand(len(labels), generator=gen) + 0.05
        marginals.append(CategoricalMarginal(name, theta / theta.sum(), labels=labels))
    return Posterior(marginals)


POSTERIOR = cae_posterior()


def assert_png(path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5_000


def texts(fig, prefix: str) -> dict[str, str]:
    """The figure's texts whose gid starts with ``prefix``, by gid."""
    return {t.get_gid(): t.get_text() for ax in fig.axes for t in ax.texts
            if (t.get_gid() or "").startswith(prefix)}


def test_plot_cae_genotype_writes_a_png_with_and_without_probabilities(tmp_path):
    plain = plot_cae_genotype(GENOTYPE, tmp_path / "deep" / "plain.png")
    assert plain == tmp_path / "deep" / "plain.png"
    assert_png(plain)
    probs = cae_choice_probabilities(GENOTYPE, POSTERIOR)
    assert_png(plot_cae_genotype(GENOTYPE, tmp_path / "probs.png", probabilities=probs))


@pytest.mark.parametrize("edit, match", [
    (lambda g: g["layers"][2].update(type="conv7x7+skip"), "Layer 3 has a type among"),
    (lambda g: g["layers"][1].update(input="layer3"), "Layer 2 reads an earlier layer"),
    (lambda g: g.update(output={"input": "input"}), "The output layer reads a hidden layer"),
    (lambda g: g.pop("output"), r"maps exactly \['layers', 'output'\]"),
])
def test_a_bad_genotype_raises_before_writing(tmp_path, edit, match):
    bad = copy.deepcopy(GENOTYPE)
    edit(bad)
    with pytest.raises(ValueError, match=match):
        plot_cae_genotype(bad, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_bad_probabilities_raise(tmp_path):
    probs = cae_choice_probabilities(GENOTYPE, POSTERIOR)
    short = {**probs, "layers": probs["layers"][:-1]}
    with pytest.raises(ValueError, match="must give the 6 layers"):
        plot_cae_genotype(GENOTYPE, tmp_path / "a.png", probabilities=short)
    wrong = copy.deepcopy(probs)
    wrong["layers"][3]["type"] = 1.5
    with pytest.raises(ValueError, match=r"layer 4 need 'type'"):
        plot_cae_genotype(GENOTYPE, tmp_path / "b.png", probabilities=wrong)
    assert not list(tmp_path.iterdir())


def test_choice_probabilities_read_the_marginals_of_the_chosen_labels():
    probs = cae_choice_probabilities(GENOTYPE, POSTERIOR.to_summary())  # a posterior.json works too
    assert len(probs["layers"]) == 6
    layer4 = probs["layers"][3]
    kind = LAYER_TYPES.index("conv1x1+skip")
    assert layer4["type"] == pytest.approx(POSTERIOR["cae.layer4.type"].theta[kind].item())
    assert layer4["channels"] == pytest.approx(POSTERIOR["cae.layer4.channels"].theta[0].item())  # "8"
    assert layer4["input"] == pytest.approx(POSTERIOR["cae.layer4.input"].theta[1].item())  # layer1..3
    assert probs["output"] == pytest.approx(POSTERIOR["cae.output.input"].theta[2].item())  # layer4..6
    assert probs["layers"][0]["input"] is None  # layer 1 always reads the image: fixed, no site
    # One channel option: the channels are fixed too.
    one = genotype_from_arch({n: 0 for n in search_variables(4, 2, (8,))}, num_hidden=4, level_back=2,
                             channels=(8,))
    fixed = cae_choice_probabilities(one, cae_posterior(num_hidden=4, level_back=2, channels=(8,)))
    assert all(row["channels"] is None for row in fixed["layers"])
    with pytest.raises(KeyError, match="no site of the inpainting space"):
        cae_choice_probabilities(GENOTYPE, Posterior([CategoricalMarginal("cell.x", [0.5, 0.5])]))
    with pytest.raises(ValueError, match="has no value '64'"):
        bad = copy.deepcopy(GENOTYPE)
        bad["layers"][0]["channels"] = 64
        cae_choice_probabilities(bad, POSTERIOR)


def test_the_drawing_labels_the_active_chain_and_greys_the_rest():
    probs = cae_choice_probabilities(GENOTYPE, POSTERIOR)
    fig = draw_cae_genotype(GENOTYPE, probabilities=probs)
    layers, output = decode_genotype(GENOTYPE)
    assert active_chain(layers, output) == CHAIN
    boxes = texts(fig, "layer:")
    assert boxes["layer:input"] == "input" and boxes["layer:output"] == "output"
    for i, layer in enumerate(GENOTYPE["layers"], start=1):
        lines = boxes[f"layer:{i}"].split("\n")
        if i in CHAIN:
            assert lines[:3] == [f"layer{i}", layer["type"], f"{layer['channels']} ch"]
            p = probs["layers"][i - 1]
            assert lines[3] == f"P {p['type']:.2f} · {p['channels']:.2f}"
        else:
            assert lines == [f"layer{i}", "(inactive)"]
    # The decoder mirrors the chain: one deconvolution per active layer, with its kernel and stride.
    decoders = texts(fig, "decoder:")
    assert set(decoders) == {*(f"decoder:{i}" for i in CHAIN), "decoder:output"}
    for i in CHAIN:
        kind, channels = GENOTYPE["layers"][i - 1]["type"], GENOTYPE["layers"][i - 1]["channels"]
        k, stride = kind[4], 1 if kind.endswith("+skip") else 2
        assert decoders[f"decoder:{i}"] == f"deconv{k}x{k}\nstride {stride}\n{channels} ch"
    # P(input) on the arcs of the searched inputs (layer 1's is fixed: no label).
    arcs = texts(fig, "input:")
    assert set(arcs) == {"input:2", "input:4", "input:6", "input:output"}
    assert arcs["input:4"] == f"P {probs['layers'][3]['input']:.2f}"
    assert arcs["input:output"] == f"P {probs['output']:.2f}"
    ax = fig.axes[0]
    assert "input → layer1 → layer2 → layer4 → layer6 → output (4 of 6 layers active)" in ax.get_title()
    # Arrows: one arc per active layer and the output, e_k down to the decoder, 4 decoder steps,
    # and one dashed skip addition per +skip layer of the chain (layers 1, 4, 6).
    boxes_drawn = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes_drawn) == 8 + 5
    assert len(ax.patches) - len(boxes_drawn) == (4 + 1) + 1 + 4 + 3
    # Without probabilities the boxes carry type and channels alone and the arcs no text.
    plain = draw_cae_genotype(GENOTYPE)
    assert texts(plain, "layer:")["layer:2"] == "layer2\nconv5x5+down\n32 ch"
    assert not texts(plain, "input:")


PAPER = {"num_hidden": 20, "level_back": 5, "channels": (64, 128, 256)}  # pdas2019 §4.2


@pytest.mark.parametrize("options", [OPTIONS, PAPER])
def test_every_box_and_label_lies_inside_the_axes(options):
    gen = torch.Generator().manual_seed(3)
    arch = {n: int(torch.randint(len(v), (), generator=gen)) for n, v in search_variables(**options).items()}
    genotype = genotype_from_arch(arch, **options)
    fig = draw_cae_genotype(genotype)
    for ax in fig.axes:
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        for t in ax.texts:
            x, y = t.get_position()
            assert x0 < x < x1 and y0 < y < y1, (t.get_text(), x, y)
        for box in (p for p in ax.patches if isinstance(p, FancyBboxPatch)):
            bx, by, w, h = box.get_x(), box.get_y(), box.get_width(), box.get_height()
            assert x0 < bx and bx + w < x1 and y0 < by and by + h < y1


# -- the report of an inpainting run -------------------------------------------------------------
@pytest.fixture(scope="module")
def inpainting_run(tmp_path_factory):
    """A tiny finished inpainting run (as tests/methods/test_inpainting.py's), built here: the committed
    example runs under runs/ are not part of a clean clone."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("inpainting") / "center"
        config = InpaintingConfig(dataset="digits", side=8, num_hidden=4, level_back=2, channels=(4, 8),
                                  search_iterations=6, retrain_iterations=4, random_architectures=1,
                                  test_images=30, checkpoint_every=2)
        run(config, out=out, progress=False, data=load_images("digits"))
    finally:
        torch.set_num_threads(threads)
    return out


def test_the_report_of_an_inpainting_run_shows_its_autoencoder_and_curves(inpainting_run):
    paths = write_report(inpainting_run)
    names = [p.name for p in paths["figures"]]
    for name in ("genotype.png", "learning_curves.png", "trajectories.png", "entropy.png", "heatmap.png"):
        assert name in names
        assert_png(inpainting_run / "report" / name)
    assert "cell.png" not in names  # the CAE diagram replaces the chains of edge-less sites
    md, page = paths["md"].read_text(), paths["html"].read_text()
    title = md.splitlines()[0]
    assert title == "# bayesnas run: inpainting / mask center (center)" and "?" not in title
    assert "6 of 6 search iterations on digits, seed 0." in md
    assert "not a valid genotype" not in md and "Chosen cells" not in md
    assert "## Chosen autoencoder (genotype.json)" in md
    assert page.count("data:image/png;base64,") == len(names)
    # The active chain, one row per layer with P of each choice ("fixed" where the space has no site).
    genotype = json.loads((inpainting_run / "genotype.json").read_text())
    layers, output = decode_genotype(genotype)
    chain = active_chain(layers, output)
    probs = cae_choice_probabilities(genotype, Posterior.load(inpainting_run / "posterior.json"))

    def p(value):
        return "fixed" if value is None else f"{value:.3f}"

    for i in chain:
        layer, q = genotype["layers"][i - 1], probs["layers"][i - 1]
        assert (f"| layer{i} | {layer['type']} | {p(q['type'])} | {layer['channels']} | {p(q['channels'])} | "
                f"{layer['input']} | {p(q['input'])} |") in md
    assert f"| output | deconv3x3 (decoder output) | — | — | — | layer{output} | {p(probs['output'])} |" in md
    inactive = [f"layer{i}" for i in range(1, 5) if i not in chain]
    assert f"Inactive layers (never computed): {', '.join(inactive) or 'none'}." in md
    # PSNR / SSIM of the re-trained networks; no collapse warning for the "+skip" convolutions.
    assert "| network | PSNR [dB] | SSIM |" in md and "| searched |" in md and "| random0 |" in md
    assert "Possible collapse" not in md
