"""pdas2019 §4.1 / table 1: categorical search over ENAS cells, re-training, and the RANDOM row.

Per seed: (1) search the normal and reduction cells (D = 40 categorical variables, 180 θ
entries) with pdas2019 alg. 1 — W on one half of the training data, θ on the other, λ = 2,
adaptive step size, SGD momentum 0.9, cosine learning rate 0.025 → 0, weight decay 3·10⁻⁴,
gradient clip 5, BatchNorm without affine parameters; (2) re-train the most likely
architecture from its exported ``genotype.json`` alone with more cells, affine BatchNorm,
ScheduledDropPath and the auxiliary head; (3) re-train an architecture drawn uniformly from
the same space with identical settings (RANDOM). Writes ``results.md``: parameters and test
error of both, mean ± std over the seeds, beside the paper's table 1 rows, and the cells of
every searched architecture.

    python experiments/pdas_cifar10.py            # CPU default: digits (8×8), small cells
    python experiments/pdas_cifar10.py --full --device cuda   # the paper: CIFAR-10, 200 + 600 epochs
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from bayesnas.analysis.genotype_plot import choice_probabilities, plot_genotype
from bayesnas.analysis.report import load_run
from bayesnas.methods.retrain import RetrainConfig, load_genotype
from bayesnas.methods.study import (
    SEPARATION,
    Arm,
    base_config,
    command_line,
    default_jobs,
    gap_and_standard_error,
    results_dir,
    run_all,
    run_study,
    separated,
    study_parser,
    write_markdown,
)
from bayesnas.nn.cell_network import random_genotype
from bayesnas.runs import read_json, training_seconds

NAME = "pdas_cifar10"

PAPER = """pdas2019 table 1 (CIFAR-10, 5 re-trainings, N = 6, ~3 M weights, 600 epochs, cutout):

| method | search cost (GPU days) | params (M) | test error (%) |
| --- | --- | --- | --- |
| RANDOM + c/o | - | 3.21 | 4.12 (± 0.44) |
| PDAS + c/o | 0.24 | 3.20 | 2.98 (± 0.12) |
| ENAS + c/o (Pham et al. 2018) | 0.45 | 4.6 | 2.89 |
| DARTS second order + c/o | 4 | 3.4 | 2.83 (± 0.06) |"""

# The paper's scale: search N = 2, C = 16, 200 epochs, batch 64; re-train N = 6 with C giving
# ~3 M weights, 600 epochs, batch 80; cutout 16 on 32×32 images.
FULL = dict(dataset="cifar10", epochs=200, channels=16, cells=2, batch_size=64, retrain_epochs=600,
            retrain_channels=36, retrain_cells=6, retrain_batch_size=80, cutout=16, seeds=5)
SMOKE = dict(dataset="digits", epochs=1, channels=4, cells=1, retrain_epochs=1, retrain_channels=4,
             retrain_cells=1, seeds=2)


def parser() -> argparse.ArgumentParser:
    p = study_parser(NAME, __doc__.split("\n")[0], epochs=100, dataset="digits")
    p.add_argument("--channels", type=int, default=8, help="C of the search network (paper: 16)")
    p.add_argument("--cells", type=int, default=1, help="N of the search network (paper: 2)")
    p.add_argument("--batch-size", type=int, default=64, help="search mini-batch (paper: 64)")
    p.add_argument("--retrain-epochs", type=int, default=30, help="paper: 600")
    p.add_argument("--retrain-channels", type=int, default=16, help="paper: C for ~3 M weights")
    p.add_argument("--retrain-cells", type=int, default=2, help="paper: 6")
    p.add_argument("--retrain-batch-size", type=int, default=80, help="paper: 80")
    p.add_argument("--cutout", type=int, default=0,
                   help="cutout side, search (D_W) and re-training (paper: 16)")
    p.add_argument("--full", action="store_true", help="the paper's settings (CIFAR-10; use a GPU)")
    return p


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(argv)
    overrides = FULL if args.full else SMOKE if args.smoke else {}
    given = {a.dest for a in p._actions if any(o in (argv if argv is not None else sys.argv[1:])
                                                for o in a.option_strings)}
    for key, value in overrides.items():
        if key not in given:  # an option typed on the command line beats the preset
            setattr(args, key, value)
    return args


def search_arm(args: argparse.Namespace) -> Arm:
    config = base_config(
        args, space="enas-cells", batch_size=args.batch_size, num_samples=2, lr=0.025, momentum=0.9,
        nesterov=False, weight_decay=3e-4, lr_schedule="cosine", alternate=True, clip_norm=5.0,
        adaptive=True, cutout=args.cutout, stochastic_samples=4 if args.smoke else 20,
        space_options={"channels": args.channels, "normal_cells": args.cells})
    return Arm("PDAS search", config)


def retrain_config(args: argparse.Namespace, genotype: dict, seed: int) -> RetrainConfig:
    return RetrainConfig(
        genotype=genotype, dataset=args.dataset, channels=args.retrain_channels,
        normal_cells=args.retrain_cells, epochs=args.retrain_epochs, batch_size=args.retrain_batch_size,
        cutout=args.cutout, seed=seed, device=args.device, data_dir=args.data_dir, download=args.download)


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(rows: dict[str, list[dict]], search_runs: list[Path]) -> str:
    minutes = [training_seconds(d) / 60 for d in search_runs]
    lines = ["| method | search time per seed (min) | params (M) | test error | re-train time (min) |",
             "| --- | --- | --- | --- | --- |"]
    for label, results in rows.items():
        search = _mean_std(minutes) if label.startswith("PDAS") else "-"
        lines.append(
            f"| {label} | {search} | {_mean_std([r['num_parameters'] / 1e6 for r in results])} | "
            f"{_mean_std([r['test_error'] for r in results])} | "
            f"{_mean_std([r['seconds'] / 60 for r in results])} |")
    return "\n".join(lines)


def cells_section(search_runs: list[Path], page_dir: Path) -> str:
    """Each seed's searched cells, as text and as a diagram with the posterior's probabilities."""
    out = ["## The searched cells", "Node i reads two states and applies one operation to each "
           "(c_{k-2}, c_{k-1}: the cell's inputs; n0..n4: earlier nodes)."]
    for run in search_runs:
        record = load_run(run)
        genotype = record.genotype
        mode_p = record.results.get("mode_probability")
        out.append(f"**{run.name}** (probability of this architecture under the final θ: {mode_p:.3g})")
        for kind in ("normal", "reduce"):
            nodes = "; ".join(f"n{i} = {a}:{p} + {b}:{q}" for i, node in enumerate(genotype[kind])
                              for (a, b), (p, q) in [(node["inputs"], node["ops"])])
            out.append(f"- {kind}: {nodes}")
        figure = plot_genotype(genotype, page_dir / f"cells_{run.name}.png",
                               probabilities=choice_probabilities(genotype, record.posterior))
        out.append(f"![searched cells, {run.name}]({figure.name})")
    return "\n\n".join(out)


def findings(rows: dict[str, list[dict]]) -> list[str]:
    """pdas2019 table 1's claim: the searched cells re-train to a lower test error than random
    cells of the same space at the same budget (4.12 % → 2.98 % there)."""
    (pdas, searched), (rand, random_) = rows.items()
    a = [r["test_error"] for r in searched]
    b = [r["test_error"] for r in random_]
    gap, se = gap_and_standard_error(b, a)
    verdict = "**reproduced**" if separated(gap, se) else "**not reproduced**"
    return [f"Claim: {pdas} re-trains to a lower test error than {rand}. Here: {statistics.fmean(a):.4f} vs "
            f"{statistics.fmean(b):.4f} over {len(a)} seeds, a gap of {gap:.4f} = {_in_errors(gap, se)} "
            f"(reproduced from {SEPARATION:g} standard errors): {verdict}."]


def _in_errors(gap: float, se: float) -> str:
    # Identical errors on every seed (e.g. all at chance in a smoke run) have no spread at all.
    return "no spread over the seeds" if se == 0 else f"{gap / se:.1f} standard errors"


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    start = time.perf_counter()
    jobs = default_jobs(args)
    seeds = list(range(args.seeds))
    out = Path(args.out)
    search = run_study([search_arm(args)], seeds=seeds, out=out, progress=not args.no_progress,
                       jobs=jobs)["PDAS search"]
    retrains = []
    for seed, run in zip(seeds, search, strict=True):
        searched = load_genotype(run)
        retrains.append((retrain_config(args, searched, seed), out / "retrain-searched" / f"seed{seed}"))
        # RANDOM: a uniform draw from the space, seeded apart from the weights' initialisation.
        draw = random_genotype(generator=torch.Generator().manual_seed(10_007 + seed))
        retrains.append((retrain_config(args, draw, seed), out / "retrain-random" / f"seed{seed}"))
    run_all(retrains, jobs=jobs, progress=not args.no_progress, desc="re-train")
    rows = {"PDAS (searched, re-trained)": [], "RANDOM (re-trained)": []}
    for _, run_dir in retrains:
        searched = run_dir.parent.name == "retrain-searched"
        label = "PDAS (searched, re-trained)" if searched else "RANDOM (re-trained)"
        rows[label].append(read_json(run_dir / "results.json"))
    search_errors = [read_json(r / "results.json")["test_error_deterministic"] for r in search]
    page_dir = results_dir(args, NAME)
    page_dir.mkdir(parents=True, exist_ok=True)
    wall = (time.perf_counter() - start) / 60
    sections = [
        "# pdas2019 §4.1: searched cells vs random cells, re-trained alike",
        f"Command: `{command_line([f'experiments/{NAME}.py', *(sys.argv[1:] if argv is None else argv)])}`",
        f"Data: `{args.dataset}`; seeds 0..{args.seeds - 1}; device `{args.device}`. Search: C = "
        f"{args.channels}, N = {args.cells}, {args.epochs} epochs, batch {args.batch_size}, λ = 2, adaptive "
        f"step size, halves D_W / D_θ. Re-training (both rows identical): C = {args.retrain_channels}, "
        f"N = {args.retrain_cells}, {args.retrain_epochs} epochs, batch {args.retrain_batch_size}, "
        f"drop-path 0 → 0.3, auxiliary head 0.4, cutout {args.cutout or 'off'}. Parameters exclude the "
        "auxiliary head, as in the paper.",
        "Mean ± sample standard deviation over the seeds; test errors are fractions (the paper's are %).",
        table(rows, search),
        f"Test error of the most likely architecture inside the search network itself (BatchNorm "
        f"recalibrated, before re-training): {_mean_std(search_errors)}.",
        cells_section(search, page_dir),
        "## The paper's findings, checked on this run\n\n" + "\n".join(f"- {x}" for x in findings(rows)),
        "## The paper, for reference\n\n" + PAPER,
        f"Wall time of this invocation: {wall:.1f} min with {jobs} run(s) at a time (finished runs are "
        "not re-run).",
    ]
    page = write_markdown(page_dir / "results.md", sections)
    print(table(rows, search))
    print(f"\nresults written to {page}")
    return 0


if __name__ == "__main__":
    from bayesnas.user_errors import report_user_errors

    raise SystemExit(report_user_errors(main))
