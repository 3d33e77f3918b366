"""Record, and compare, every number that `make demo` and the experiment scripts' ``--smoke``
runs write: the check that a restructuring preserved behaviour bit for bit (issue 16).

    python benchmarks/behaviour_snapshot.py record snapshot.json           # minutes, on CPU
    python benchmarks/behaviour_snapshot.py record snapshot.json --only vinnas_mnist   # adds to it
    python benchmarks/behaviour_snapshot.py compare before.json after.json

``record`` runs the demo's search (the Makefile's flags) and each ``experiments/*.py --smoke``
in a fresh temporary directory, one run at a time with the threads fixed (CPU runs repeat
exactly only at a fixed thread count), then reads back every JSON and JSON-lines file the runs
wrote: results, per-epoch metrics (θ included), posterior histories, architectures,
posteriors. Fields that measure time, name a path or a version are dropped: they differ
between any two invocations. ``compare`` prints each differing value (file, key path, before,
after) and exits 1 if there is any; ``--ignore KEY`` drops further keys (e.g. a field added on
purpose). Issue 16's restructuring was checked with
``compare before.json after.json --ignore kind family_options`` (the two fields it added to
``config.json``): 0 differences.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO = ["search", "layer-skip", "--dataset", "mnist5k", "--epochs", "60", "--lam", "4", "--theta-lr",
        "0.064", "--theta-min", "0.005", "--seed", "0", "--no-progress"]
# Keys whose values differ between two invocations of the same computation.
VOLATILE = {"time", "timestamp", "created", "data_dir", "out", "path",
            "run_dir", "bayesnas_version", "torch_version", "latency_table"}
READ = (".json", ".jsonl")


def _scripts() -> list[str]:
    return sorted(p.stem for p in (ROOT / "experiments").glob("*.py") if not p.name.startswith("_"))


def _clean(value: Any, ignore: set[str]) -> Any:
    if isinstance(value, dict):
        # Any "...seconds" field is a measured time (seconds, search_seconds, wall_seconds).
        return {k: _clean(v, ignore) for k, v in value.items()
                if k not in ignore and not k.endswith("seconds")}
    if isinstance(value, list):
        return [_clean(v, ignore) for v in value]
    return value


def _read_tree(top: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted(top.rglob("*")):
        if path.suffix not in READ or not path.is_file():
            continue
        text = path.read_text()
        rel = str(path.relative_to(top))
        if path.suffix == ".jsonl":
            out[rel] = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            out[rel] = json.loads(text)
    return out


def _run(cmd: list[str], env: dict[str, str]) -> None:
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")


def record(path: Path, only: list[str] | None, threads: int) -> None:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    names = only or ["demo", *_scripts()]
    unknown = sorted(set(names) - {"demo", *_scripts()})
    if unknown:
        raise SystemExit(f"--only takes 'demo' or an experiment script's name, but got {unknown}.")
    # Added to what the file already holds, and written after every command: a failing command
    # keeps the ones before it, and ``--only`` completes an earlier snapshot.
    snapshot: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="bayesnas-snapshot-") as tmp:
        for name in names:
            out = Path(tmp) / name
            if name == "demo":
                _run([str(bin_dir / "bayesnas"), *DEMO, "--out", str(out)], env)
            else:
                script = ROOT / "experiments" / f"{name}.py"
                # One run at a time, on `threads` threads: every script takes --jobs (its own parser or
                # the study parser's) except pdas_inpainting, which takes --threads only.
                text = script.read_text()
                one = ["--threads", str(threads)] if '"--threads"' in text else []
                one += [] if "study_parser" not in text and '"--jobs"' not in text else ["--jobs", "1"]
                _run([sys.executable, str(script), "--smoke", *one, "--out", str(out), "--no-progress"], env)
            snapshot[name] = _clean(_read_tree(out), VOLATILE)
            path.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
    print(f"snapshot of {len(names)} commands written to {path}")


def _diff(a: Any, b: Any, where: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{where}/{k}: {'missing before' if k not in a else 'missing after'}")
            else:
                _diff(a[k], b[k], f"{where}/{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{where}[{i}]", out)
    elif a != b:
        out.append(f"{where}: {json.dumps(a)[:200]} -> {json.dumps(b)[:200]}")


def compare(before: Path, after: Path, ignore: set[str]) -> int:
    a = _clean(json.loads(before.read_text()), ignore)
    b = _clean(json.loads(after.read_text()), ignore)
    common = sorted(set(a) & set(b))
    diffs: list[str] = []
    for name in common:
        _diff(a[name], b[name], name, diffs)
    values = sum(len(json.dumps(a[n])) for n in common)
    for line in diffs:
        print(line)
    print(f"{len(common)} commands compared ({', '.join(common)}), {values:,} characters of JSON: "
          f"{len(diffs)} difference(s).")
    return 1 if diffs else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("record", help="run the commands and write their numbers to PATH")
    r.add_argument("path", type=Path)
    r.add_argument("--only", nargs="+", default=None, help="'demo' and/or experiment script names")
    r.add_argument("--threads", type=int, default=2, help="torch threads of every run")
    c = sub.add_parser("compare", help="print every difference between two snapshots")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    c.add_argument("--ignore", nargs="*", default=[], help="more keys to leave out of the comparison")
    args = p.parse_args(argv)
    if args.command == "record":
        record(args.path, args.only, args.threads)
        return 0
    return compare(args.before, args.after, set(args.ignore))


if __name__ == "__main__":
    sys.exit(main())
