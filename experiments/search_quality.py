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
agreement with the truth (Kendall τ between each bit's P(keep), or each edge's op probabilities,
and the table's marginal benefit of that choice); over seeds, how often the reported mode is the
same, against the p(mode) the runs reported; and which run diagnostics fired. ``summary.json``
holds the same numbers.

A table of a space too large to train whole (the NAS-Bench-201 cell) holds a uniform sample of
it: random search draws from the sample, percentiles and the best are the sample's, and an
architecture a run returns outside it (or passes through on its anytime curve) is trained alone
under the table's protocol and appended to the table before it is looked up
(:func:`bayesnas.methods.bench.append_architectures`).

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
from bayesnas.methods.bench import append_architectures  # noqa: E402
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
START = "start: where every search starts, no search"
START_BITS = "the mode of its initial θ = 0.5 (each bit rounds to 1)"
START_OPS = "the mode of its initial uniform θ (the argmax of a tie is the first op, `none`, on every edge)"
NES, NES_FROZEN = "NES (nes2019 alg. 1)", "supernet, H frozen"
NOT_MEASURED = (
    "## Not measured yet\n\n"
    "**VINNAS on the cell table.** vinnas2020 searches continuous op strengths α of its own cell "
    "(`bayesnas.models.VinnasSearchSpace`, Bayesian weights under the LRT); the NAS-Bench-201 cell here "
    "declares one categorical choice per edge, and a version of it with Normal op strengths that "
    "`VinnasRun` can search is not built yet. So VINNAS has no row on this page, and nothing here says "
    "whether it beats random search.")
#: NES's budget on an integer table, a fraction of the base architecture's MACs, and how far from
#: it an architecture may lie to count as within it (the truth: the best of those).
NES_BUDGET, BUDGET_TOLERANCE = 0.5, 0.05
START_NES = ("the base architecture with every channel count scaled by one multiplier to the budget "
             "(nes2019's uniform-rescale baseline; NES exports it if H never moves)")
SUPERNET_SAMPLES = 100
#: points of a search's anytime curve (its mode after so many evenly spaced epochs, first and
#: last included): each is looked up, and in a sampled table may need training.
ANYTIME_POINTS = 11

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
    """The best-so-far entry after each of k uniform draws (with replacement) from the table's
    sample, chosen by the validation error of one training (the table's seed ``seed mod n``)."""
    g = torch.Generator().manual_seed(10_000 + seed)
    draws = torch.randint(len(table), (k,), generator=g).tolist()
    best, out = None, []
    for i in draws:
        e = table.sample[i]
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
    """One architecture from a Bernoulli or categorical guide's θ, from ``generator``."""
    out = {}
    for g in getattr(guide, "guides", [guide]):
        for name, theta in zip(g.site_names, g.thetas, strict=True):
            theta = theta.detach().cpu()
            if g.family == "categorical":
                rows = torch.multinomial(theta.reshape(-1, theta.shape[-1]), 1, generator=generator)
                out[name] = rows.reshape(theta.shape[:-1]).tolist()
            else:
                out[name] = (torch.rand(theta.shape, generator=generator) < theta).long().tolist()
    return out


# -- one table ---------------------------------------------------------------------------------


def _spaced(rows: Sequence[Any], points: int) -> list[Any]:
    """At most ``points`` of ``rows``, evenly spaced, the first and the last included."""
    if len(rows) <= points:
        return list(rows)
    return [rows[round(i * (len(rows) - 1) / (points - 1))] for i in range(points)]


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


def choice_benefits(table: Table, site: str, values: Sequence[int]) -> list[float]:
    """Per variable of ``site`` and value in ``values``: the table sample's mean test error with
    another value there − with this one (a bit's benefit of being kept: ``values=(1,)``; an
    edge's benefit of each op: ``values=range(K)``), variable-major."""
    n = len(table.sample[0]["architecture"][site])
    out = []
    for v in range(n):
        for k in values:
            this = [e["test_error"] for e in table.sample if e["architecture"][site][v] == k]
            other = [e["test_error"] for e in table.sample if e["architecture"][site][v] != k]
            out.append(statistics.fmean(other) - statistics.fmean(this))
    return out


def posterior_probabilities(theta: Sequence[Any]) -> tuple[list[float], Sequence[int]]:
    """A site's θ from ``posterior.json`` flattened, and the values they are the probabilities
    of: P(bit = 1) per bit (``(1,)``), or every op's probability per edge (``range(K)``)."""
    if isinstance(theta[0], list):
        return [float(p) for row in theta for p in row], range(len(theta[0]))
    return [float(p) for p in theta], (1,)


def _looked_up(table: Table, entry: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """One run's answer: its architecture, true test error, regret and percentile, and ``fields``."""
    best = table.best()["test_error"]
    error = entry["test_error"]
    return {"architecture": entry["architecture"], "test_error": error, "regret": error - best,
            "percentile": table.percentile(error), **fields}


def evaluate_table(name: str, groups: Mapping[str, list[Path]], args: argparse.Namespace) -> dict[str, Any]:
    """Every number of one table's section, per method (JSON-ready)."""
    table = Table.named(name)
    site = next(iter(table.sample[0]["architecture"]))
    unit = entry_compute(table)
    # What each run answered, and its mode at up to ANYTIME_POINTS epochs (the history's first
    # row is the start).
    answers: dict[str, list[dict[str, Any]]] = {}
    for label, dirs in groups.items():
        answers[label] = []
        for run_dir in dirs:
            config = SearchConfig.from_dict(read_json(run_dir / "config.json"))
            answer: dict[str, Any] = {"run_dir": run_dir, "config": config,
                                      "results": read_json(run_dir / "results.json")}
            if label == FROZEN:
                samples = 2 if args.smoke else SUPERNET_SAMPLES
                answer["arch"] = supernet_choice(run_dir, config, samples=samples)
            else:
                answer["arch"] = read_json(run_dir / "architecture.json")
                history = PosteriorHistory(run_dir / HISTORY_FILE).posteriors()
                answer["modes"] = [(it, p.mode()) for it, p in _spaced(history, ANYTIME_POINTS)]
            answers[label].append(answer)
    # Where every search starts: the mode of its initial θ (θ = 0.5 rounds every bit to 1; the
    # argmax of a uniform categorical θ is the first op). A search is only worth its compute if it
    # ends better than this.
    first = next(a for runs in answers.values() for a in runs if "modes" in a)
    start_arch = first["modes"][0][1]
    family = read_json(first["run_dir"] / "posterior.json")[site]["family"]
    # A sampled table may lack some of these: train them alone under its protocol and append them.
    needed = [start_arch] + [a for runs in answers.values() for r in runs
                             for a in [r["arch"], *(m for _, m in r.get("modes", []))]]
    table = append_architectures(name, needed, jobs=default_jobs(args), progress=not args.no_progress,
                                 save=not args.smoke)  # a smoke run's answers stay out of the table
    best = table.best()["test_error"]
    methods: dict[str, Any] = {}
    for label, runs in answers.items():
        methods[label] = []
        for answer in runs:
            config, results = answer["config"], answer["results"]
            run = _looked_up(table, table.entry(answer["arch"]), seed=config.seed,
                             compute=search_compute(answer["run_dir"], config),
                             diagnostics=(results.get("diagnostics") or {}).get("fired"))
            if "modes" in answer:
                post = read_json(answer["run_dir"] / "posterior.json")
                probabilities, values = posterior_probabilities(post[site]["theta"])
                run["tau"] = kendall_tau(probabilities, choice_benefits(table, site, values))
                run["mode_probability"] = results["mode_probability"]
                run["anytime"] = [(iteration * config.num_samples * config.batch_size,
                                   table.entry(mode)["test_error"] - best)
                                  for iteration, mode in answer["modes"]]
            methods[label].append(run)
    seeds, ks, randoms = add_random_search(methods, table, unit)
    start = table.entry(start_arch)
    methods[START] = [_looked_up(table, start, seed=seed, compute=0) for seed in seeds]
    summary: dict[str, Any] = {"table": name, "best_test_error": best, "entries": len(table),
                               "appended": len(table.entries) - len(table),
                               "start": START_OPS if family == "categorical" else START_BITS,
                               "entry_compute": unit, "random_search_k": ks, "methods": {}}
    return summarise_methods(summary, methods, randoms, ks)


def add_random_search(methods: dict[str, list[dict[str, Any]]], table: Table, unit: int
                      ) -> tuple[list[int], dict[str, int], dict[int, list[dict[str, Any]]]]:
    """Random search at each method's own compute (k = its architecture-examples / one entry's
    ``unit``), over ``table``'s sample, added to ``methods`` as one row per k; returns the seeds,
    k per method and the random-search runs per k."""
    best = table.best()["test_error"]
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
        methods[f"{RANDOM}, k = {k}"] = randoms[k]
    return seeds, ks, randoms


def summarise_methods(summary: dict[str, Any], methods: Mapping[str, list[dict[str, Any]]],
                      randoms: Mapping[int, list[dict[str, Any]]], ks: Mapping[str, int]) -> dict[str, Any]:
    """``summary`` with, per method, the means ± standard errors of its runs, how often its mode
    is the same, and whether it beats random search at its own compute (a search: a method
    whose runs report p(mode), or a NES run)."""
    summary["methods"] = {}
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
        if "mode_probability" in runs[0]:
            entry["mode_probability"] = statistics.fmean(r["mode_probability"] for r in runs)
        if not label.startswith(RANDOM) and label != START:
            entry["search"] = "anytime" in runs[0]
            random_errors = [r["test_error"] for r in randoms[ks[label]]]
            gap, se = gap_and_standard_error(random_errors, errors)
            entry["vs_random"] = {"k": ks[label], "gap": gap, "standard_error": None if se != se else se,
                                  "random_test_error": _mean_se(random_errors), "beats": separated(gap, se)}
        summary["methods"][label] = entry
    return summary


# -- the integer table: NES under a budget ------------------------------------------------------


def nes_arms(args: argparse.Namespace, table: str) -> list[Arm]:
    """NES as nes2019 runs it (its CPU defaults but ``--epochs`` outer iterations), and the same
    with H frozen (α = 0) for the supernet baseline; the export only, re-trained for 1 epoch."""
    from bayesnas.methods.nes import NesConfig

    spec = get_table_spec(table)
    base = NesConfig(dataset=spec.protocol.dataset, backbone=spec.space, **spec.space_options,
                     budget=NES_BUDGET, budget_tolerance=BUDGET_TOLERANCE, outer_iterations=args.epochs,
                     retrain_epochs=1, uniform=(), device=args.device,
                     **(dict(num_samples=4, arch_steps=1) if args.smoke else {}))
    return [Arm(NES, base), Arm(NES_FROZEN, _replace(base, arch_lr=0.0))]


def _nes_run(run_dir: Path) -> Any:
    from bayesnas.methods.nes import NesConfig, NesRun
    from bayesnas.runs.files import load_checkpoint

    run = NesRun(NesConfig.from_dict(read_json(run_dir / "config.json")), run_dir)
    run.build_search()
    run.search.load_state_dict(load_checkpoint(run_dir / "search" / "checkpoint.pt"))
    return run


def nes_compute(run: Any) -> int:
    """Architecture-examples a NES search trained: one architecture per weight step (eq. 8)."""
    epochs = len(MetricsLog(run.out / "search" / "metrics.jsonl").read())
    return epochs * run.weight_steps * run.config.batch_size


def supernet_choice_in_budget(run: Any, feasible: Sequence[Mapping[str, Any]], *, samples: int
                              ) -> dict[str, Any]:
    """The best of ``samples`` architectures drawn uniformly from those within the budget, by
    the validation error (NES's sub-evaluation images) of the supernet the run trained."""
    from bayesnas.runs.training import error_on_tensors

    g = torch.Generator().manual_seed(20_000 + run.config.seed)
    draws = torch.randint(len(feasible), (samples,), generator=g).tolist()
    picks = [feasible[i]["architecture"] for i in draws]
    x, y = run.x_train[run.eval_index], run.y_train[run.eval_index]
    run.backbone.eval()
    with torch.no_grad():
        errors = [error_on_tensors(run.backbone, x, y, batch_size=500,
                                   forward=lambda xb, h=h: run.backbone(xb, h)) for h in picks]
    return picks[errors.index(min(errors))]


def evaluate_budget_table(name: str, groups: Mapping[str, list[Path]], args: argparse.Namespace
                          ) -> dict[str, Any]:
    """Every number of a NES table's section: the truth is the best architecture within
    ±BUDGET_TOLERANCE of the budget; percentiles and random search are among those."""
    from bayesnas.methods.nes import fit_to_budget

    table = Table.named(name)
    first = _nes_run(next(iter(groups.values()))[0])
    target = first.target
    base = table.entry(first.backbone.base_hparams())
    assert abs(target - NES_BUDGET * base["macs"]) < 1e-6 * target, (target, base["macs"])

    def within(e: Mapping[str, Any]) -> bool:
        return abs(e["macs"] / target - 1) <= BUDGET_TOLERANCE

    feasible = Table(table.metadata, [e for e in table.sample if within(e)])
    best = feasible.best()["test_error"]
    unit = entry_compute(table)

    def looked_up(arch: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
        e = table.entry(arch)
        return {**_looked_up(feasible, e, **fields), "macs_ratio": e["macs"] / target,
                "within_budget": within(e)}

    def fitted(run: Any, hparams: Mapping[str, Any]) -> dict[str, int]:
        return fit_to_budget(run.backbone, hparams, lambda h: table.entry(h)["macs"], target,
                             tolerance=BUDGET_TOLERANCE)

    methods: dict[str, Any] = {}
    for label, dirs in groups.items():
        methods[label] = []
        for run_dir in dirs:
            run = _nes_run(run_dir)
            compute = nes_compute(run)
            if label == NES_FROZEN:
                samples = 2 if args.smoke else SUPERNET_SAMPLES
                arch = supernet_choice_in_budget(run, feasible.sample, samples=samples)
                methods[label].append(looked_up(arch, seed=run.config.seed, compute=compute))
                continue
            history = PosteriorHistory(run_dir / HISTORY_FILE).posteriors()
            steps = run.weight_steps
            per_iteration = steps / (steps + run.config.arch_steps) * run.config.batch_size
            anytime = [(it * per_iteration, table.entry(fitted(run, p.mode()))["test_error"] - best)
                       for it, p in _spaced(history, ANYTIME_POINTS)]
            fired = (read_json(run_dir / "results.json").get("diagnostics") or {}).get("fired")
            methods[label].append(looked_up(read_json(run_dir / "architecture.json"), seed=run.config.seed,
                                            compute=compute, anytime=anytime, diagnostics=fired,
                                            mode=read_json(run_dir / "mode.json")))
    seeds, ks, randoms = add_random_search(methods, feasible, unit)
    start = fitted(first, first.backbone.base_hparams())
    methods[START] = [looked_up(start, seed=seed, compute=0) for seed in seeds]
    summary = {"table": name, "best_test_error": best, "entries": len(feasible), "appended": 0,
               "start": START_NES, "budget": NES_BUDGET, "target_macs": target,
               "budget_tolerance": BUDGET_TOLERANCE, "table_entries": len(table), "entry_compute": unit,
               "random_search_k": ks}
    return summarise_methods(summary, methods, randoms, ks)


def figures(summary: Mapping[str, Any], out: Path) -> list[tuple[Path, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, methods = summary["table"], summary["methods"]
    made = []
    labels = list(methods)

    def save(fig: Any, suffix: str, caption: str) -> None:
        fig.tight_layout()
        path = out / f"{name}_{suffix}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append((path, f"{name}: {caption}"))

    fig, ax = plt.subplots(figsize=(8, 3.6))
    means = [methods[m]["regret"][0] for m in labels]
    ses = [methods[m]["regret"][1] or 0.0 for m in labels]
    ax.barh(range(len(labels)), means, xerr=ses, color="#4878a8")
    ax.set_yticks(range(len(labels)), [m.split(" (")[0] for m in labels])
    ax.set_xlabel("regret: true test error − the table's best (mean ± s.e. over seeds)")
    ax.set_title(f"{name}: regret of the exported architecture")
    save(fig, "regret", "regret per method at equal compute")

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
    ax.set_yscale("symlog", linthresh=0.01)  # a start at chance must not flatten the rest
    ax.set_title(f"{name}: anytime regret (mean over seeds)")
    ax.legend(fontsize=8)
    save(fig, "anytime", "regret of the current mode (random search: of the best so far) against compute")

    searched = [label for label in labels if "tau" in methods[label]]
    if searched:  # the posterior against the truth: one point per run, the mean as a bar
        fig, ax = plt.subplots(figsize=(8, 0.5 + 0.6 * len(searched)))
        for i, label in enumerate(searched):
            taus = [r["tau"] for r in methods[label]["runs"]]
            ax.scatter(taus, [i] * len(taus), color="#4878a8", zorder=3)
            ax.plot([statistics.fmean(taus)] * 2, [i - 0.3, i + 0.3], color="black")
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_xlim(-1, 1)
        ax.set_yticks(range(len(searched)), [m.split(" (")[0] for m in searched])
        ax.set_xlabel("Kendall τ: the posterior's probabilities against the table's marginal benefit "
                      "of each choice")
        ax.set_title(f"{name}: does the posterior rank the choices as the truth does? "
                     "(dots: seeds; bar: mean)")
        save(fig, "tau", "Kendall τ between the final posterior and the table's marginal benefits, per seed")
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
                 ", ".join(fired) or ("none" if m.get("search") else "—")]
        rows.append("| " + " | ".join(cells) + " |")
    start = methods[START]
    return "\n\n".join([
        f"## Table `{summary['table']}`",
        (f"NES searches under a budget of {summary['budget']:g}× the base architecture's MACs "
         f"({summary['target_macs']:,.0f}); the truth is the best of the {summary['entries']} of the "
         f"table's {summary['table_entries']} architectures within ±{summary['budget_tolerance']:.0%} of "
         f"it (true test error {summary['best_test_error']:.4f}), and percentiles, regrets and random "
         "search are among those. Compute is counted in architecture-examples trained: N per weight "
         "step (one architecture each, nes2019 eq. 8; the H updates' forward passes not counted), and "
         f"{summary['entry_compute']:,} for one table entry. The frozen supernet is NES with α = 0 "
         "(H stays at the base architecture, σ decays as scheduled), then the best of 100 draws from "
         "the architectures within the budget by its validation error."
         if "budget" in summary else
         f"{summary['entries']} architectures"
         + (f" (a uniform sample; {summary['appended']} more that runs returned outside it were trained "
            "alone and appended, and are looked up but not ranked against)"
            if summary.get("appended") else "")
         + f"; the best's true test error {summary['best_test_error']:.4f}. "
         "Compute is counted in architecture-examples trained: λ · N per weight step of a search "
         "(the θ steps' forward passes and every evaluation not counted), and "
         f"{summary['entry_compute']:,} for one table entry; random search at a method's compute "
         "draws k = that compute / one entry's architectures (at least 1)."),
        "\n".join(rows),
        f"**Read with the last row.** Every search starts at {summary['start']}, whose true test error "
        f"{start['test_error'][0]:.4f} is at percentile "
        f"{start['percentile'][0]:.3f} of this table"
        + (f" (its MACs are {start['runs'][0]['macs_ratio']:.2f} × the budget: the closest a uniform "
           "scaling gets on this grid, outside the tolerance). "
           if start["runs"][0].get("within_budget") is False else ". ")
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
        if m.get("search"):  # a search: did it improve on where it started?
            start = summary["methods"][START]["test_error"][0]
            gap, se = start - m["test_error"][0], m["test_error"][1]
            better = "**reproduced**" if se is not None and separated(gap, se) else "**not reproduced**"
            out.append(f"`{summary['table']}`, {label}: ends better than its starting architecture "
                       f"({summary['start']}; true test error {start:.4f}) by ≥ 2 standard errors: {better}.")
            outside = [r for r in m["runs"] if r.get("within_budget") is False]
            if outside:
                ratios = ", ".join(f"{r['macs_ratio']:.2f}" for r in outside)
                out.append(f"`{summary['table']}`, {label}: {len(outside)} of {len(m['runs'])} exported "
                           f"architectures miss the budget by more than ±{summary['budget_tolerance']:.0%} "
                           f"(MACs at {ratios} × the budget).")
            fired = [r for r in m["runs"] if r.get("diagnostics")]
            if fired:  # an answer whose posterior is not evidence is not a success, whatever it scored
                names = sorted({d for r in fired for d in r["diagnostics"]})
                which = ("none of them counts as a working search" if len(fired) == len(m["runs"])
                         else "those runs do not count as working searches")
                out.append(f"`{summary['table']}`, {label}: {len(fired)} of {len(m['runs'])} runs fired run "
                           f"diagnostics ({', '.join(names)}): their posteriors are not evidence, so "
                           f"{which}.")
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
        nes = get_table_spec(name).method == "nes"
        groups = run_study((nes_arms if nes else arms)(args, name), seeds=list(range(args.seeds)),
                           out=Path(args.out) / name, progress=not args.no_progress, jobs=default_jobs(args))
        summary = (evaluate_budget_table if nes else evaluate_table)(name, groups, args)
        summaries.append(summary)
        sections.append(section(summary, figures(summary, out)))
        claims += findings(summary)
    sections.append(NOT_MEASURED)
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
