"""Ground-truth tables (bayesnas.bench): entries trained alone repeat exactly, a killed build
resumes to the uninterrupted table, lookups and spreads are exact, and the committed tables hold."""

import dataclasses
import json
import math

import pytest

import bayesnas.bench.table as table_module
from bayesnas.bench import Table, architecture_key, get_table_spec, register_table, table_specs
from bayesnas.bench.check import recheck_entries
from bayesnas.bench.spec import _TABLES, Protocol, TableSpec, all_bits, sampled_categorical
from bayesnas.bench.table import summarise_entries
from bayesnas.cli import main
from bayesnas.methods import run
from bayesnas.methods.bench import BenchConfig, BenchRun, append_architectures

# Two bits over the 80 features of digits-noise in groups of 40: the pixels' first 40 and the
# last 24 pixels with the 16 noise features; one epoch. Four architectures, two seeds.
TINY = TableSpec(name="tiny-test-table", space="input-groups", space_options={"group_size": 40, "width": 8},
                 protocol=Protocol(dataset="digits-noise", epochs=1, batch_size=128, lr=1e-2),
                 seeds=(0, 1), architectures=all_bits("inputs", 2), why="a test's table")


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setattr(table_module, "TABLES_DIR", tmp_path / "committed")
    register_table(TINY)
    yield TINY
    del _TABLES[TINY.name]


@pytest.fixture
def sampled(tmp_path, monkeypatch):
    """TINY's first two architectures as its sample: the other two lie outside it."""
    monkeypatch.setattr(table_module, "TABLES_DIR", tmp_path / "committed")
    spec = dataclasses.replace(TINY, name="tiny-sampled-table",
                               architectures=lambda: all_bits("inputs", 2)()[:2])
    register_table(spec)
    yield spec
    del _TABLES[spec.name]


def _without_seconds(table):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in table.entries]


def test_architecture_keys_do_not_depend_on_site_order():
    assert architecture_key({"b": [1, 0], "a": 2}) == architecture_key({"a": 2, "b": [1, 0]})
    assert architecture_key({"a": [1, 0]}) != architecture_key({"a": [0, 1]})


def test_entries_average_their_seeds_and_the_table_looks_them_up():
    rows = [{"architecture": {"x": [i]}, "seed": s, "val_error": 0.1 * i + s / 100,
             "test_error": 0.2 * i + s / 50, "seconds": 1.0 + s, "macs": 10 * i}
            for i in range(3) for s in (0, 1)]
    table = Table({"seeds": [0, 1]}, summarise_entries(rows, (0, 1)))
    e = table.entry({"x": [2]})
    assert e["test_errors"] == pytest.approx([0.4, 0.42]) and e["test_error"] == pytest.approx(0.41)
    assert e["seconds"] == 1.5 and e["macs"] == 20 and table.entry({"x": [7]}) is None
    assert table.best()["architecture"] == {"x": [0]}
    assert table.percentile(0.01) == pytest.approx(1 / 3) and table.percentile(0.5) == 1.0
    spread = table.spread()  # best 0.01 ± SE, median 0.21: SE = sqrt(var([0, .02])/2 + var([.2, .22])/2)
    assert spread["gap"] == pytest.approx(0.2)
    assert spread["standard_error"] == pytest.approx(math.sqrt(2 * 0.0002 / 2))


def test_a_killed_build_resumes_to_the_uninterrupted_table_and_rechecks_exactly(tiny, tmp_path, monkeypatch):
    whole = run(BenchConfig(table=tiny.name), out=tmp_path / "whole", progress=False)
    assert whole["complete"] and whole["entries"] == 4
    committed = Table.named(tiny.name)  # a whole build writes the committed copy
    assert committed.metadata["seeds"] == [0, 1]
    assert committed.metadata["why_the_errors_spread"] == "a test's table"

    import bayesnas.methods.bench as bench

    calls = []
    original = bench.train_entry

    def dies_after_three(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(bench, "train_entry", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        run(BenchConfig(table=tiny.name), out=tmp_path / "cut", progress=False)
    monkeypatch.setattr(bench, "train_entry", original)
    assert len(list((tmp_path / "cut" / "entries").glob("*.json"))) == 3  # nothing done is lost
    resumed = run(out=tmp_path / "cut", resume=True, progress=False)
    assert resumed == whole
    assert _without_seconds(Table.load(tmp_path / "cut" / "table.json")) == _without_seconds(committed)

    rows = recheck_entries(tiny.name, entries=3, seed=1)
    assert len(rows) == 3 and all(r["exact"] for r in rows), rows


def test_a_limited_build_is_never_committed(tiny, tmp_path):
    results = BenchRun(BenchConfig(table=tiny.name, limit=2), tmp_path / "run").run(progress=False)
    assert not results["complete"] and results["entries"] == 2
    assert not table_module.table_path(tiny.name).exists()


def test_a_sampled_space_draws_distinct_architectures_with_its_seed():
    draw = sampled_categorical("edges", 6, 5, count=500, seed=2026)
    archs = draw()
    assert archs == draw() and len(archs) == 500
    assert len({architecture_key(a) for a in archs}) == 500
    assert all(len(a["edges"]) == 6 and set(a["edges"]) <= set(range(5)) for a in archs)
    assert archs != sampled_categorical("edges", 6, 5, count=500, seed=0)()
    # Every one of the 5^6 values can be drawn: index 5^6 - 1 decodes to all 4s, index 0 to all 0s.
    everything = sampled_categorical("e", 2, 3, count=9, seed=0)()
    assert sorted(tuple(a["e"]) for a in everything) == [(i, j) for i in range(3) for j in range(3)]


def test_appended_architectures_are_looked_up_but_never_ranked(sampled, tmp_path, monkeypatch):
    run(BenchConfig(table=sampled.name), out=tmp_path / "build", progress=False)
    before = Table.named(sampled.name)
    outside = [{"inputs": [1, 0]}, {"inputs": [1, 1]}]
    grown = append_architectures(sampled.name, [*outside, outside[0], before.sample[0]["architecture"]])
    assert len(grown) == 2 and len(grown.entries) == 4 and grown.metadata["appended"] == 2
    for arch in outside:  # trained alone under the protocol, for every seed, exactly as a build would
        e = grown.entry(arch)
        assert e["appended"] and e["seeds"] == [0, 1]
        assert e == Table.named(sampled.name).entry(arch)
    # The statistics are the sample's alone, however good the appended ones are.
    assert grown.best() == before.best() and grown.spread() == before.spread()
    assert grown.percentile(0.5) == before.percentile(0.5) and grown.errors() == before.errors()
    assert [e["architecture"] for e in grown.sample] == [e["architecture"] for e in before.sample]
    # Nothing missing: nothing trained.
    import bayesnas.methods.bench as bench

    with monkeypatch.context() as m:
        m.setattr(bench, "train_alone", lambda *a, **k: pytest.fail("trained again"))
        assert append_architectures(sampled.name, outside).entries == grown.entries
    # A rebuild of the sample keeps what was appended to the committed table.
    run(BenchConfig(table=sampled.name), out=tmp_path / "again", progress=False)
    again = Table.named(sampled.name)
    assert _without_seconds(again) == _without_seconds(grown) and again.metadata["appended"] == 2


def test_an_unknown_table_or_a_bad_limit_is_one_line_naming_it(tmp_path, capsys):
    assert main(["bench", "build", "no-such-table", "--out", str(tmp_path / "x")]) == 2
    assert "Unknown table 'no-such-table'. Known tables: " in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"`limit` must be None or an integer >= 1, but got limit=0"):
        BenchConfig(limit=0).validate()


# -- the committed tables ------------------------------------------------------------------------


@pytest.mark.parametrize("spec", table_specs(), ids=[s.name for s in table_specs()])
def test_a_committed_table_is_whole_spread_and_repeats_on_recheck(spec):
    table = Table.named(spec.name)
    meta = table.metadata
    assert len(table) == len(spec.architectures()) == meta["architectures"]
    assert meta["seeds"] == list(spec.seeds) and len(spec.seeds) >= 2
    assert meta["protocol"]["dataset"] == spec.protocol.dataset and meta["command"].endswith(spec.name)
    assert {"bayesnas_version", "torch_version", "training_seconds", "why_the_errors_spread"} <= set(meta)
    assert table.spread()["gap_in_standard_errors"] >= 2  # the best is well clear of the median
    assert (table_module.table_path(spec.name)).stat().st_size <= 5 * 2**20
    rows = recheck_entries(spec.name, entries=2, seed=0)
    assert all(r["exact"] for r in rows), rows


def test_bench_list_names_every_table(capsys):
    assert main(["bench", "list"]) == 0
    out = capsys.readouterr().out
    for spec in table_specs():
        assert spec.name in out


def test_a_table_spec_is_frozen_and_named_once():
    spec = get_table_spec("input-groups")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seeds = (0,)
    with pytest.raises(ValueError, match="registered already"):
        register_table(spec)
    json.dumps(spec.protocol.to_dict())
