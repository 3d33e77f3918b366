"""The cell diagram of a genotype (pdas2019's cell space) and its place in the run report."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from matplotlib.patches import FancyBboxPatch

from bayesnas.analysis import (
    CategoricalMarginal,
    Posterior,
    PosteriorHistory,
    choice_probabilities,
    draw_genotype,
    plot_genotype,
)
from bayesnas.analysis.report import write_report
from bayesnas.models.cell_space import site_names
from bayesnas.nn.cell_network import CELL_KINDS, decode_genotype, encode_genotype, input_labels, unused_nodes
from bayesnas.nn.cell_ops import OPS

NODES = 5


def cell_posterior(seed: int = 0) -> Posterior:
    """Random categorical marginals for every site of the cell space (B = 5)."""
    gen = torch.Generator().manual_seed(seed)
    marginals = []
    for kind in CELL_KINDS:
        for i in range(NODES):
            for name, labels in zip(site_names(kind, i), (input_labels(i), OPS), strict=True):
                theta = torch.rand(2, len(labels), generator=gen) + 0.05
                theta = theta / theta.sum(-1, keepdim=True)
                marginals.append(CategoricalMarginal(name, theta, labels=labels))
    return Posterior(marginals)


def mode_genotype(post: Posterior) -> dict:
    """The genotype of the posterior's most likely architecture, as a search run writes it."""
    arch = post.mode()
    return encode_genotype({kind: [(tuple(arch[site_names(kind, i)[0]]),
                                    tuple(OPS[o] for o in arch[site_names(kind, i)[1]]))
                                   for i in range(NODES)] for kind in CELL_KINDS})


POSTERIOR = cell_posterior()
GENOTYPE = mode_genotype(POSTERIOR)
# A hand-written genotype: normal node n3 reads n2 twice; the reduction cell's output is n2, n3, n4.
FIXED = {
    "normal": [{"inputs": ["c_{k-2}", "c_{k-1}"], "ops": ["sep_conv_3x3", "identity"]},
               {"inputs": ["n0", "c_{k-1}"], "ops": ["sep_conv_5x5", "avg_pool_3x3"]},
               {"inputs": ["n1", "n0"], "ops": ["max_pool_3x3", "identity"]},
               {"inputs": ["n2", "n2"], "ops": ["sep_conv_3x3", "sep_conv_3x3"]},
               {"inputs": ["c_{k-2}", "n3"], "ops": ["identity", "sep_conv_5x5"]}],
    "reduce": [{"inputs": ["c_{k-1}", "c_{k-2}"], "ops": ["max_pool_3x3", "max_pool_3x3"]},
               {"inputs": ["c_{k-1}", "n0"], "ops": ["sep_conv_3x3", "identity"]},
               {"inputs": ["n1", "c_{k-2}"], "ops": ["avg_pool_3x3", "sep_conv_5x5"]},
               {"inputs": ["c_{k-1}", "n1"], "ops": ["identity", "sep_conv_3x3"]},
               {"inputs": ["n1", "c_{k-1}"], "ops": ["sep_conv_5x5", "max_pool_3x3"]}],
}


def assert_png(path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5_000


def texts(fig, prefix: str) -> dict[str, str]:
    """The figure's texts whose gid starts with ``prefix``, by gid."""
    return {t.get_gid(): t.get_text() for ax in fig.axes for t in ax.texts
            if (t.get_gid() or "").startswith(prefix)}


def test_plot_genotype_writes_a_png_with_and_without_probabilities(tmp_path):
    plain = plot_genotype(FIXED, tmp_path / "deep" / "plain.png")
    assert plain == tmp_path / "deep" / "plain.png"
    assert_png(plain)
    sure = plot_genotype(GENOTYPE, tmp_path / "sure.png",
                         probabilities=choice_probabilities(GENOTYPE, POSTERIOR))
    assert_png(sure)
    assert sure.read_bytes() != plot_genotype(GENOTYPE, tmp_path / "bare.png").read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically


@pytest.mark.parametrize("edit, match", [
    (lambda g: g.pop("reduce"), "maps exactly"),
    (lambda g: g["normal"][1].update(inputs=["n1", "c_{k-1}"]), "reads two of"),  # n1 cannot read itself
    (lambda g: g["reduce"][0].update(ops=["conv_7x7", "identity"]), "applies two of"),
    (lambda g: g["normal"][2].update(ops=["identity"]), "applies two of"),
    (lambda g: g.update(normal=[]), "at least one node"),
])
def test_a_bad_genotype_raises_before_writing(tmp_path, edit, match):
    bad = copy.deepcopy(FIXED)
    edit(bad)
    with pytest.raises(ValueError, match=match):
        plot_genotype(bad, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_bad_probabilities_raise(tmp_path):
    probs = choice_probabilities(GENOTYPE, POSTERIOR)
    for kind, i, key, value in (("normal", 0, "ops", [0.5]), ("reduce", 4, "inputs", [0.2, 1.5])):
        bad = copy.deepcopy(probs)
        bad[kind][i][key] = value
        with pytest.raises(ValueError, match=f"node {i} of the {kind} cell need '{key}'"):
            plot_genotype(GENOTYPE, tmp_path / "x.png", probabilities=bad)
    with pytest.raises(ValueError, match="5 nodes of the reduce cell"):
        plot_genotype(GENOTYPE, tmp_path / "x.png", probabilities={"normal": probs["normal"]})


def test_choice_probabilities_read_the_marginals_of_the_chosen_labels():
    probs = choice_probabilities(GENOTYPE, POSTERIOR.to_summary())  # a posterior.json works too
    for kind in CELL_KINDS:
        for i in range(NODES):
            for key, site in zip(("inputs", "ops"), site_names(kind, i), strict=True):
                # The genotype is the mode: each choice has its variable's max probability.
                assert probs[kind][i][key] == pytest.approx(POSTERIOR[site].max_prob().tolist())
    # Another genotype: the probability of its labels, wherever they sit in the site's values.
    probs = choice_probabilities(FIXED, POSTERIOR)
    theta = POSTERIOR["cell.normal.n2.inputs"].theta
    assert probs["normal"][2]["inputs"] == pytest.approx([theta[0, 3].item(), theta[1, 2].item()])  # n1, n0
    theta = POSTERIOR["cell.reduce.n3.ops"].theta
    assert probs["reduce"][3]["ops"] == pytest.approx([theta[0, 0].item(), theta[1, 1].item()])
    with pytest.raises(KeyError, match="cell.normal.n0.inputs"):
        choice_probabilities(FIXED, Posterior([POSTERIOR["cell.reduce.n0.ops"]]))


def test_the_drawing_names_every_state_op_and_probability():
    probs = choice_probabilities(GENOTYPE, POSTERIOR)
    fig = draw_genotype(GENOTYPE, probabilities=probs)
    nodes = decode_genotype(GENOTYPE)
    edges = texts(fig, "edge:")
    assert len(edges) == 2 * 2 * NODES
    for kind in CELL_KINDS:
        for i in range(NODES):
            for j in range(2):
                op, line = edges[f"edge:{kind}.n{i}.{j}"].split("\n")
                assert op == GENOTYPE[kind][i]["ops"][j]
                assert line == f"in {probs[kind][i]['inputs'][j]:.2f} · op {probs[kind][i]['ops'][j]:.2f}"
    for ax, kind in zip(fig.axes, CELL_KINDS, strict=True):
        states = [t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("state:")]
        assert states == ["c_{k-2}", "c_{k-1}", *(f"n{i}" for i in range(NODES)), "c_{k}"]
        # One arrow per node input, one per node concatenated into the output.
        assert len(ax.patches) - len(states) == 2 * NODES + len(unused_nodes(nodes[kind]))
        assert f"concat({', '.join(f'n{u}' for u in unused_nodes(nodes[kind]))})" in ax.get_title()
    # Without probabilities the arcs carry the op names alone.
    plain = texts(draw_genotype(FIXED), "edge:")
    assert plain["edge:normal.n3.1"] == "sep_conv_3x3" and plain["edge:reduce.n2.0"] == "avg_pool_3x3"


UNEVEN = {"normal": FIXED["normal"][:2], "reduce": FIXED["reduce"]}  # cells of 2 and 5 nodes


@pytest.mark.parametrize("genotype", [GENOTYPE, FIXED, UNEVEN])
def test_every_box_and_label_lies_inside_its_panel(genotype):
    fig = draw_genotype(genotype)
    for ax in fig.axes:
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        for t in ax.texts:
            x, y = t.get_position()
            assert x0 < x < x1 and y0 < y < y1, (t.get_text(), x, y)
        for box in (p for p in ax.patches if isinstance(p, FancyBboxPatch)):
            bx, by, w, h = box.get_x(), box.get_y(), box.get_width(), box.get_height()
            assert x0 < bx and bx + w < x1 and y0 < by and by + h < y1


def make_run(path, genotype) -> None:
    """A finished cell-space run directory, as ``bayesnas search enas-cells`` leaves it."""
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"space": "enas-cells", "method": "search", "epochs": 2,
                                                  "dataset": "digits", "seed": 0}))
    (path / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e, "iteration": 10 * e, "train_loss": 2.3 - 0.1 * e, "test_error": 0.8}) + "\n"
        for e in (1, 2)))
    history = PosteriorHistory(path / "posterior_history.jsonl")
    for e in range(3):
        history.append_posterior(epoch=e, iteration=10 * e, posterior=cell_posterior(seed=e))
    (path / "posterior.json").write_text(json.dumps(POSTERIOR.to_summary()))
    (path / "architecture.json").write_text(json.dumps(POSTERIOR.mode()))
    (path / "genotype.json").write_text(json.dumps(genotype))


def test_the_report_of_a_cell_run_shows_the_chosen_cells(tmp_path):
    make_run(tmp_path / "run", GENOTYPE)
    paths = write_report(tmp_path / "run")
    names = [p.name for p in paths["figures"]]
    assert "genotype.png" in names and "heatmap.png" in names
    assert "cell.png" not in names  # edge-less sites would only draw chains: the diagram replaces them
    assert_png(tmp_path / "run" / "report" / "genotype.png")
    md, page = paths["md"].read_text(), paths["html"].read_text()
    assert "(report/genotype.png)" in md and 'href="report/genotype.png"' in page
    assert page.count("data:image/png;base64,") == len(names)
    assert "Chosen cells (genotype.json)" in md
    probs = choice_probabilities(GENOTYPE, POSTERIOR)
    first = GENOTYPE["normal"][0]
    row = (f"| normal | n0 | {', '.join(first['inputs'])} | "
           f"{', '.join(f'{p:.3f}' for p in probs['normal'][0]['inputs'])} | {', '.join(first['ops'])} | "
           f"{', '.join(f'{p:.3f}' for p in probs['normal'][0]['ops'])} |")
    assert row in md
    outputs = ", ".join(f"n{u}" for u in unused_nodes(decode_genotype(GENOTYPE)["reduce"]))
    assert f"reduce: c_{{k}} = concat({outputs})" in md
    # A categorical space has no θ bits: the captions and the collapse line say what is shown.
    assert "Σθ" not in md and "max probability per site" in md
    assert "of the way from uniform to all their mass on such ops" in md


def test_the_report_survives_a_bad_genotype(tmp_path):
    bad = copy.deepcopy(GENOTYPE)
    bad["normal"][0]["ops"] = ["conv_7x7", "identity"]
    make_run(tmp_path / "run", bad)
    paths = write_report(tmp_path / "run")
    assert "genotype.png" not in [p.name for p in paths["figures"]]
    assert "cell.png" in [p.name for p in paths["figures"]]
    assert "genotype.json is not a valid genotype" in paths["md"].read_text()
    assert "conv_7x7" in paths["html"].read_text()


# -- the VINNAS space (vinnas2020): only the layout's kinds, every state into the output ------------
from bayesnas.analysis.genotype_plot import vinnas_strengths  # noqa: E402
from bayesnas.nn.vinnas_cells import edge_names  # noqa: E402
from bayesnas.nn.vinnas_ops import OPS as VINNAS_OPS  # noqa: E402

# Layout M: one reduction cell of I = 2 states; layout F's cells have 3 states of both kinds.
VINNAS_M = {"reduce": [{"inputs": ["c_{k-2}", "c_{k-1}"], "ops": ["sep_conv_3x3", "max_pool_3x3"]},
                       {"inputs": ["c_{k-1}", "n0"], "ops": ["skip_connect", "dil_conv_5x5"]}]}
VINNAS_F = {"normal": [{"inputs": ["c_{k-2}", "c_{k-1}"], "ops": ["sep_conv_5x5", "conv_7x1_1x7"]},
                       {"inputs": ["c_{k-2}", "n0"], "ops": ["avg_pool_3x3", "sep_conv_7x7"]},
                       {"inputs": ["n0", "n1"], "ops": ["dil_conv_3x3", "skip_connect"]}],
            "reduce": [{"inputs": ["c_{k-1}", "c_{k-2}"], "ops": ["max_pool_3x3", "sep_conv_3x3"]},
                       {"inputs": ["c_{k-1}", "n0"], "ops": ["skip_connect", "dil_conv_5x5"]},
                       {"inputs": ["c_{k-2}", "n1"], "ops": ["sep_conv_3x3", "avg_pool_3x3"]}]}
SEP3, POOL, ZERO_OP = (VINNAS_OPS.index(o) for o in ("sep_conv_3x3", "max_pool_3x3", "zero"))


def vinnas_posterior() -> dict:
    """A hand-set posterior.json of layout M: μ = 0, σ = 1 except on the kept ops of n0, whose
    zero op has a large μ the search clips to 0. The rows are stored in reverse edge order, so
    only the edge names can find them."""
    names = edge_names(2)
    mu = [[0.0] * len(VINNAS_OPS) for _ in names]
    sigma = [[1.0] * len(VINNAS_OPS) for _ in names]
    e0, e1 = names.index(("c_{k-2}", "n0")), names.index(("c_{k-1}", "n0"))
    mu[e0][SEP3], sigma[e0][SEP3], mu[e0][ZERO_OP] = 2.0, 0.5, 5.0
    mu[e1][POOL], sigma[e1][POOL], mu[e1][ZERO_OP] = -1.0, 2.0, 3.0
    return {"cell.reduce.alpha": {"family": "normal", "shape": [len(names), len(VINNAS_OPS)],
                                  "choices": list(VINNAS_OPS), "edges": [list(e) for e in names[::-1]],
                                  "mu": mu[::-1], "sigma": sigma[::-1], "num_samples": 500}}


def test_a_vinnas_genotype_draws_only_its_kinds_and_concatenates_every_state():
    for genotype, kinds, states in ((VINNAS_M, ["reduce"], 2), (VINNAS_F, ["normal", "reduce"], 3)):
        fig = draw_genotype(genotype, space="vinnas")
        assert len(fig.axes) == len(kinds)  # no empty normal panel for layout M
        edges = texts(fig, "edge:")
        assert len(edges) == 2 * states * len(kinds)
        for ax, kind in zip(fig.axes, kinds, strict=True):
            title = ax.get_title()
            # VinnasCell.forward concatenates all states, not only the unused ones (pdas).
            assert title == f"{kind} cell: c_{{k}} = concat({', '.join(f'n{i}' for i in range(states))})"
            assert "P(these" not in title
            names = [t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("state:")]
            assert names == ["c_{k-2}", "c_{k-1}", *(f"n{i}" for i in range(states)), "c_{k}"]
            # One arc per kept edge, one dashed arrow per state into the output.
            assert len(ax.patches) - len(names) == 2 * states + states
            for i in range(states):
                for j in range(2):
                    assert edges[f"edge:{kind}.n{i}.{j}"] == genotype[kind][i]["ops"][j]
    assert texts(draw_genotype(VINNAS_M, space="vinnas"), "edge:")["edge:reduce.n1.1"] == "dil_conv_5x5"


def test_vinnas_strengths_and_arc_labels_equal_the_hand_computed_snr_and_weights(tmp_path):
    strengths = vinnas_strengths(VINNAS_M, vinnas_posterior())
    # n0's first edge: SNR 2 / 0.5² = 8; softmax over the 10 ops with μ_zero clipped 5 → 0.
    w_sep = math.exp(2.0) / (math.exp(2.0) + 9.0)
    # n0's second edge: SNR −1 / 2² = −0.25; μ_zero 3 → 0 again.
    w_pool = math.exp(-1.0) / (math.exp(-1.0) + 9.0)
    assert strengths["reduce"][0]["snr"] == pytest.approx([8.0, -0.25])
    assert strengths["reduce"][0]["weights"] == pytest.approx([w_sep, w_pool])
    # n1's edges are untouched: SNR 0, uniform weight 1/10.
    assert strengths["reduce"][1] == {"snr": [0.0, 0.0], "weights": pytest.approx([0.1, 0.1])}
    # Without the clip the zero op would take most of the weight: the clip is what the search mixes.
    unclipped = vinnas_strengths(VINNAS_M, vinnas_posterior(), zero_clip=math.inf)
    want = math.exp(2) / (math.exp(2) + 8 + math.exp(5))
    assert unclipped["reduce"][0]["weights"][0] == pytest.approx(want)
    fig = draw_genotype(VINNAS_M, space="vinnas", strengths=strengths, title="Chosen cells by snr")
    edges = texts(fig, "edge:")
    assert edges["edge:reduce.n0.0"] == f"sep_conv_3x3\nSNR 8 · w {w_sep:.2f}"
    assert edges["edge:reduce.n0.1"] == f"max_pool_3x3\nSNR -0.25 · w {w_pool:.2f}"
    assert "P(these" not in fig.axes[0].get_title() and fig.get_suptitle().startswith("Chosen cells by snr")
    assert_png(plot_genotype(VINNAS_M, tmp_path / "m.png", space="vinnas", strengths=strengths))
    assert_png(plot_genotype(VINNAS_F, tmp_path / "f.png", space="vinnas"))
    with pytest.raises(KeyError, match="cell.normal.alpha"):  # layout F's normal cell has no site here
        vinnas_strengths(VINNAS_F, vinnas_posterior())


@pytest.mark.parametrize("genotype, kwargs, match", [
    ({"cell": VINNAS_M["reduce"]}, {}, r"non-empty subset of \['normal', 'reduce'\].*but got \['cell'\]"),
    ({}, {}, "non-empty subset"),
    ({"reduce": [{"inputs": ["c_{k-1}", "c_{k-1}"], "ops": ["sep_conv_3x3", "skip_connect"]}]}, {},
     r"State n0 of the reduce cell keeps two different edges .* inputs=\['c_\{k-1\}', 'c_\{k-1\}'\]"),
    ({"reduce": [{"inputs": ["c_{k-2}", "c_{k-1}"], "ops": ["zero", "skip_connect"]}]}, {},
     r"applies two of .* but got ops=\['zero', 'skip_connect'\]"),
    ({"normal": VINNAS_F["normal"], "reduce": VINNAS_M["reduce"]}, {}, "The reduce cell needs 3 states"),
    (FIXED, {}, "applies two of"),  # a pdas genotype: its "identity" is no VINNAS op
    (VINNAS_M, {"probabilities": {}}, "`probabilities` belong to the other cell space"),
    (VINNAS_M, {"strengths": {"reduce": [{"snr": [1.0, 2.0], "weights": [0.5, 1.5]}] * 2}},
     r"strengths` of state 0 of the reduce cell need 'weights': two weights in \[0, 1\], "
     r"but got \[0.5, 1.5\]"),
    (VINNAS_M, {"strengths": {"normal": []}}, "must give the 2 states of the reduce cell"),
    (VINNAS_M, {"space": "darts"}, r"`space` must be one of \['pdas', 'vinnas'\], but got space='darts'"),
])
def test_a_bad_vinnas_genotype_or_strengths_raise_before_writing(tmp_path, genotype, kwargs, match):
    kwargs = {"space": "vinnas", **kwargs}
    with pytest.raises(ValueError, match=match):
        plot_genotype(genotype, tmp_path / "x.png", **kwargs)
    assert not (tmp_path / "x.png").exists()


def make_vinnas_run(path, genotypes: dict) -> None:
    """A VINNAS run directory (config without "space"), with the given genotype files."""
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"layout": "M", "gamma_arch": 1.0, "epochs": 2,
                                                  "dataset": "mnist5k", "seed": 0}))
    (path / "posterior.json").write_text(json.dumps(vinnas_posterior()))
    for name, genotype in genotypes.items():
        (path / f"genotype_{name}.json").write_text(json.dumps(genotype))


def test_the_report_of_a_vinnas_run_shows_both_selections(tmp_path):
    make_vinnas_run(tmp_path / "run", {"snr": VINNAS_M, "magnitude": VINNAS_M})
    paths = write_report(tmp_path / "run")
    names = [p.name for p in paths["figures"]]
    assert "genotype_snr.png" in names and "genotype_magnitude.png" in names and "genotype.png" not in names
    for name in ("snr", "magnitude"):
        assert_png(tmp_path / "run" / "report" / f"genotype_{name}.png")
    md, page = paths["md"].read_text(), paths["html"].read_text()
    assert "## Chosen cells by snr (genotype_snr.json)" in md
    assert "## Chosen cells by magnitude (genotype_magnitude.json)" in md
    assert "(report/genotype_snr.png)" in md and 'href="report/genotype_magnitude.png"' in page
    assert "positive SNR μ/σ² (vinnas2020 §IV-C" in md and "posterior mean μ" in md
    assert "| cell | state | inputs | ops | SNR μ/σ² | mixing weight softmax(μ) |" in md
    w_sep, w_pool = (math.exp(m) / (math.exp(m) + 9.0) for m in (2.0, -1.0))
    row = (f"| reduce | n0 | c_{{k-2}}, c_{{k-1}} | sep_conv_3x3, max_pool_3x3 | 8, -0.25 | "
           f"{w_sep:.3f}, {w_pool:.3f} |")
    assert row in md
    assert "reduce: c_{k} = concat(n0, n1)" in md


def test_the_report_of_a_vinnas_run_survives_a_bad_genotype(tmp_path):
    bad = copy.deepcopy(VINNAS_M)
    bad["reduce"][1]["ops"] = ["zero", "skip_connect"]
    make_vinnas_run(tmp_path / "run", {"snr": VINNAS_M, "magnitude": bad})
    paths = write_report(tmp_path / "run")
    names = [p.name for p in paths["figures"]]
    assert "genotype_snr.png" in names and "genotype_magnitude.png" not in names
    md = paths["md"].read_text()
    assert "genotype_magnitude.json is not a valid VINNAS genotype" in md
    assert "ops=['zero', 'skip_connect']" in md  # the rule and the value
    # Only the snr genotype without a posterior: the table and the diagram have no numbers.
    (tmp_path / "run" / "posterior.json").unlink()
    md = write_report(tmp_path / "run")["md"].read_text()
    assert "| reduce | n0 | c_{k-2}, c_{k-1} | sep_conv_3x3, max_pool_3x3 |\n" in md
    assert "| cell | state | inputs | ops |\n" in md and "mixing weight softmax" not in md
