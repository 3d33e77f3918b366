"""Command line: ``bayesnas search SPACE ...``, ``retrain GENOTYPE ...``, ``resume RUN_DIR``
(any kind of run), ``report RUN_DIR``, ``compare RUN_DIR...``, ``spaces``, ``datasets``."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from bayesnas.analysis.diagnostics import DiagnosticWarning
from bayesnas.methods import run
from bayesnas.methods.search import LR_SCHEDULES, METHODS, SearchConfig
from bayesnas.user_errors import USER_ERRORS, message


def _add_run_options(p: argparse.ArgumentParser, *, dataset: str, what: str) -> None:
    """Where a run goes and what it reads: the options every training command shares."""
    p.add_argument("--out", help="run directory (required unless --resume)")
    p.add_argument("--resume", metavar="RUN_DIR", help=f"continue the killed {what} in RUN_DIR")
    p.add_argument("--dataset", default=dataset, help="see `bayesnas datasets`")
    p.add_argument("--data-dir", default=None, help="where torchvision datasets live")
    p.add_argument("--download", action="store_true", help="let torchvision download the data")


def _add_search(sub: argparse._SubParsersAction) -> None:
    d = SearchConfig()
    p = sub.add_parser(
        "search",
        help="search an architecture, writing config, metrics, checkpoint and results to --out",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("space", help="search space (see `bayesnas spaces`)")
    _add_run_options(p, dataset=d.dataset, what="run")
    p.add_argument("--method", choices=METHODS, default=d.method,
                   help="search θ, or a baseline: θ fixed at 0.5 (stochastic), every bit on (fixed)")
    p.add_argument("--fixed-value", type=int, default=d.fixed_value,
                   help="with --method fixed: the value of every bit (1 = on / ReLU, 0 = off / tanh)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="N per architecture (under torchrun: the global mini-batch, split over processes)")
    p.add_argument("--lam", type=int, default=d.num_samples, help="λ, architectures per step")
    p.add_argument("--different-batches", action="store_true",
                   help="eq. (5): cut each mini-batch into λ parts instead of sharing it (eq. 4)")
    p.add_argument("--lr", type=float, default=d.lr, help="initial weight learning rate")
    p.add_argument("--theta-init", type=float, default=d.theta_init)
    p.add_argument("--theta-lr", type=float, default=None, help="θ step size (default 1/d)")
    p.add_argument("--theta-min", type=float, default=None,
                   help="θ stays in [θmin, 1 − θmin] (default θmin = 1/d)")
    p.add_argument("--adaptive", action="store_true", help="adaptive θ step size (pdas2019 app. C)")
    p.add_argument("--alternate", action="store_true",
                   help="pdas2019 alg. 1: W on one half of the training data, θ on the other")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=d.lr_schedule,
                   help="step: /10 at 1/2 and 3/4 of the epochs; cosine: to 0 (pdas2019)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--no-nesterov", dest="nesterov", action="store_false", help="plain momentum SGD")
    p.add_argument("--cutout", type=int, default=d.cutout,
                   help="side of the square cut out of each training image of the weight steps (0: off)")
    p.add_argument("--clip-norm", type=float, default=None,
                   help="clip the weight gradient norm (with --alternate; pdas2019: 5)")
    p.add_argument("--penalty", type=float, default=d.penalty, help="ε₀ of saito2018")
    p.add_argument("--stochastic-samples", type=int, default=d.stochastic_samples)
    p.add_argument("--device", default=d.device)
    p.add_argument("--depth", type=int, default=None, help="space option: number of layers")
    p.add_argument("--width", type=int, default=None, help="space option: units per layer")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other space option, VALUE in JSON (e.g. --option dropout=0.5); repeatable")
    p.add_argument("--tensorboard", action="store_true",
                   help="also log the per-epoch metrics to RUN_DIR/tensorboard (needs tensorboard)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_retrain(sub: argparse._SubParsersAction) -> None:
    from bayesnas.methods.retrain import RetrainConfig

    d = RetrainConfig(genotype={})
    p = sub.add_parser(
        "retrain",
        help="re-train an exported cell architecture (genotype.json) from scratch (pdas2019 §4.1)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("genotype", nargs="?",
                   help="a genotype.json, or the run directory of an enas-cells search")
    _add_run_options(p, dataset=d.dataset, what="re-training")
    p.add_argument("--channels", type=int, default=d.channels,
                   help="C of the first cells (paper: ~3 M weights)")
    p.add_argument("--cells", type=int, default=d.normal_cells, dest="normal_cells",
                   help="N, normal cells per stage (paper: 6)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="paper: 600")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="initial learning rate, cosine to 0")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--clip-norm", type=float, default=d.clip_norm)
    p.add_argument("--drop-path", type=float, default=d.drop_path,
                   help="final ScheduledDropPath rate, reached linearly from 0")
    p.add_argument("--auxiliary-weight", type=float, default=d.auxiliary_weight,
                   help="weight of the auxiliary head's loss (0: no head)")
    p.add_argument("--cutout", type=int, default=d.cutout, help="cutout side on training images (0: off)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _retrain(args: argparse.Namespace) -> tuple[dict, Path]:
    from bayesnas.methods.retrain import RetrainConfig, load_genotype

    if args.resume:
        out = Path(args.resume)
        print(f"resuming {out}", file=sys.stderr)
        return run(out=out, resume=True, progress=not args.no_progress), out
    if not args.genotype or not args.out:
        raise ValueError("`bayesnas retrain GENOTYPE --out RUN_DIR` needs both (or `--resume RUN_DIR`).")
    config = RetrainConfig(
        genotype=load_genotype(args.genotype), dataset=args.dataset, channels=args.channels,
        normal_cells=args.normal_cells, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, clip_norm=args.clip_norm, drop_path=args.drop_path,
        auxiliary_weight=args.auxiliary_weight, cutout=args.cutout, seed=args.seed, device=args.device,
        data_dir=args.data_dir, download=args.download)
    out = Path(args.out)
    return run(config, out=out, progress=not args.no_progress), out


def _add_analysis(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write RUN_DIR/report.html and report.md (figures in RUN_DIR/report/)")
    p.add_argument("run_dir", help="a run directory written by `bayesnas search`")
    p.add_argument("--top", type=int, default=10, help="architectures in the credible set")
    p = sub.add_parser("compare", help="runs side by side, mean ± std over seeds of each configuration")
    p.add_argument("run_dirs", nargs="+", help="run directories written by `bayesnas search`")
    p.add_argument("--out", default=None, help="also write compare.md, compare.html, tradeoff.png here")


def _analysis(args: argparse.Namespace) -> None:
    from bayesnas.analysis.report import compare_runs, write_report

    if args.command == "report":
        paths = write_report(args.run_dir, credible_k=args.top)
        print(f"report written to {paths['html']} and {paths['md']} ({len(paths['figures'])} figures "
              f"in {Path(args.run_dir) / 'report'}/)")
        return
    comparison = compare_runs(args.run_dirs, out=args.out)
    print(comparison.markdown())
    if args.out:
        print(f"\ncomparison written to {Path(args.out) / 'compare.html'}")


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="ground-truth tables: every architecture of a space trained alone")
    bench = p.add_subparsers(dest="bench_command", required=True)
    b = bench.add_parser("build", help="build (or with --resume continue) a table; resumable, parallel")
    b.add_argument("table", help="a table name (bayesnas bench list)")
    b.add_argument("--out", help="run directory (default runs/bench/TABLE)")
    b.add_argument("--resume", action="store_true", help="continue the build in --out")
    b.add_argument("--jobs", type=int, default=None, help="trainings at once (default: the CPU cores)")
    b.add_argument("--limit", type=int, default=None, help="only the first N architectures (never committed)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    bench.add_parser("list", help="the tables, and which are built")
    c = bench.add_parser("check", help="re-train random entries of a built table against their record")
    c.add_argument("table")
    c.add_argument("--entries", type=int, default=5, help="how many entries")
    c.add_argument("--seed", type=int, default=0, help="which entries (a seeded draw)")


def _bench(args: argparse.Namespace) -> int:
    from bayesnas.bench import Table, table_path, table_specs

    if args.bench_command == "list":
        for spec in table_specs():
            path = table_path(spec.name)
            if path.exists():
                t = Table.load(path)
                spread = t.spread()
                appended = len(t.entries) - len(t)
                more = f" (+ {appended} appended)" if appended else ""
                built = (f"{len(t)} entries{more} x {len(t.metadata['seeds'])} seeds; test error best "
                         f"{spread['best']:.4f}, median {spread['median']:.4f} "
                         f"({spread['gap_in_standard_errors']:.1f} standard errors apart); "
                         f"{t.metadata['training_seconds'] / 60:.0f} min of training")
            else:
                built = f"not built: bayesnas bench build {spec.name}"
            print(f"{spec.name:20s} {spec.space} on {spec.protocol.dataset}: {spec.description}\n"
                  f"{'':20s} {built}")
        return 0
    if args.bench_command == "check":
        from bayesnas.bench.check import recheck_entries

        rows = recheck_entries(args.table, entries=args.entries, seed=args.seed)
        for r in rows:
            print(f"{'exact' if r['exact'] else 'DIFFERS'}  seed {r['seed']}  recorded {r['recorded']}  "
                  f"retrained {r['retrained']}  {json.dumps(r['architecture'])}")
        exact = sum(r["exact"] for r in rows)
        print(f"{exact} of {len(rows)} re-trained entries repeat their recorded errors exactly")
        return 0 if exact == len(rows) else 1
    from bayesnas.methods.bench import BenchConfig
    from bayesnas.methods.study import available_cpus

    out = Path(args.out or f"runs/bench/{args.table}")
    config = None if args.resume else BenchConfig(table=args.table, limit=args.limit)
    jobs = args.jobs if args.jobs is not None else available_cpus()
    results = run(config, out=out, resume=args.resume, progress=not args.no_progress, kind="bench", jobs=jobs)
    print(json.dumps(results, indent=2))
    where = f" and {table_path(args.table)}" if results["complete"] else " (partial: not committed)"
    print(f"table written to {out / 'table.json'}{where}")
    return 0


def _config(args: argparse.Namespace) -> SearchConfig:
    options = {k: getattr(args, k) for k in ("depth", "width") if getattr(args, k) is not None}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"`--option` takes KEY=VALUE, but got {item!r}.")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value  # a bare string
    return SearchConfig(
        space=args.space, dataset=args.dataset, method=args.method, epochs=args.epochs,
        seed=args.seed, batch_size=args.batch_size,
        num_samples=args.lam if args.method == "search" else 1,
        same_batch=not args.different_batches, lr=args.lr, theta_init=args.theta_init,
        weight_decay=args.weight_decay, nesterov=args.nesterov, lr_schedule=args.lr_schedule,
        alternate=args.alternate, clip_norm=args.clip_norm, cutout=args.cutout,
        theta_lr=args.theta_lr, theta_min=args.theta_min, adaptive=args.adaptive, penalty=args.penalty,
        stochastic_samples=args.stochastic_samples, device=args.device,
        data_dir=args.data_dir, download=args.download, space_options=options,
        tensorboard=args.tensorboard, fixed_value=args.fixed_value,
    )


def search_config(argv: Sequence[str]) -> SearchConfig:
    """The configuration that ``bayesnas search ARGV`` runs (``ARGV`` without ``search``)."""
    args = build_parser().parse_args(["search", *argv])
    return _config(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayesnas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_search(sub)
    _add_retrain(sub)
    _add_analysis(sub)
    _add_bench(sub)
    p = sub.add_parser("resume", help="continue the killed run in RUN_DIR, whatever its kind (config.json)")
    p.add_argument("run_dir", help="a run directory of any method (search, retrain, inpainting, vinnas, nes)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    sub.add_parser("spaces", help="list the search spaces")
    sub.add_parser("datasets", help="list the datasets")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "spaces":
            from bayesnas.models.registry import _spaces

            for name, space in sorted(_spaces().items()):
                print(f"{name:14s} {space.description}")
            return 0
        if args.command == "datasets":
            from bayesnas.data import available_datasets

            print("\n".join(available_datasets()))
            return 0
        if args.command == "bench":
            return _bench(args)
        if args.command in ("report", "compare"):
            _analysis(args)
            return 0
        if args.command == "resume":
            out = Path(args.run_dir)
            if not (out / "config.json").exists():
                raise FileNotFoundError(f"{out} holds no run to resume (no config.json).")
            results = run(out=out, resume=True, progress=not args.no_progress)
            print(json.dumps(results, indent=2))
            print(f"results written to {out}/; report: bayesnas report {out}")
            return 0
        if args.command == "retrain":
            results, out = _retrain(args)
            print(json.dumps(results, indent=2))
            print(f"results written to {out}/ (model.pt, results.json, metrics.jsonl)")
            return 0
        if args.resume:
            out, config = Path(args.resume), None
            print(f"resuming {out}", file=sys.stderr)
        elif not args.out:
            raise ValueError("`--out RUN_DIR` is required (or `--resume RUN_DIR`).")
        else:
            out, config = Path(args.out), _config(args)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DiagnosticWarning)
            results = run(config, out=out, resume=config is None, progress=not args.no_progress)
    except USER_ERRORS as err:  # bad input: state the rule and the value, no traceback
        print(f"bayesnas: error: {message(err)}", file=sys.stderr)
        return 2
    if not results:  # a data-parallel rank other than 0: rank 0 reports
        return 0
    print(json.dumps(results, indent=2))
    print(f"results written to {out}/ (architecture.json, results.json, posterior.json, "
          f"credible_set.json, metrics.jsonl, posterior_history.jsonl); report: bayesnas report {out}")
    for w in caught:  # the run's diagnostics, last, where they are seen
        if issubclass(w.category, DiagnosticWarning):
            print(f"bayesnas: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
