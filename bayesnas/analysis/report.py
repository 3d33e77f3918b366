"""Run reports (``bayesnas report RUN_DIR``) and comparisons (``bayesnas compare RUN_DIR...``).

A report reads what a search run wrote (``config.json``, ``metrics.jsonl``,
``posterior_history.jsonl``, ``posterior.json``, ``results.json``, ``architecture.json``, and
``genotype.json`` for the cell space and the inpainting CAE space), draws the figures of
:mod:`bayesnas.analysis.plots` (and of :mod:`bayesnas.analysis.genotype_plot` or
:mod:`bayesnas.analysis.cae_plot`) into ``RUN_DIR/report/``, and writes
``RUN_DIR/report.md`` and a self-contained ``RUN_DIR/report.html`` (figures embedded) with
the configuration, the curves, the architecture, the credible set and the test metrics. A
run that was killed before it finished still gets a report of what it has.

A VINNAS run (:mod:`bayesnas.methods.vinnas`) exports two genotypes instead of ``genotype.json``:
``genotype_snr.json`` (the positive SNR μ/σ², vinnas2020 §IV-C) and ``genotype_magnitude.json``
(the posterior mean μ); the report draws and tabulates the chosen cells of each that exists,
with the SNR and the mixing weight of every kept op where the posterior is there.

An inpainting run (:mod:`bayesnas.methods.inpainting`) keeps its per-epoch metrics in
``search/metrics.jsonl``; the report reads them from there when the run has no top-level
``metrics.jsonl``, and shows the PSNR / SSIM of its re-trained networks.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayesnas.analysis import plots
from bayesnas.analysis.cae_plot import cae_choice_probabilities, is_cae_genotype, plot_cae_genotype
from bayesnas.analysis.convergence import convergence_stats
from bayesnas.analysis.diagnostics import parameter_free_drift, warning_lines
from bayesnas.analysis.genotype_plot import SPACES, choice_probabilities, plot_genotype, vinnas_strengths
from bayesnas.analysis.history import HISTORY_FILE, PosteriorHistory
from bayesnas.analysis.posterior import Posterior
from bayesnas.nn import cae
from bayesnas.nn.cell_network import decode_genotype, input_labels, unused_nodes
from bayesnas.runs import MetricsLog, atomic_write_text, read_json, run_kind

__all__ = ["RunRecord", "Comparison", "load_run", "write_report", "compare_runs", "compare_groups"]

#: Rows of the posterior table shown in a report (the most uncertain variables first).
TABLE_ROWS = 40


@dataclass
class RunRecord:
    """Everything a run directory holds, parsed (missing files give ``None`` / empty)."""

    path: Path
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    results: dict[str, Any] | None
    architecture: dict[str, Any] | None
    posterior: Posterior | None
    history: list[tuple[int, Posterior]]
    genotype: dict[str, Any] | None = None
    #: a VINNAS run's exported genotypes by selection (``"snr"``, ``"magnitude"``), those that exist.
    vinnas_genotypes: dict[str, Any] = field(default_factory=dict)
    #: the method that wrote the run (``config.json["kind"]``; inferred for older directories).
    kind: str = "search"


#: A VINNAS run's selections (:data:`bayesnas.methods.vinnas.SELECTIONS`' file stems): (file, what ranks).
#: "magnitude" is the criterion ``"mean"`` of ``VinnasSearchSpace.genotype``: the signed μ, not
#: |μ|, since α enters a sign-sensitive softmax and a large negative μ switches an op off.
VINNAS_SELECTIONS = {
    "snr": ("genotype_snr.json", "positive SNR μ/σ² (vinnas2020 §IV-C, the paper's selection)"),
    "magnitude": ("genotype_magnitude.json", "posterior mean μ (the magnitude baseline; signed μ, not |μ|)"),
}


def _read_optional(path: Path) -> Any:
    return read_json(path) if path.exists() else None


def load_run(run_dir: str | os.PathLike) -> RunRecord:
    """Parse a run directory; raise ``FileNotFoundError`` if it is not one."""
    path = Path(run_dir)
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"{path} is not a bayesnas run directory (no config.json); "
            "make one with `bayesnas search SPACE --out DIR`."
        )
    history = PosteriorHistory(path / HISTORY_FILE).posteriors()
    metrics = MetricsLog(path / "metrics.jsonl").read()
    if not metrics:  # an inpainting run logs its search's epochs in search/metrics.jsonl
        metrics = MetricsLog(path / "search" / "metrics.jsonl").read()
    summary = _read_optional(path / "posterior.json")
    posterior = Posterior.from_summary(summary) if summary else (history[-1][1] if history else None)
    config = read_json(path / "config.json")
    kind = run_kind(config)
    vinnas = {}
    if kind == "vinnas":  # only a VINNAS run's files: another run's genotype_*.json mean nothing here
        vinnas = {name: g for name, (file, _) in VINNAS_SELECTIONS.items()
                  if (g := _read_optional(path / file)) is not None}
    return RunRecord(
        path=path,
        config=config,
        metrics=metrics,
        results=_read_optional(path / "results.json"),
        architecture=_read_optional(path / "architecture.json"),
        posterior=posterior,
        history=history,
        genotype=_read_optional(path / "genotype.json"),
        vinnas_genotypes=vinnas,
        kind=kind,
    )


# -- formatting ------------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.{digits}f}"
    return str(value)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class _Document:
    """Builds the Markdown and the HTML of a report side by side, section by section."""

    def __init__(self, title: str) -> None:
        self.md = [f"# {title}", ""]
        self.html = [f"<h1>{html.escape(title)}</h1>"]

    def heading(self, text: str) -> None:
        self.md += [f"## {text}", ""]
        self.html.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str, *, css: str = "") -> None:
        self.md += [text, ""]
        cls = f' class="{css}"' if css else ""
        self.html.append(f"<p{cls}>{html.escape(text)}</p>")

    def code(self, text: str) -> None:
        self.md += ["```", text, "```", ""]
        self.html.append(f"<pre>{html.escape(text)}</pre>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.md += [_md_table(header, rows), ""]
        self.html.append(_html_table(header, rows))

    def figure(self, path: Path, rel: str, caption: str) -> None:
        self.md += [f"![{caption}]({rel})", "", f"*{caption}*", ""]
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        self.html.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(rel)}">'
            f'<figcaption>{html.escape(caption)} (<a href="{html.escape(rel)}">{html.escape(rel)}</a>)'
            "</figcaption></figure>"
        )

    def render_html(self) -> str:
        style = (
            "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
            "color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}"
            "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f3f3f3}"
            "img{max-width:100%}figure{margin:1em 0 2em}pre{background:#f6f6f6;padding:.8em;"
            "overflow-x:auto}.warn{color:#a40;font-weight:bold}"
        )
        return (
            "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>bayesnas report</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(self.html) + "\n</body></html>\n"
        )


# -- the report --------------------------------------------------------------------------------
def _genotype_probabilities(run: RunRecord) -> dict[str, Any] | None:
    """P of each choice of the run's genotype, or ``None`` without a posterior of its sites
    (``ValueError`` for a genotype that is not one)."""
    if run.genotype is None:
        return None
    cae_format = is_cae_genotype(run.genotype)
    # A bad genotype raises here, not as a missing posterior below.
    if cae_format:
        cae.decode_genotype(run.genotype)
    else:
        decode_genotype(run.genotype)
    if run.posterior is None:
        return None
    try:
        if cae_format:
            return cae_choice_probabilities(run.genotype, run.posterior)
        return choice_probabilities(run.genotype, run.posterior)
    except (KeyError, ValueError):  # a posterior without the space's sites: the genotype alone
        return None


def _vinnas_strengths(run: RunRecord, genotype: Any) -> dict[str, Any] | None:
    """SNR and mixing weight of each kept op of a VINNAS genotype, or ``None`` without a
    posterior of its α sites (``ValueError`` for a genotype that is not one)."""
    SPACES["vinnas"].decode(genotype)  # a bad genotype raises here, not as a missing posterior
    if run.posterior is None:
        return None
    try:
        return vinnas_strengths(genotype, run.posterior, zero_clip=float(run.config.get("zero_clip", 0.0)))
    except (KeyError, ValueError):  # a posterior without the layout's α sites: the genotype alone
        return None


def _make_figures(run: RunRecord, fig_dir: Path) -> list[tuple[Path, str]]:
    """Draw every figure the run's data allows; ``(path, caption)`` pairs."""
    post = run.posterior
    made: list[tuple[Path, str]] = []

    def draw(name: str, caption: str, fn: Callable[..., Path], *args: Any, **kwargs: Any) -> None:
        made.append((fn(*args, fig_dir / f"{name}.png", **kwargs), caption))

    genotype_drawn = False
    if run.genotype is not None:
        try:
            probs = _genotype_probabilities(run)
            if is_cae_genotype(run.genotype):
                draw("genotype", "The chosen symmetric CAE (genotype.json): the encoder's active chain "
                     "(inactive layers greyed), each layer's input an arc"
                     + (" with its posterior probability, each box P(type) · P(channels)" if probs else "")
                     + "; below, the mirrored decoder, dashed arrows the skip additions.",
                     plot_cae_genotype, run.genotype, probabilities=probs)
            else:
                draw("genotype", "The chosen normal and reduction cells (genotype.json), each arc named "
                     "by its op" + (" with the posterior probability of its input and of its op." if probs
                                    else "."), plot_genotype, run.genotype, probabilities=probs)
            genotype_drawn = True
        except ValueError:  # _genotype_section says what is wrong; the other figures still come
            pass
    for name, genotype in run.vinnas_genotypes.items():
        file, rule = VINNAS_SELECTIONS[name]
        try:
            strengths = _vinnas_strengths(run, genotype)
            draw(f"genotype_{name}", f"The cells chosen by {name} ({file}): per edge the best op but zero "
                 f"by the {rule}, per state the two edges whose best op ranks highest; each arc named by "
                 "its op" + (" with its SNR μ/σ² and its mixing weight softmax(μ) on that edge (width "
                             "∝ the weight)." if strengths else "."),
                 plot_genotype, genotype, space="vinnas", strengths=strengths,
                 title=f"Chosen cells by {name} ({file})")
            genotype_drawn = True
        except ValueError:  # _vinnas_genotype_section says what is wrong
            pass

    if run.metrics:
        draw("learning_curves", "Training MSE of the search per epoch." if run.kind == "inpainting"
             else "Training loss and validation / test error per epoch.",
             plots.plot_learning_curves, run.metrics)
    if run.history:
        # Without Bernoulli sites (a categorical space) the figures show max probabilities, not θ.
        bits = run.history[-1][1].expected_active() is not None
        draw("trajectories", "Posterior over training: θ per variable and Σθ (shirakawa2018 fig. 2)."
             if bits else "Posterior over training: P(final most likely value) per variable, and the "
             "mean max probability.", plots.plot_trajectories, run.history)
        draw("entropy", "Entropy of the posterior and undecided variables (max probability < 0.9).",
             plots.plot_entropy, run.history)
    if post is not None:
        draw("theta_histograms", "Histograms of θ per site / layer (shirakawa2018 fig. 4)."
             if post.expected_active() is not None
             else "Histograms of each variable's max probability per site (shirakawa2018 fig. 4).",
             plots.plot_theta_histograms, post)
        # Sites without edges draw as chains of their variables, not as a cell: where the
        # genotype diagram shows the real cell (the cell space), the chains would only mislead.
        if not (genotype_drawn and all(m.edges is None for m in post)):
            draw("cell", "The architecture graph; edge widths are posterior probabilities.",
                 plots.plot_cell, post)
        draw("heatmap", "Marginal probability of every value (op) of every variable (edge).",
             plots.plot_heatmap, post)
        if "normal" in post.families:
            draw("cell_snr", "The architecture graph; edge widths are positive SNR μ/σ² (vinnas2020).",
                 plots.plot_cell, post, weight="snr")
            draw("heatmap_snr", "Positive SNR μ/σ² of every op on every edge (vinnas2020).",
                 plots.plot_heatmap, post, value="snr")
    return made


def _config_rows(config: dict[str, Any]) -> list[list[Any]]:
    return [[k, json.dumps(v) if isinstance(v, dict | list) else v] for k, v in sorted(config.items())]


# The re-trained networks of an experiment run: inpainting and NES ("searched"), VINNAS
# ("snr", "magnitude"); "random" lists the random architectures of inpainting and VINNAS,
# "uniform" the uniform-rescale baselines of NES. Columns appear when used.
_RETRAINED = ("searched", "snr", "magnitude")
_NETWORK_COLUMNS = (("test_accuracy", "test accuracy"), ("test_error", "test error"), ("psnr", "PSNR [dB]"),
                    ("ssim", "SSIM"), ("active_layers", "active layers"), ("num_weights", "weights"),
                    ("num_params", "parameters"), ("nonzero_params", "non-zero parameters"),
                    ("resource", "resource (MACs or ms)"), ("resource_ratio", "resource / budget"),
                    ("seconds", "re-training seconds"))


def _network_cell(network: dict[str, Any], key: str) -> Any:
    if key == "active_layers":
        return ", ".join(f"layer{i}" for i in network.get(key, [])) or None
    return network.get(key)


def _results_section(doc: _Document, results: dict[str, Any] | None, *, inpainting: bool = False) -> None:
    doc.heading("Test metrics")
    if not results:
        how = ("`bayesnas.methods.run(out=RUN_DIR, resume=True)`" if inpainting
               else "`bayesnas search --resume RUN_DIR`")
        doc.paragraph(f"The run has not finished: no results.json yet (resume it with {how}).", css="warn")
        return
    single, averaged = results.get("test_most_likely"), results.get("test_model_average")
    if single and averaged:
        rows = [[key, single[key], averaged[key]] for key in ("accuracy", "error", "nll", "ece")]
        doc.table(["metric", "most likely architecture",
                   f"model average ({results.get('stochastic_samples')} architectures)"], rows)
    networks = [(k, results[k]) for k in _RETRAINED if isinstance(results.get(k), dict)]
    networks += [(f"random{r}", n) for r, n in enumerate(results.get("random") or []) if isinstance(n, dict)]
    uniform = results.get("uniform") or {}
    networks += [(f"uniform {kind}", n) for kind, n in uniform.items() if isinstance(n, dict)]
    columns = [(key, title) for key, title in _NETWORK_COLUMNS if any(key in n for _, n in networks)]
    if networks:  # an experiment run (inpainting, VINNAS, NES): its re-trained networks on the test set
        doc.table(["network", *(title for _, title in columns)],
                  [[name, *(_network_cell(n, key) for key, _ in columns)] for name, n in networks])
    other = {k: v for k, v in results.items()
             if not isinstance(v, dict | list) and k not in ("stochastic_samples",)}
    if "at_clip_bound" in (results.get("diagnostics") or {}).get("fired", []) and "mode_probability" in other:
        other["mode_probability"] = f"{_fmt(other['mode_probability'])} (the clip bound, not evidence)"
    doc.table(["result", "value"], sorted(other.items()))


def _diagnostics_section(doc: _Document, run: RunRecord) -> dict[str, Any] | None:
    """The run's diagnostics (``results.json``), first thing after the title: a warning line per
    fired check, then every check with its numbers. Returns them (``None`` when there are none)."""
    if not run.results or ("diagnostics" not in run.results and run.kind != "search"):
        return None
    doc.heading("Diagnostics")
    diagnostics = run.results.get("diagnostics")
    if "diagnostics" not in run.results:
        doc.paragraph("No diagnostics recorded: this run was written before bayesnas checked its "
                      "posterior (re-run it to check).", css="warn")
        return None
    if diagnostics is None:
        doc.paragraph(f"None: a {run.config.get('method')!r} run holds θ fixed, so its posterior is "
                      "not a search's answer.")
        return None
    for line in warning_lines(diagnostics):
        doc.paragraph("Warning: " + line, css="warn")
    checks = diagnostics.get("checks", {})
    if not diagnostics.get("fired"):
        doc.paragraph(f"All {len(checks)} checks passed.")
    doc.table(["check", "fired", "what it found"],
              [[name, "yes" if c["fired"] else "no", c["message"]] for name, c in checks.items()])
    return diagnostics


def _credible_section(doc: _Document, post: Posterior, k: int, *, clipped: bool = False) -> None:
    doc.heading(f"Credible set (top {k})")
    if clipped:
        doc.paragraph("These probabilities are set by θ's clip bound (θmin), not by evidence: see "
                      "Diagnostics.", css="warn")
    members = post.credible_set(k=k)
    rows = []
    for m in members:
        diff = "; ".join(
            f"{site}[{i}]={post[site].labels[post[site].values.index(v)]}"
            for site, changes in m.differs_from_mode.items() for i, v in changes
        )
        rows.append([m.rank, m.probability, m.log_probability, m.cumulative,
                     diff or "(the most likely architecture)"])
    doc.paragraph(f"The {len(members)} most likely distinct architectures hold "
                  f"{members[-1].cumulative:.4g} of the posterior mass; each row says where it "
                  "differs from the most likely one.")
    doc.table(["rank", "probability", "log probability", "cumulative", "differs from the most likely in"],
              rows)


def _genotype_section(doc: _Document, run: RunRecord) -> None:
    """The chosen cells of ``genotype.json``: one row per node, and the probability of each choice."""
    if is_cae_genotype(run.genotype):
        _cae_section(doc, run)
        return
    doc.heading("Chosen cells (genotype.json)")
    try:
        nodes = decode_genotype(run.genotype)
        probs = _genotype_probabilities(run)
    except ValueError as err:
        doc.paragraph(f"genotype.json is not a valid genotype: {err}", css="warn")
        return

    def pair(values: Sequence[float]) -> str:
        return ", ".join(f"{p:.3f}" for p in values)

    rows = []
    for kind, cell in nodes.items():
        for i, (inputs, ops) in enumerate(cell):
            names = ", ".join(input_labels(i)[a] for a in inputs), ", ".join(ops)
            if probs is None:
                rows.append([kind, f"n{i}", *names])
            else:
                p = probs[kind][i]
                rows.append([kind, f"n{i}", names[0], pair(p["inputs"]), names[1], pair(p["ops"])])
    outputs = "; ".join(f"{kind}: c_{{k}} = concat({', '.join(f'n{u}' for u in unused_nodes(cell))})"
                        for kind, cell in nodes.items())
    doc.paragraph(f"Each node adds its two inputs, each through its op; the nodes no other node "
                  f"reads make the cell's output ({outputs}).")
    header = ["cell", "node", "inputs", "ops"]
    if probs is not None:
        header = ["cell", "node", "inputs", "P(inputs)", "ops", "P(ops)"]
    doc.table(header, rows)


def _cae_section(doc: _Document, run: RunRecord) -> None:
    """The chosen CAE of ``genotype.json``: its active chain, one row per layer with the
    probability of each choice, and the inactive layers."""
    doc.heading("Chosen autoencoder (genotype.json)")
    try:
        layers, output = cae.decode_genotype(run.genotype)
        probs = _genotype_probabilities(run)
    except ValueError as err:
        doc.paragraph(f"genotype.json is not a valid genotype: {err}", css="warn")
        return
    chain = cae.active_chain(layers, output)

    def p(value: float | None) -> str:
        return "fixed" if value is None else f"{value:.3f}"

    rows = []
    for i in chain:
        layer = layers[i - 1]
        row = [f"layer{i}", cae.LAYER_TYPES[layer.type], layer.channels, cae.node_label(layer.input)]
        if probs is None:
            rows.append(row)
        else:
            q = probs["layers"][i - 1]
            rows.append([row[0], row[1], p(q["type"]), row[2], p(q["channels"]), row[3], p(q["input"])])
    out_row = ["output", "deconv3x3 (decoder output)", "—", cae.node_label(output)]
    header = ["layer", "type", "channels", "input"]
    if probs is not None:
        header = ["layer", "type", "P(type)", "channels", "P(channels)", "input", "P(input)"]
        out_row = [out_row[0], out_row[1], "—", "—", "—", out_row[3], p(probs["output"])]
    rows.append(out_row)
    path = " → ".join(["input", *(f"layer{i}" for i in chain), "output"])
    doc.paragraph(f"The active chain (the encoder, {len(chain)} of {len(layers)} hidden layers): {path}. "
                  "The decoder mirrors it in reverse order; a +skip layer's output is added to its "
                  "mirrored deconvolution. \"fixed\": a choice with a single option, not searched.")
    doc.table(header, rows)
    inactive = [f"layer{i}" for i in range(1, len(layers) + 1) if i not in set(chain)]
    doc.paragraph("Inactive layers (never computed): " + (", ".join(inactive) if inactive else "none") + ".")


def _vinnas_genotype_section(doc: _Document, run: RunRecord, name: str) -> None:
    """The chosen cells of one VINNAS selection: one row per state, with the SNR and the mixing
    weight of each kept op (vinnas2020 §IV-C)."""
    file, rule = VINNAS_SELECTIONS[name]
    genotype = run.vinnas_genotypes[name]
    doc.heading(f"Chosen cells by {name} ({file})")
    try:
        nodes = SPACES["vinnas"].decode(genotype)
        strengths = _vinnas_strengths(run, genotype)
    except ValueError as err:
        doc.paragraph(f"{file} is not a valid VINNAS genotype: {err}", css="warn")
        return

    def pair(values: Sequence[float], fmt: str) -> str:
        return ", ".join(f"{v:{fmt}}" for v in values)

    rows = []
    for kind, cell in nodes.items():
        for i, (inputs, ops) in enumerate(cell):
            row = [kind, f"n{i}", ", ".join(input_labels(i)[a] for a in inputs), ", ".join(ops)]
            if strengths is not None:
                s = strengths[kind][i]
                row += [pair(s["snr"], ".4g"), pair(s["weights"], ".3f")]
            rows.append(row)
    outputs = "; ".join(f"{kind}: c_{{k}} = concat({', '.join(f'n{u}' for u in range(len(cell)))})"
                        for kind, cell in nodes.items())
    doc.paragraph(f"Selected by the {rule}: per edge the best op other than zero, per state the two "
                  f"incoming edges whose best op ranks highest. Each state adds its two inputs, each "
                  f"through its op; the cell's output concatenates all its states ({outputs}).")
    header = ["cell", "state", "inputs", "ops"]
    if strengths is not None:
        header += ["SNR μ/σ²", "mixing weight softmax(μ)"]
    doc.table(header, rows)


#: What the report's title names for each run kind, after the kind itself.
_SUBTITLES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "search": lambda c: f"{c['space']} / {c['method']}",
    "retrain": lambda c: f"C = {c['channels']}, N = {c['normal_cells']}",
    "inpainting": lambda c: f"mask {c['mask']}",
    "vinnas": lambda c: f"layout {c['layout']}",
    "nes": lambda c: f"{c['backbone']}, budget {c['budget']:g}×",
    "bench": lambda c: f"table {c['table']}",
}


def _title(run: RunRecord) -> str:
    """``space / method`` for a search; otherwise the run's kind and what its config has instead
    (an inpainting run: ``inpainting / mask center``; a VINNAS run: ``vinnas / layout M``; a NES
    run: ``nes / mobilenetv2, budget 0.5×``)."""
    subtitle = _SUBTITLES[run.kind](run.config)
    what = subtitle if run.kind == "search" else f"{run.kind} / {subtitle}"
    return f"bayesnas run: {what} ({run.path.name})"


def _progress_line(run: RunRecord) -> str:
    c = run.config
    last = run.metrics[-1] if run.metrics else {}
    on = f"on {c.get('dataset', '?')}, seed {c.get('seed', '?')}"
    if run.kind == "inpainting":
        return f"{last.get('iteration', 0)} of {c['search_iterations']} search iterations {on}."
    if run.kind == "nes":
        return f"{last.get('epoch', 0)} of {c['outer_iterations']} outer iterations (nes2019 alg. 1) {on}."
    return f"{last.get('epoch', 0)} of {c.get('epochs', '?')} epochs {on}."


def _posterior_section(doc: _Document, post: Posterior) -> None:
    doc.heading("Posterior per variable")
    stats = convergence_stats(post)
    doc.paragraph(
        f"{post.num_variables} variables in {len(post)} site{'s' if len(post) > 1 else ''} "
        f"({', '.join(post.families)}); "
        f"entropy {stats['entropy']:.4g} nats; mean max probability {stats['mean_max_prob']:.4f}; "
        f"{stats['undecided']} undecided (max probability < 0.9)"
        + (f"; Σθ = {stats['expected_active_bits']:.4g}" if "expected_active_bits" in stats else "")
        + "."
    )
    # The measure is the drift from uniform, not the mass itself: with 3 parameter-free ops of 5
    # (the cell space) the uniform start already puts 60% there.
    drift = parameter_free_drift(post)
    if drift.fired:
        doc.paragraph("Warning: " + drift.message, css="warn")
    elif drift.values["edges"]:
        doc.paragraph(drift.message)
    rows = sorted(post.table(), key=lambda r: r["p_mode"])[:TABLE_ROWS]
    keys = ["site", "index", "edge", "mode", "p_mode", "entropy", "theta", "mu", "sigma", "snr"]
    keys = [k for k in keys if any(k in r for r in rows)]

    def cell(v: Any) -> Any:
        return ", ".join(_fmt(x, 3) for x in v) if isinstance(v, list) else v

    shown = "all"
    if post.num_variables > len(rows):
        shown = f"the {len(rows)} most uncertain of {post.num_variables}"
    doc.paragraph(f"Showing {shown} variables.")
    doc.table(keys, [[cell(r.get(k)) for k in keys] for r in rows])


def write_report(run_dir: str | os.PathLike, *, credible_k: int = 10) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``report/*.png`` into ``run_dir``.

    Returns ``{"html": ..., "md": ..., "figures": [...]}`` paths.
    """
    run = load_run(run_dir)
    fig_dir = run.path / "report"
    figures = _make_figures(run, fig_dir)
    doc = _Document(_title(run))
    doc.paragraph(_progress_line(run))
    diagnostics = _diagnostics_section(doc, run)
    _results_section(doc, run.results, inpainting=run.kind == "inpainting")
    if run.posterior is not None:
        _posterior_section(doc, run.posterior)
        clipped = "at_clip_bound" in (diagnostics or {}).get("fired", [])
        _credible_section(doc, run.posterior, credible_k, clipped=clipped)
    if run.architecture is not None:
        doc.heading("Most likely architecture")
        doc.code(json.dumps(run.architecture, sort_keys=True))
    if run.genotype is not None:
        _genotype_section(doc, run)
    for name in run.vinnas_genotypes:
        _vinnas_genotype_section(doc, run, name)
    doc.heading("Figures")
    for path, caption in figures:
        doc.figure(path, f"report/{path.name}", caption)
    doc.heading("Configuration")
    doc.table(["key", "value"], _config_rows(run.config))
    md_path, html_path = run.path / "report.md", run.path / "report.html"
    atomic_write_text(md_path, "\n".join(doc.md))
    atomic_write_text(html_path, doc.render_html())
    return {"html": html_path, "md": md_path, "figures": [p for p, _ in figures]}


# -- comparison --------------------------------------------------------------------------------
#: Configuration keys that never distinguish methods (where and how a run ran).
_INCIDENTAL = {"seed", "device", "data_dir", "download", "tensorboard", "bayesnas_version"}

Metric = tuple[str, Callable[[RunRecord], float | None]]

#: ``(column, getter)`` of the compared metrics.
METRICS: list[Metric] = [
    ("test error (most likely)", lambda r: (r.results or {}).get("test_error_deterministic")),
    ("test error (model average)", lambda r: (r.results or {}).get("test_error_stochastic")),
    ("NLL (model average)", lambda r: ((r.results or {}).get("test_model_average") or {}).get("nll")),
    ("ECE (model average)", lambda r: ((r.results or {}).get("test_model_average") or {}).get("ece")),
    ("weight usage rate", lambda r: (r.results or {}).get("weight_usage_rate")),
    ("Σθ", lambda r: (r.results or {}).get("expected_active_bits")),
    ("entropy", lambda r: (r.results or {}).get("entropy")),
    ("undecided", lambda r: (r.results or {}).get("undecided")),
    ("train seconds", lambda r: sum(m.get("seconds", 0.0) for m in r.metrics) or None),
]


@dataclass
class Comparison:
    """Runs grouped by configuration (seeds pooled): ``groups`` label -> runs, ``table`` rows."""

    groups: dict[str, list[RunRecord]]
    header: list[str]
    rows: list[list[Any]]
    stats: dict[str, dict[str, tuple[float, float, int]]]

    def markdown(self) -> str:
        return _md_table(self.header, self.rows)


def _mean_std(values: list[float]) -> tuple[float, float, int]:
    n = len(values)
    return statistics.fmean(values), (statistics.stdev(values) if n > 1 else 0.0), n


def compare_runs(
    run_dirs: Sequence[str | os.PathLike], *, out: str | os.PathLike | None = None
) -> Comparison:
    """Group runs that differ only in seed; mean ± std (over seeds) of each metric per group.

    With ``out``, also writes ``compare.md``, ``compare.html`` and the accuracy / size
    trade-off plot ``tradeoff.png`` (saito2018 fig. 1) there.
    """
    if not run_dirs:
        raise ValueError("compare needs at least one run directory, but got none.")
    runs = [load_run(d) for d in run_dirs]
    keys = sorted({k for r in runs for k in r.config} - _INCIDENTAL)
    varying = [k for k in keys if len({json.dumps(r.config.get(k), sort_keys=True) for r in runs}) > 1]
    groups: dict[str, list[RunRecord]] = {}
    for r in runs:
        label = (", ".join(f"{k}={json.dumps(r.config.get(k))}" for k in varying)
                 or _SUBTITLES[r.kind](r.config))
        groups.setdefault(label, []).append(r)
    return compare_groups(groups, out=out)


def compare_groups(
    groups: Mapping[str, Sequence[RunRecord | str | os.PathLike]],
    *,
    metrics: Sequence[Metric] = (),
    out: str | os.PathLike | None = None,
) -> Comparison:
    """Mean ± std over the runs of each named group, for :data:`METRICS` plus ``metrics``
    (extra ``(column, getter)`` pairs, e.g. the units per layer of a unit-selection run)."""
    if not groups:
        raise ValueError("compare needs at least one group of runs, but got none.")
    loaded = {label: [r if isinstance(r, RunRecord) else load_run(r) for r in runs]
              for label, runs in groups.items()}
    columns = [*METRICS, *metrics]
    header = ["runs", "seeds", *[name for name, _ in columns]]
    rows, stats = [], {}
    for label, members in loaded.items():
        stats[label] = {}
        row: list[Any] = [label, ", ".join(str(m.config.get("seed")) for m in members)]
        for name, get in columns:
            values = [float(v) for v in (get(m) for m in members) if v is not None]
            if values:
                mean, std, n = _mean_std(values)
                stats[label][name] = (mean, std, n)
                row.append(f"{_fmt(mean)} ± {_fmt(std)}" if n > 1 else _fmt(mean))
            else:
                row.append(None)
        rows.append(row)
    # Columns no group has (Σθ of a categorical space, NLL of unfinished runs) are left out.
    keep = [k for k in range(len(header)) if k < 2 or any(row[k] is not None for row in rows)]
    header, rows = [header[k] for k in keep], [[row[k] for k in keep] for row in rows]
    comparison = Comparison(loaded, header, rows, stats)
    if out is not None:
        _write_comparison(comparison, Path(out))
    return comparison


def _write_comparison(comparison: Comparison, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    doc = _Document("bayesnas: runs compared")
    doc.paragraph("Mean ± standard deviation over the seeds of each group (runs that differ only in seed).")
    doc.table(comparison.header, comparison.rows)
    size_key = next((k for k in ("weight usage rate", "Σθ")
                     if any(k in s for s in comparison.stats.values())), None)
    err_key = "test error (most likely)"
    points = []
    for label, s in comparison.stats.items():
        if size_key in s and err_key in s:
            (x, x_err, _), (y, y_err, _) = s[size_key], s[err_key]
            method = str(comparison.groups[label][0].config.get("method", label))
            points.append({"label": method, "x": x, "y": y, "x_err": x_err, "y_err": y_err,
                           "annotation": label})
    if points:
        path = plots.plot_tradeoff(points, out / "tradeoff.png", x_label=size_key)
        doc.heading("Accuracy / size trade-off")
        doc.figure(path, path.name, f"Test error against {size_key} (saito2018 fig. 1).")
    atomic_write_text(out / "compare.md", "\n".join(doc.md))
    atomic_write_text(out / "compare.html", doc.render_html())
