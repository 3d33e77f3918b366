"""Search quality against ground truth: each method and two baselines at equal compute, per table.

For every built ground-truth table (:mod:`bayesnas.bench`, ``bayesnas bench list``) whose space
a method applies to, every method searches that space on the table's data (its split, seed 0:
a search never trains on the images the table tests on), with ``--seeds`` seeds, and its
exported architecture is looked up: its true test error (the table's, trained alone, mean over
the table's seeds), its regret to the table's best, its percentile in the table. Beside the
methods, two baselines at the same compute:

- **random search**: k architectures drawn uniformly, each trained alone once (the table's
  entry for one of its seeds), the best by validation error; k × (one training) = the search's
  compute, counted in architecture-examples trained (λ · N per weight step for a search, epochs
  × training images for a table entry);
- **supernet, θ frozen**: the weight-sharing network trained like the search with θ held at its
  initial distribution (λ = 2, the same steps), then the best of 100 architectures drawn from
  that distribution by its validation error with the shared weights (forward passes only,
  not counted).

Reported per method: the looked-up test error, regret and percentile (mean ± standard error
over seeds); an anytime curve (the regret of the current mode against compute); the posterior's
agreement with the truth (Kendall τ between each bit's P(keep) and the table's marginal benefit
of keeping it); over seeds, how often the reported mode is the same, against the p(mode) the
runs reported; and which run diagnostics fired. ``summary.json`` holds the same numbers.

    python experiments/search_quality.py                    # every built table, 5 seeds
    python experiments/search_quality.py --smoke            # seconds: 1 seed, 2 epochs
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from bayesnas.analysis.history import HISTORY_FILE, PosteriorHistory  # noqa: E402
from bayesnas.bench import Table, get_table_spec, table_path, table_specs  # noqa: E402
from bayesnas.methods.search import SearchConfig  # noqa: E402
from bayesnas.methods.study import (  # noqa: E402
    Arm,
    command_line,
    default_jobs,
    gap_and_standard_error,
    results_dir,
    run_study,
    separated,
    write_markdown,
)
from bayesnas.runs import MetricsLog, read_json, write_json  # noqa: E402

NAME = "search_quality"
RANDOM, FROZEN = "random search", "supernet, θ frozen"
START = "start: the mode of the initial θ, no search"
SUPERNET_SAMPLES = 100

#: The methods that apply to a table of Bernoulli bits, as each paper runs them.
BERNOULLI_METHODS = {
    "SNG (shirakawa2018: λ = 2, η = 1/d)": dict(num_samples=2),
    "ASNG (pdas2019 app. C)": dict(num_samples=2, adaptive=True),
    "PDAS alternating (pdas2019 alg. 1)": dict(num_samples=2, adaptive=True, alternate=True),
}


def arms(args: argparse.Namespace, table: str) -> list[Arm]:
    spec = get_table_spec(table)
    base = SearchConfig(space=spec.space, dataset=spec.protocol.dataset,
                        space_options=dict(spec.space_options), epochs=args.epochs,
                        batch_size=args.batch_size, split_seed=0,
                        stochastic_samples=4 if args.smoke else 20, device=args.device)
    out = [Arm(label, _replace(base, **options)) for label, options in BERNOULLI_METHODS.items()]
    out.append(Arm(FROZEN, _replace(base, method="stochastic", num_samples=2)))
    return out


def _replace(config: SearchConfig, **changes: Any) -> SearchConfig:
    return dataclasses.replace(config, **changes)


# -- compute ------------------------------------------------------------------------------------


def search_compute(run_dir: Path, config: SearchConfig) -> int:
    """Architecture-examples a search trained: λ · N per weight step."""
    steps = int(MetricsLog(run_dir / "metrics.jsonl").read()[-1]["iteration"])
    return steps * config.num_samples * config.batch_size


def entry_compute(table: Table) -> int:
    """Architecture-examples one table entry trains: epochs × the training images it steps over."""
    p = table.metadata["protocol"]
    from bayesnas.data import load_dataset

    n = len(load_dataset(p["dataset"], seed=0, val_fraction=p["val_fraction"], augment=False).train)
    return p["epochs"] * (n // p["batch_size"]) * p["batch_size"]


# -- baselines ---------------------------------------------------------------------------------


def random_search(table: Table, *, k: int, seed: int) -> list[dict[str, Any]]:
    """The best-so-far entry after each of k uniform draws (with replacement), chosen by the
    validation error of one training (the table's seed ``seed mod n``)."""
    g = torch.Generator().manual_seed(10_000 + seed)
    draws = torch.randint(len(table), (k,), generator=g).tolist()
    best, out = None, []
    for i in draws:
        e = table.entries[i]
        val = e["val_errors"][seed % len(e["val_errors"])]
        if best is None or val < best[0]:
            best = (val, e)
        out.append(best[1])
    return out


def supernet_choice(run_dir: Path, config: SearchConfig, *, samples: int) -> dict[str, Any]:
    """The best of ``samples`` architectures drawn from the frozen θ, by the validation error of
    the trained supernet (its weights from the run's checkpoint)."""
    from bayesnas.bench.train import fixed_network
    from bayesnas.data import as_tensors
    from bayesnas.methods.search import SearchRun
    from bayesnas.runs.files import load_checkpoint
    from bayesnas.sites import tensors_to_architecture

    run = SearchRun(config, run_dir)
    run.load_state_dict(load_checkpoint(run_dir / "checkpoint.pt"))
    x, y = as_tensors(run.data.val)
    run.model.eval()
    g = torch.Generator().manual_seed(20_000 + config.seed)
    best = None
    with torch.no_grad():
        for _ in range(samples):
            arch = _draw(run.guide, g)
            forward = fixed_network(run.model, arch, x[:1])
            error = float((forward(x).argmax(-1) != y).float().mean())
            if best is None or error < best[0]:
                best = (error, arch)
    return tensors_to_architecture({k: torch.as_tensor(v) for k, v in best[1].items()})


def _draw(guide: Any, generator: torch.Generator) -> dict[str, Any]:
    """One architecture from a Bernoulli guide's θ, from ``generator``."""
    out = {}
    for g in getattr(guide, "guides", [guide]):
        for name, theta in zip(g.site_names, g.thetas, strict=True):
            out[name] = (torch.rand(theta.shape, generator=generator) < theta.detach().cpu()).long().tolist()
    return out


# -- one table ---------------------------------------------------------------------------------


def _mean_se(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean and its standard error (``None`` from one value)."""
    m = statistics.fmean(values)
    return m, (statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else None)


def _fmt(mean_se: Sequence[float | None], digits: int = 4) -> str:
    m, se = mean_se
    return f"{m:.{digits}f}" + ("" if se is None else f" ± {se:.{digits}f}")


def kendall_tau(probabilities: Sequence[float], benefits: Sequence[float]) -> float:
    from scipy.stats import kendalltau

    tau = kendalltau(probabilities, benefits).statistic
    return float(tau) if tau == tau else 0.0


def bit_benefits(table: Table, site: str) -> list[float]:
    """Per bit of ``site``: mean test error with it off − with it on, over the whole table."""
    n = len(table.entries[0]["architecture"][site])
    out = []
    for b in range(n):
        on = [e["test_error"] for e in table.entries if e["architecture"][site][b] == 1]
        off = [e["test_error"] for e in table.entries if e["architecture"][site][b] == 0]
        out.append(statistics.fmean(off) - statistics.fmean(on))
    return out


def _looked_up(table: Table, entry: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """One run's answer: its architecture, true test error, regret and percentile, and ``fields``."""
    best = table.best()["test_error"]
    error = entry["test_error"]
    return {"architecture": entry["architecture"], "test_error": error, "regret": error - best,
            "percentile": table.percentile(error), **fields}


def evaluate_table(name: str, groups: Mapping[str, list[Path]], args: argparse.Namespace) -> dict[str, Any]:
    """Every number of one table's section, per method (JSON-ready)."""
    table = Table.named(name)
    best = table.best()["test_error"]
    site = next(iter(table.entries[0]["architecture"]))
    benefits = bit_benefits(table, site)
    unit = entry_compute(table)
    methods: dict[str, Any] = {}
    for label, dirs in groups.items():
        runs = []
        for run_dir in dirs:
            config = SearchConfig.from_dict(read_json(run_dir / "config.json"))
            results = read_json(run_dir / "results.json")
            if label == FROZEN:
                arch = supernet_choice(run_dir, config, samples=2 if args.smoke else SUPERNET_SAMPLES)
            else:
                arch = read_json(run_dir / "architecture.json")
            run = _looked_up(table, table.entry(arch), seed=config.seed,
                             compute=search_compute(run_dir, config),
                             diagnostics=(results.get("diagnostics") or {}).get("fired"))
            if label != FROZEN:
                post = json.loads((run_dir / "posterior.json").read_text())
                run["tau"] = kendall_tau(post[site]["theta"], benefits)
                run["mode_probability"] = results["mode_probability"]
                # The mode after each epoch (the history's first row is the start).
                run["anytime"] = [(iteration * config.num_samples * config.batch_size,
                                   table.entry(p.mode())["test_error"] - best)
                                  for iteration, p in PosteriorHistory(run_dir / HISTORY_FILE).posteriors()]
            runs.append(run)
        methods[label] = runs
    # Random search at each method's own compute: k = its architecture-examples / one entry's.
    seeds = [r["seed"] for r in next(iter(methods.values()))]
    ks = {label: max(1, round(statistics.fmean(r["compute"] for r in runs) / unit))
          for label, runs in methods.items()}
    randoms: dict[int, list[dict[str, Any]]] = {}
    for k in sorted(set(ks.values())):
        randoms[k] = []
        for seed in seeds:
            picks = random_search(table, k=k, seed=seed)
            randoms[k].append(_looked_up(table, picks[-1], seed=seed, compute=k * unit, anytime=[
                ((j + 1) * unit, e["test_error"] - best) for j, e in enumerate(picks)]))
    for k, runs in randoms.items():
        methods[f"{RANDOM}, k = {k}"] = runs
    # Where every search starts: the mode of its initial θ (θ = 0.5 rounds every bit to 1). A
    # search is only worth its compute if it ends better than this.
    first = next(iter(groups.values()))[0]
    start = table.entry(PosteriorHistory(first / HISTORY_FILE).posteriors()[0][1].mode())
    methods[START] = [_looked_up(table, start, seed=seed, compute=0) for seed in seeds]
    summary: dict[str, Any] = {"table": name, "best_test_error": best, "entries": len(table),
                               "entry_compute": unit, "random_search_k": ks, "methods": {}}
    for label, runs in methods.items():
        errors = [r["test_error"] for r in runs]
        modes = [json.dumps(r["architecture"], sort_keys=True) for r in runs]
        common = max(set(modes), key=modes.count)
        entry = {
            "test_error": _mean_se(errors), "regret": _mean_se([r["regret"] for r in runs]),
            "percentile": _mean_se([r["percentile"] for r in runs]),
            "compute": statistics.fmean(r["compute"] for r in runs),
            "same_mode_fraction": modes.count(common) / len(modes),
            "runs": runs,
        }
        if "tau" in runs[0]:
            entry["tau"] = _mean_se([r["tau"] for r in runs])
            entry["mode_probability"] = statistics.fmean(r["mode_probability"] for r in runs)
        if not label.startswith(RANDOM) and label != START:
            random_errors = [r["test_error"] for r in randoms[ks[label]]]
            gap, se = gap_and_standard_error(random_errors, errors)
            entry["vs_random"] = {"k": ks[label], "gap": gap, "standard_error": None if se != se else se,
                                  "random_test_error": _mean_se(random_errors), "beats": separated(gap, se)}
        summary["methods"][label] = entry
    return summary


def figures(summary: Mapping[str, Any], out: Path) -> list[tuple[Path, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, methods = summary["table"], summary["methods"]
    made = []
    labels = list(methods)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    means = [methods[m]["regret"][0] for m in labels]
    ses = [methods[m]["regret"][1] or 0.0 for m in labels]
    ax.barh(range(len(labels)), means, xerr=ses, color="#4878a8")
    ax.set_yticks(range(len(labels)), [m.split(" (")[0] for m in labels])
    ax.set_xlabel("regret: true test error − the table's best (mean ± s.e. over seeds)")
    ax.set_title(f"{name}: regret of the exported architecture")
    fig.tight_layout()
    path = out / f"{name}_regret.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    made.append((path, f"{name}: regret per method at equal compute"))

    fig, ax = plt.subplots(figsize=(8, 3.6))
    for label in labels:
        curves = [r["anytime"] for r in methods[label]["runs"] if r.get("anytime")]
        if not curves:
            continue
        steps = min(len(c) for c in curves)
        xs = [curves[0][i][0] for i in range(steps)]
        ys = [statistics.fmean(c[i][1] for c in curves) for i in range(steps)]
        ax.plot(xs, ys, marker="o", markersize=3, label=label.split(" (")[0])
    ax.set_xlabel("compute (architecture-examples trained)")
    ax.set_ylabel("regret of the current answer")
    ax.set_title(f"{name}: anytime regret (mean over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / f"{name}_anytime.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    made.append((path, f"{name}: regret of the current mode (random search: of the best so far) "
                       "against compute"))
    return made


def section(summary: Mapping[str, Any], made: Sequence[tuple[Path, str]]) -> str:
    methods = summary["methods"]
    rows = ["| method | compute | true test error | regret | percentile | Kendall τ | same mode | "
            "p(mode) reported | diagnostics fired |", "|---|---|---|---|---|---|---|---|---|"]
    for label, m in methods.items():
        fired = sorted({f for r in m["runs"] for f in (r.get("diagnostics") or [])})
        cells = [label, f"{m['compute']:,.0f}", _fmt(m["test_error"]), _fmt(m["regret"]),
                 _fmt(m["percentile"], 3), _fmt(m["tau"], 2) if "tau" in m else "—",
                 f"{m['same_mode_fraction']:.0%}",
                 f"{m['mode_probability']:.3f}" if "mode_probability" in m else "—",
                 ", ".join(fired) or ("none" if "tau" in m else "—")]
        rows.append("| " + " | ".join(cells) + " |")
    start = methods[START]
    return "\n\n".join([
        f"## Table `{summary['table']}`",
        f"{summary['entries']} architectures; the best's true test error {summary['best_test_error']:.4f}. "
        f"Compute is counted in architecture-examples trained: λ · N per weight step of a search "
        f"(the θ steps' forward passes and every evaluation not counted), and "
        f"{summary['entry_compute']:,} for one table entry; random search at a method's compute "
        "draws k = that compute / one entry's architectures (at least 1).",
        "\n".join(rows),
        f"**Read with the last row.** Every search starts at the mode of θ = 0.5 (each bit rounds to "
        f"1), whose true test error {start['test_error'][0]:.4f} is at percentile "
        f"{start['percentile'][0]:.3f} of this table. "
        + ("That start is near the best: a search that beats random search here has not shown that it "
           "searched unless it also ends better than where it started."
           if start["percentile"][0] <= 0.5 else
           "That start is among the worst: ending better than it is easy, and beating random search is "
           "the test."),
        *[f"![{caption}]({path.name})\n\n*{caption}*" for path, caption in made],
    ])


def findings(summary: Mapping[str, Any]) -> list[str]:
    out = []
    for label, m in summary["methods"].items():
        if "vs_random" not in m:
            continue
        v = m["vs_random"]
        holds = "**reproduced**" if v["beats"] else "**not reproduced**"
        se = "n/a" if v["standard_error"] is None else f"{v['standard_error']:.4f}"
        out.append(f"`{summary['table']}`, {label}: beats random search at equal compute by ≥ 2 standard "
                   f"errors: {holds} (true test error {_fmt(m['test_error'])} against "
                   f"{_fmt(v['random_test_error'])} for random search with k = {v['k']}; gap "
                   f"{v['gap']:+.4f}, s.e. {se}).")
        if "tau" in m:  # a search: did it improve on where it started?
            start = summary["methods"][START]["test_error"][0]
            gap, se = start - m["test_error"][0], m["test_error"][1]
            better = "**reproduced**" if se is not None and separated(gap, se) else "**not reproduced**"
            out.append(f"`{summary['table']}`, {label}: ends better than its starting architecture (the mode "
                       f"of θ = 0.5, true test error {start:.4f}) by ≥ 2 standard errors: {better}.")
            fired = [r for r in m["runs"] if r.get("diagnostics")]
            if fired:  # an answer whose posterior is not evidence is not a success, whatever it scored
                names = sorted({d for r in fired for d in r["diagnostics"]})
                out.append(f"`{summary['table']}`, {label}: {len(fired)} of {len(m['runs'])} runs fired run "
                           f"diagnostics ({', '.join(names)}): their posteriors are not evidence, so none "
                           "of them counts as a working search.")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=NAME, description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--tables", nargs="+", default=None, help="tables to judge on (default: every built one)")
    p.add_argument("--epochs", type=int, default=40, help="search epochs")
    p.add_argument("--batch-size", type=int, default=64, help="N per architecture and step")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..n-1 of every method")
    p.add_argument("--device", default="cpu")
    p.add_argument("--smoke", action="store_true", help="a tiny version that runs in seconds")
    p.add_argument("--out", default=f"runs/experiments/{NAME}", help="run directories")
    p.add_argument("--results", default=None,
                   help=f"where the page goes (default experiments/results/{NAME}; "
                        "with --smoke, OUT/results)")
    p.add_argument("--jobs", type=int, default=None, help="runs at once (default: one per CPU core)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.epochs = 2
    start = time.perf_counter()
    names = args.tables or [s.name for s in table_specs() if table_path(s.name).exists()]
    if args.smoke and not args.tables:
        names = names[:1]  # seconds: one table
    out = results_dir(args, NAME)
    out.mkdir(parents=True, exist_ok=True)
    sections = [
        "# Search quality against ground truth",
        f"Command: `{command_line([f'experiments/{NAME}.py', *(sys.argv[1:] if argv is None else argv)])}`",
        f"Data: `the tables' own` (each table's dataset and split, seed 0); {args.epochs} search epochs, "
        f"N = {args.batch_size}; seeds 0..{args.seeds - 1}; device `{args.device}`.",
        "Errors are the **true** test errors of the exported architectures: looked up in the table "
        "(trained alone under its protocol, mean over the table's seeds), never the search's own. "
        "Mean ± standard error over the seeds.",
    ]
    summaries, claims = [], []
    for name in names:
        groups = run_study(arms(args, name), seeds=list(range(args.seeds)), out=Path(args.out) / name,
                           progress=not args.no_progress, jobs=default_jobs(args))
        summary = evaluate_table(name, groups, args)
        summaries.append(summary)
        sections.append(section(summary, figures(summary, out)))
        claims += findings(summary)
    sections.append("## The paper's findings, checked on this run\n\nEach paper's search should beat "
                    "random search at equal compute:\n\n" + "\n".join(f"- {c}" for c in claims))
    sections.append(f"Wall time of this invocation: {(time.perf_counter() - start) / 60:.1f} min "
                    "(runs already finished are not re-run).")
    write_json(out / "summary.json", {"tables": summaries})
    page = write_markdown(out / "results.md", sections)
    print(f"results written to {page} and {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    from bayesnas.user_errors import report_user_errors

    raise SystemExit(report_user_errors(main))
