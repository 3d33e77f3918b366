"""What every experiment script does after choosing its arms: run the study, tabulate, draw.

Each script defines its arms (configurations) and figures; :func:`run_and_summarise` runs
every arm × seed resumably (:mod:`bayesnas.methods.study`), writes ``results.md`` with the exact
command, the data and scale actually used, the table (mean ± std over the seeds) and the
figures, next to the paper's own numbers quoted by the script.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bayesnas.analysis.plots import plot_tradeoff
from bayesnas.analysis.report import Metric, RunRecord, compare_groups, load_run
from bayesnas.data import load_dataset
from bayesnas.methods.study import Arm, command_line, default_jobs, results_dir, run_study, write_markdown

Figure = tuple[str, str, Callable[[dict[str, list[Path]], Path], Path]]


def _scale(args: argparse.Namespace) -> str:
    data = load_dataset(args.dataset, data_dir=args.data_dir, download=args.download, seed=0,
                        flatten=True)
    sizes = ", ".join(f"{len(getattr(data, s))} {s}" for s in ("train", "val", "test")
                      if getattr(data, s) is not None)
    return (f"Data: `{args.dataset}` ({sizes}); {args.epochs} epochs; seeds 0..{args.seeds - 1}; "
            f"device `{args.device}`.")


def run_and_summarise(
    name: str,
    args: argparse.Namespace,
    arms: Sequence[Arm],
    *,
    title: str,
    figures: Sequence[Figure] = (),
    metrics: Sequence[Metric] = (),
    notes: Sequence[str] = (),
    paper: str = "",
    argv: Sequence[str] | None = None,
    findings: Callable[[dict[str, dict[str, tuple[float, float, int]]]], list[str]] | None = None,
) -> dict[str, Any]:
    """Run the study and write ``results.md`` + figures; returns the comparison and paths.

    ``argv`` are the script's arguments (default ``sys.argv[1:]``), quoted in the page.
    ``findings(stats)`` checks the paper's qualitative claims on ``label -> column -> (mean, std,
    n)`` and says, claim by claim, whether they reproduced here."""
    start = time.perf_counter()
    jobs = default_jobs(args)
    groups = run_study(arms, seeds=list(range(args.seeds)), out=args.out, progress=not args.no_progress,
                       jobs=jobs)
    comparison = compare_groups(groups, metrics=metrics)
    out = results_dir(args, name)
    out.mkdir(parents=True, exist_ok=True)
    made = [(fn(groups, out / filename), caption) for filename, caption, fn in figures]
    minutes = (time.perf_counter() - start) / 60
    sections = [
        f"# {title}",
        f"Command: `{command_line([f'experiments/{name}.py', *(sys.argv[1:] if argv is None else argv)])}`",
        _scale(args) + " " + " ".join(notes),
        "Mean ± standard deviation over the seeds (sample standard deviation); errors are test "
        "errors of the most likely architecture unless the column says \"model average\" "
        "(posterior average over sampled architectures, shirakawa2018's stochastic prediction).",
        comparison.markdown(),
        *[f"![{caption}]({path.name})\n\n*{caption}*" for path, caption in made],
    ]
    if findings is not None:
        sections.append("## The paper's findings, checked on this run\n\n"
                        + "\n".join(f"- {line}" for line in findings(comparison.stats)))
    if paper:
        sections.append("## The paper, for reference\n\n" + paper)
    trained = sum(m.get("seconds", 0.0)
                  for runs in comparison.groups.values() for r in runs for m in r.metrics)
    sections.append(f"Training and evaluation time summed over all runs: {trained / 60:.1f} min. Wall time "
                    f"of this invocation: {minutes:.1f} min with {jobs} run(s) at a time "
                    "(runs already finished are not re-run).")
    page = write_markdown(out / "results.md", sections)
    print(comparison.markdown())
    print(f"\nresults written to {page}")
    return {"comparison": comparison, "groups": groups, "page": page, "figures": [p for p, _ in made]}


def _method_of(label: str) -> str:
    return label.split(" ε0=")[0].split(" width")[0]


def tradeoff_figure(
    groups: dict[str, list[Path]],
    path: Path,
    *,
    usage: Callable[[RunRecord], float],
    x_label: str = "weight usage rate",
) -> Path:
    """saito2018 fig. 1: mean ± std over the seeds of (weight usage, test error) of each arm, one
    series per method ("proposed ε0=2^-6" joins the "proposed" series, annotated with its ε0)."""
    points = []
    for label, dirs in groups.items():
        runs = [load_run(d) for d in dirs]
        xs, ys = [usage(r) for r in runs], [r.results["test_error_deterministic"] for r in runs]
        points.append({"label": _method_of(label), "x": statistics.fmean(xs), "y": statistics.fmean(ys),
                       "x_err": statistics.stdev(xs) if len(xs) > 1 else None,
                       "y_err": statistics.stdev(ys) if len(ys) > 1 else None,
                       "annotation": label.split("=")[-1] if "ε0" in label else None})
    return plot_tradeoff(points, path, x_label=x_label)


ERR = "test error (most likely)"
AVG = "test error (model average)"


def verdict(holds: bool) -> str:
    return "**reproduced**" if holds else "**not reproduced**"


def monotone_usage(stats: dict, penalties: Sequence[str], column: str) -> str:
    """saito2018's claim that the weight usage rate falls as ε0 grows (``penalties`` from the
    largest ε0 to the smallest)."""
    usage = [(k, stats[f"proposed ε0={k}"][column][0]) for k in penalties if f"proposed ε0={k}" in stats]
    values = [u for _, u in usage]
    holds = all(a <= b for a, b in zip(values, values[1:], strict=False))
    listed = ", ".join(f"{k}: {u:.3f}" for k, u in usage)
    return f"The weight usage rate rises monotonically as ε0 falls ({listed}): {verdict(holds)}."
