"""Regenerate what the README shows from today's code: ``make docs``.

1. The demo search (the Makefile's ``DEMO`` flags) into ``docs/example-run/`` (its report
   included; no checkpoint), and the README's demo block from its ``results.json``, with the
   run's diagnostics quoted.
2. Each README block between ``<!-- begin: NAME -->`` and ``<!-- end: NAME -->`` whose NAME is
   a command below: replaced by that command's output, indented as a code block.

    python docs/regenerate.py --demo "layer-skip --dataset mnist5k ..."   [--no-bench]

The demo runs on 2 CPU threads (the development machine's cores); timings are this machine's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLE = ROOT / "docs" / "example-run"
#: README block -> the command whose output it shows (run from the repository root).
BENCH_BLOCKS = {
    "step-time": [sys.executable, "benchmarks/step_time.py"],
    "spaces-step-time": [sys.executable, "benchmarks/spaces_step_time.py", "--repeats", "5", "--steps", "10"],
}
#: run-directory files that are not part of the committed example.
NOT_COMMITTED = ("checkpoint.pt", "tensorboard")


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the block NAME's content replaced by ``body``; an error if it has none."""
    key = re.escape(name)
    pattern = re.compile(rf"(<!-- begin: {key} -->\n)(.*?)(<!-- end: {key} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"README.md has no block `<!-- begin: {name} -->` ... `<!-- end: {name} -->`.")
    return pattern.sub(lambda m: m.group(1) + body + m.group(3), text, count=1)


def code_block(lines: list[str]) -> str:
    return "\n" + "".join(f"    {line}".rstrip() + "\n" for line in lines) + "\n"


def demo_block(demo: str, results: dict, seconds: float) -> str:
    """The README's demo block: the commands, the numbers, the diagnostics."""
    from bayesnas.analysis.diagnostics import warning_lines

    layers = results.get("expected_active_bits")
    lines = [
        f"bayesnas search {demo} --out runs/demo",
        "bayesnas report runs/demo",
        f"test error deterministic {results['test_error_deterministic']:.3f}, stochastic "
        f"({results['stochastic_samples']} samples) {results['test_error_stochastic']:.3f}"
        + (f"; E[#hidden layers] = Σθ + 1 = {layers + 1:.1f}" if layers is not None else ""),
        f"p(mode) {results['mode_probability']:.3f}; {results['epochs']} epochs in {seconds:.0f} s "
        f"(2 CPU threads, {time.strftime('%Y-%m-%d')})",
    ]
    fired = warning_lines(results.get("diagnostics"))
    lines += ["", "diagnostics:" if fired else "diagnostics: none fired"]
    lines += [f"  warning: {line}" for line in fired]
    return code_block(lines)


def run_demo(demo: str) -> tuple[dict, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bayesnas.cli", "search", *shlex.split(demo), "--no-progress",
                        "--out", str(out)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                       env={**_env(), "OMP_NUM_THREADS": "2"})
        seconds = time.perf_counter() - start
        for name in NOT_COMMITTED:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        if EXAMPLE.exists():
            shutil.rmtree(EXAMPLE)
        shutil.copytree(out, EXAMPLE)
    subprocess.run([sys.executable, "-m", "bayesnas.cli", "report", str(EXAMPLE)], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL, env=_env())
    return json.loads((EXAMPLE / "results.json").read_text()), seconds


def _env() -> dict[str, str]:
    return dict(os.environ)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", required=True,
                   help="the demo's `bayesnas search` arguments (the Makefile's DEMO)")
    p.add_argument("--no-bench", action="store_true", help="leave the timing blocks as they are")
    args = p.parse_args(argv)
    text = README.read_text()
    results, seconds = run_demo(args.demo)
    text = replace_block(text, "demo", demo_block(args.demo, results, seconds))
    print(f"docs/example-run: test error {results['test_error_deterministic']:.3f} ({seconds:.0f} s)")
    if not args.no_bench:
        for name, command in BENCH_BLOCKS.items():
            print(f"{name}: {shlex.join(command[1:])}", flush=True)
            done = subprocess.run(command, check=True, cwd=ROOT, capture_output=True, text=True, env=_env())
            text = replace_block(text, name, code_block(done.stdout.rstrip("\n").splitlines()))
    README.write_text(text)
    print("README.md updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
