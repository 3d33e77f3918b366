"""The latency look-up table of nes2019 §4.2: measuring, summing, persisting, interpolating."""

import json
from itertools import pairwise

import pytest
import torch

from bayesnas.resources.latency import LatencyLookupError, LatencyTable, macs
from bayesnas.resources.layers import LayerSpec

# Tiny layers, so that timing them all takes milliseconds.
SPECS = [
    LayerSpec("conv", 3, 8, resolution=8, kernel=3, stride=2, batch_norm=True),
    LayerSpec("conv", 8, 8, resolution=4, kernel=3, groups=8, batch_norm=True),  # depthwise
    LayerSpec("conv", 8, 16, resolution=4, kernel=1, batch_norm=True),
    LayerSpec("conv", 16, 16, resolution=4, kernel=3, groups=4),  # grouped, with bias
    LayerSpec("linear", 16, 10),
    LayerSpec("linear", 16, 10, batch_norm=True),
]
FAST = dict(repeats=3, warmup=1)


@pytest.fixture(scope="module")
def measured() -> LatencyTable:
    table = LatencyTable()
    table.measure(SPECS + SPECS[:2], **FAST)  # repeats are timed once
    return table


def test_measure_prices_every_distinct_layer_positively(measured):
    assert len(measured) == len(SPECS)
    assert all(ms > 0 for _, ms in measured.items())
    assert measured.device == "cpu" and measured.batch_size == 1
    assert measured.threads == torch.get_num_threads()
    assert measured.torch_version == torch.__version__ and measured.device_name


def test_measure_keeps_existing_entries_and_returns_only_new_ones(measured):
    table = LatencyTable()
    table.update(measured)
    table.set(SPECS[0], 123.0)
    new = LayerSpec("conv", 4, 4, resolution=4, kernel=1)
    assert list(table.measure([SPECS[0], new], **FAST)) == [new]
    assert table.latency(SPECS[0]) == 123.0


def test_total_is_the_sum_of_the_layers(measured):
    arch = SPECS + [SPECS[2], SPECS[2]]  # a layer repeated in an architecture counts each time
    assert measured.total(arch) == pytest.approx(sum(measured.latency(s) for s in arch), rel=1e-12)
    assert measured.total([]) == 0.0


def test_save_load_round_trip(measured, tmp_path):
    path = tmp_path / "sub" / "latency.json"
    measured.save(path)
    data = json.loads(path.read_text())  # valid JSON, with the metadata
    assert data["metadata"]["batch_size"] == 1 and data["metadata"]["device"] == "cpu"
    assert data["metadata"]["torch_version"] == torch.__version__
    assert data["metadata"]["threads"] == torch.get_num_threads() and data["metadata"]["device_name"]
    assert len(data["entries"]) == len(SPECS)
    loaded = LatencyTable.load(path)
    assert loaded == measured
    assert dict(loaded.items()) == dict(measured.items())  # floats survive JSON exactly
    assert [p.name for p in path.parent.iterdir()] == ["latency.json"]  # no temp file left


def test_tables_of_different_batch_sizes_do_not_mix(measured, tmp_path):
    path = tmp_path / "latency.json"
    measured.save(path)
    loaded = LatencyTable.load(path)
    with pytest.raises(ValueError, match=r"one device and batch size.*batch_size=1.*batch_size=2"):
        loaded.measure([LayerSpec("linear", 4, 4)], batch_size=2, **FAST)
    with pytest.raises(ValueError, match="batch_size=8"):
        LatencyTable.load(path, batch_size=8)
    other = LatencyTable()
    other.measure([LayerSpec("linear", 4, 4)], batch_size=2, **FAST)
    with pytest.raises(ValueError, match="batch_size=2"):
        loaded.update(other)
    vendor = LatencyTable(device_name="Samsung S8 (ChamNet)", batch_size=1)
    vendor.set(SPECS[0], 1.0)
    with pytest.raises(ValueError, match="device_name"):
        vendor.measure(SPECS[:1], **FAST)
    unnamed = LatencyTable()
    unnamed.set(SPECS[0], 1.0)
    with pytest.raises(ValueError, match="unnamed device"):
        unnamed.measure(SPECS[1:2], **FAST)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(repeats=0), "`repeats` must be an integer >= 1, but got repeats=0."),
    (dict(warmup=-1), "`warmup` must be an integer >= 0, but got warmup=-1."),
    (dict(batch_size=1.5), "`batch_size` must be an integer >= 1, but got batch_size=1.5."),
    (dict(device="meta"), "`device` must be of type ['cpu', 'cuda'], but got device='meta'."),
])
def test_measure_validates_its_arguments(kwargs, message):
    with pytest.raises(ValueError) as info:
        LatencyTable().measure(SPECS[:1], **kwargs)
    assert str(info.value) == message


def test_set_validates():
    table = LatencyTable()
    with pytest.raises(ValueError, match=r"`ms` must be a finite number > 0 \(milliseconds\), but got ms=-1"):
        table.set(SPECS[0], -1.0)
    with pytest.raises(ValueError, match="ms=nan"):
        table.set(SPECS[0], float("nan"))
    with pytest.raises(TypeError, match="`spec` must be a LayerSpec"):
        table.set(("conv", 3, 8), 1.0)


# ------------------------------------------------------------------ interpolation
A, B = 0.05, 2e-6  # ms of overhead, ms per MAC


def dense(c_in: int, c_out: int, res: int = 8) -> LayerSpec:
    return LayerSpec("conv", c_in, c_out, resolution=res, kernel=3, batch_norm=True)


def depthwise(c: int, res: int = 8) -> LayerSpec:
    return LayerSpec("conv", c, c, resolution=res, kernel=3, groups=c, batch_norm=True)


@pytest.fixture()
def synthetic() -> LatencyTable:
    """A sparse table whose values follow a + b·MACs exactly."""
    table = LatencyTable(device_name="synthetic", batch_size=1)
    for c_in, c_out in [(8, 16), (16, 16), (16, 32), (32, 64)]:
        table.set(dense(c_in, c_out), A + B * macs(dense(c_in, c_out)))
    for c in (8, 32):
        table.set(depthwise(c, res=16), A + B * macs(depthwise(c, res=16)))
    return table


def test_missing_entry_is_the_exact_line(synthetic):
    missing = dense(24, 48)
    assert missing not in synthetic
    assert synthetic.latency(missing) == pytest.approx(A + B * macs(missing), rel=1e-9)
    # another resolution: no entries there, so the line over the whole family (MACs carry res)
    other_res = dense(24, 48, res=32)
    assert synthetic.latency(other_res) == pytest.approx(A + B * macs(other_res), rel=1e-9)
    assert synthetic.total([missing, other_res]) == pytest.approx(
        2 * A + B * (macs(missing) + macs(other_res)), rel=1e-9)
    with pytest.raises(LatencyLookupError, match="interpolate=False"):
        synthetic.latency(missing, interpolate=False)


def test_interpolation_grows_with_channels(synthetic):
    dense_ms = [synthetic.latency(dense(c, c)) for c in range(4, 129, 4)]
    assert all(a < b for a, b in pairwise(dense_ms))
    dw_ms = [synthetic.latency(depthwise(c, res=16)) for c in range(4, 129, 4)]
    assert all(a < b for a, b in pairwise(dw_ms))


def test_interpolation_stays_monotone_and_positive_on_noisy_data():
    # Overhead-dominated measurements that fall as channels grow: the free line would slope
    # down; the constrained one is flat, so a wider layer is never priced cheaper.
    table = LatencyTable()
    for c, ms in [(8, 0.30), (16, 0.29), (32, 0.28)]:
        table.set(dense(c, c), ms)
    ms = [table.latency(dense(c, c)) for c in (4, 12, 64, 256)]
    assert all(m > 0 for m in ms) and all(a <= b for a, b in pairwise(ms))
    # Values that would need a negative intercept: the line goes through the origin instead.
    table = LatencyTable()
    for c, ms_ in [(8, 0.01), (16, 0.2), (32, 1.0)]:
        table.set(dense(c, c), ms_)
    assert table.latency(dense(2, 2)) > 0


def test_a_family_without_data_raises_a_clear_error(synthetic):
    with pytest.raises(LatencyLookupError, match=r"Cannot interpolate.*\('linear', 1, 1, 'dense', False\)"):
        synthetic.latency(LayerSpec("linear", 64, 10))
    with pytest.raises(KeyError):  # a KeyError, for callers that catch that
        synthetic.latency(LayerSpec("conv", 8, 8, resolution=8, kernel=5))
    # one entry is not enough for a line
    synthetic.set(LayerSpec("conv", 8, 8, resolution=8, kernel=3, stride=2), 1.0)
    with pytest.raises(LatencyLookupError, match="at least two distinct MACs"):
        synthetic.latency(LayerSpec("conv", 16, 16, resolution=8, kernel=3, stride=2))


def test_set_invalidates_the_fitted_lines(synthetic):
    missing = dense(24, 48)
    before = synthetic.latency(missing)
    for spec, ms in list(synthetic.items()):
        synthetic.set(spec, 2 * ms)
    assert synthetic.latency(missing) == pytest.approx(2 * before, rel=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_measure_on_cuda():
    table = LatencyTable()
    table.measure(SPECS, device="cuda", batch_size=8, **FAST)
    assert table.device == "cuda" and table.batch_size == 8
    assert table.device_name == torch.cuda.get_device_name()
    assert all(ms > 0 for _, ms in table.items())
    with pytest.raises(ValueError, match="device"):
        table.measure([LayerSpec("linear", 4, 4)], device="cpu", batch_size=8, **FAST)
