"""The committed example run (docs/example-run, written by `make docs`) is what today's code
writes for the Makefile's demo flags: a stale copy fails here, not in a reader's hands."""

import json
import re
import shlex
from pathlib import Path

import pytest

from bayesnas.cli import search_config
from bayesnas.runs.config import RUN_FIELDS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "example-run"


def _demo_flags() -> list[str]:
    match = re.search(r"^DEMO := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "the Makefile defines the demo's flags as `DEMO := ...`"
    return shlex.split(match.group(1))


def test_the_committed_example_run_has_the_config_the_demo_writes_today():
    committed = json.loads((EXAMPLE / "config.json").read_text())
    assert committed["kind"] == "search"
    today = search_config(_demo_flags()).to_dict()
    saved = {k: v for k, v in committed.items() if k not in RUN_FIELDS}
    assert saved == today, "docs/example-run is stale: regenerate it with `make docs`"


def test_the_committed_example_run_has_every_result_a_search_writes_today():
    results = json.loads((EXAMPLE / "results.json").read_text())
    assert "diagnostics" in results, "docs/example-run predates the run diagnostics: `make docs`"
    assert not (EXAMPLE / "checkpoint.pt").exists()


def test_the_readme_quotes_the_committed_demo_numbers():
    results = json.loads((EXAMPLE / "results.json").read_text())
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("<!-- begin: demo -->"):readme.index("<!-- end: demo -->")]
    assert f"test error deterministic {results['test_error_deterministic']:.3f}" in block
    for name in results["diagnostics"]["fired"]:
        assert f"warning: {name}: " in block


def _regenerate():
    import importlib.util

    spec = importlib.util.spec_from_file_location("regenerate", ROOT / "docs" / "regenerate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_docs_finds_every_block_it_rewrites_in_the_readme():
    regenerate = _regenerate()
    readme = (ROOT / "README.md").read_text()
    for name in ["demo", *regenerate.BENCH_BLOCKS]:
        assert regenerate.replace_block(readme, name, "\n    new\n\n").count("    new\n") == 1
    with pytest.raises(ValueError, match="README.md has no block `<!-- begin: nothing -->`"):
        regenerate.replace_block(readme, "nothing", "")
