"""A latency look-up table over layers, summed over an architecture (nes2019 §4.2).

nes2019 §4.2 prices an architecture's latency the way ChamNet and FBNet do: "build a latency
look-up-table for a layer with different hyperparameter choices and obtain the total latency of
the network by summing up the latency of all layers in the network". :class:`LatencyTable` is
that table. Its keys are :class:`~bayesnas.resources.layers.LayerSpec` records (what a backbone
of :mod:`bayesnas.nn` lists for an architecture); its values are milliseconds, either measured
here (:meth:`LatencyTable.measure`) or entered from elsewhere (:meth:`LatencyTable.set`, e.g.
ChamNet's released CPU table, which nes2019 uses for its CPU results). :meth:`LatencyTable.total`
is the sum nes2019 constrains.

A table is for one device and one batch size (nes2019 measures a GTX 1080Ti at batch size 256):
latencies of different hardware or batch sizes do not add up to anything meaningful, so the
table records both in its metadata and refuses to mix them.

Missing entries. nes2019 fills the holes of ChamNet's sparse table with a Gaussian process, as
ChamNet did for energy. This module uses a simpler model instead, documented in
:meth:`LatencyTable.latency`: a non-negative least-squares line ``latency ≈ a + b·MACs`` over the
measured entries of the same kind of layer. Why not a GP: a table holds few entries per kind of
layer (a GP's kernel hyper-parameters are poorly identified from a handful of points), a line in
MACs is monotone by construction (a GP is not: a constraint that gets *cheaper* as channels grow
would let the search exploit interpolation noise), it extrapolates sensibly beyond the measured
range (a GP reverts to its mean), and it needs no extra dependency.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from bayesnas.resources.layers import LayerSpec
from bayesnas.runs import atomic_write_text

#: the ``format`` field of a saved table, checked on load.
FORMAT = "bayesnas.latency_table"
#: the version of the saved layout, checked on load.
VERSION = 1

#: the devices :meth:`LatencyTable.measure` can time (it synchronizes CUDA around each forward).
DEVICE_TYPES = ("cpu", "cuda")


class LatencyLookupError(KeyError):
    """No latency for a layer: not in the table, and nothing to interpolate it from."""

    def __str__(self) -> str:
        # KeyError's own __str__ shows the repr of its argument (quotes, escaped newlines).
        return str(self.args[0]) if self.args else ""


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, but got {name}={value!r}.")


def _check_ms(ms: Any) -> float:
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms <= 0:
        raise ValueError(f"`ms` must be a finite number > 0 (milliseconds), but got ms={ms!r}.")
    return float(ms)


def _check_spec(spec: Any) -> LayerSpec:
    if not isinstance(spec, LayerSpec):
        raise TypeError(f"`spec` must be a LayerSpec, but got {type(spec).__name__}: {spec!r}.")
    return spec


def macs(spec: LayerSpec) -> int:
    """Multiply-accumulates of one sample through the layer: the x of the interpolation line.

    A convolution does ``out_res² · kernel² · (in / groups) · out`` with "same" padding; a linear
    layer ``in · out``. The batch size is left out: it is one constant for a whole table.
    """
    if spec.kind == "linear":
        return spec.in_channels * spec.out_channels
    return spec.out_resolution**2 * spec.kernel**2 * (spec.in_channels // spec.groups) * spec.out_channels


def groups_pattern(spec: LayerSpec) -> str:
    """``"dense"`` (groups 1), ``"depthwise"`` (one group per input channel) or ``"grouped"``.

    The three run different kernels (cuDNN/oneDNN pick different algorithms), so a MACs line of
    one says little about another; they are interpolated separately.
    """
    if spec.groups == 1:
        return "dense"
    if spec.groups == spec.in_channels:
        return "depthwise"
    return "grouped"


def family(spec: LayerSpec) -> tuple[str, int, int, str, bool]:
    """The entries a missing spec may be interpolated from share this key (resolution aside):
    ``(kind, kernel, stride, groups pattern, batch_norm)``."""
    return (spec.kind, spec.kernel, spec.stride, groups_pattern(spec), spec.batch_norm)


def build_layer(spec: LayerSpec) -> nn.Module:
    """The module a spec describes, as :meth:`LatencyTable.measure` times it.

    ``nn.Conv2d`` with "same" padding ``kernel // 2`` (no bias when a BatchNorm follows, as the
    backbones build it: the BatchNorm's shift makes it redundant), then ``nn.BatchNorm2d`` when
    ``batch_norm``; or ``nn.Linear``, then ``nn.BatchNorm1d`` when ``batch_norm``.
    """
    if spec.kind == "linear":
        linear = nn.Linear(spec.in_channels, spec.out_channels, bias=not spec.batch_norm)
        return nn.Sequential(linear, nn.BatchNorm1d(spec.out_channels)) if spec.batch_norm else linear
    conv = nn.Conv2d(spec.in_channels, spec.out_channels, spec.kernel, stride=spec.stride,
                     padding=spec.kernel // 2, groups=spec.groups, bias=not spec.batch_norm)
    return nn.Sequential(conv, nn.BatchNorm2d(spec.out_channels)) if spec.batch_norm else conv


def input_shape(spec: LayerSpec, batch_size: int) -> tuple[int, ...]:
    """The shape of the random input a spec is timed on."""
    if spec.kind == "linear":
        return (batch_size, spec.in_channels)
    return (batch_size, spec.in_channels, spec.resolution, spec.resolution)


def _cpu_name() -> str:
    # platform.processor() is empty on most Linux builds; /proc/cpuinfo names the model there.
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def device_name(device: str | torch.device) -> str:
    """The hardware a device string runs on: ``torch.cuda.get_device_name`` for CUDA, the CPU
    model otherwise. Two tables may be mixed only when these agree."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return _cpu_name()


def _time_forward(module: nn.Module, x: torch.Tensor, *, repeats: int, warmup: int) -> float:
    """Median milliseconds of ``module(x)`` over ``repeats`` runs after ``warmup`` runs."""
    cuda = x.device.type == "cuda"

    def sync() -> None:
        # CUDA kernels run asynchronously: without a barrier the clock times the launch only.
        if cuda:
            torch.cuda.synchronize(x.device)

    times = []
    with torch.inference_mode():
        for _ in range(warmup):  # first calls pay for allocation, kernel selection, caches
            module(x)
        sync()
        for _ in range(repeats):
            start = time.perf_counter()
            module(x)
            sync()
            times.append((time.perf_counter() - start) * 1e3)
    # The median, not the mean: one preemption by another process would skew a mean.
    return statistics.median(times)


def _fit_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares ``y ≈ a + b·x`` with ``a, b >= 0`` over points with ``x > 0, y > 0`` and at
    least two distinct ``x``.

    ``b >= 0`` makes the prediction monotone in MACs; ``a >= 0`` keeps it positive. The problem is
    convex in (a, b), so when the free fit breaks a bound the optimum lies on a boundary: the
    better of ``b = 0`` (a = mean y) and ``a = 0`` (b = Σxy / Σx²).
    """
    n = len(points)
    xm = sum(x for x, _ in points) / n
    ym = sum(y for _, y in points) / n
    sxx = sum((x - xm) ** 2 for x, _ in points)
    sxy = sum((x - xm) * (y - ym) for x, y in points)
    b = sxy / sxx
    a = ym - b * xm
    if a >= 0 and b >= 0:
        return a, b

    def sse(a: float, b: float) -> float:
        return sum((y - a - b * x) ** 2 for x, y in points)

    candidates = [(ym, 0.0), (0.0, sum(x * y for x, y in points) / sum(x * x for x, _ in points))]
    return min(candidates, key=lambda ab: sse(*ab))


class LatencyTable:
    """Milliseconds per layer on one device at one batch size, summed per architecture (nes2019 §4.2).

    Fill it by timing layers (:meth:`measure`) or by entering known values (:meth:`set`); read it
    with :meth:`latency` (one layer, interpolated when missing) and :meth:`total` (an
    architecture). Persist it with :meth:`save` / :meth:`load`.

    Args:
        device: the device type the latencies are for (``"cpu"``, ``"cuda"``); ``None`` until the
            first :meth:`measure` fixes it.
        device_name: the hardware (e.g. ``"NVIDIA GeForce GTX 1080 Ti"``); name it when entering a
            vendor table through :meth:`set`, so that measuring local layers into it is refused.
        batch_size: the batch size the latencies are for.
        threads: the CPU threads torch used when measuring (CPU latency depends on it).
        torch_version: the torch version that measured the entries.
    """

    def __init__(
        self,
        *,
        device: str | None = None,
        device_name: str | None = None,
        batch_size: int | None = None,
        threads: int | None = None,
        torch_version: str | None = None,
    ) -> None:
        if batch_size is not None:
            _check_int("batch_size", batch_size, 1)
        if threads is not None:
            _check_int("threads", threads, 1)
        self.device = device
        self.device_name = device_name
        self.batch_size = batch_size
        self.threads = threads
        self.torch_version = torch_version
        self._entries: dict[LayerSpec, float] = {}
        # Fitted lines per interpolation group; any change of the entries invalidates them.
        self._fits: dict[Any, tuple[float, float] | None] = {}

    # ---------------------------------------------------------------- entries
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, spec: object) -> bool:
        """Whether ``spec`` has a measured (or entered) value, as opposed to an interpolated one."""
        return spec in self._entries

    def __iter__(self) -> Iterator[LayerSpec]:
        return iter(self._entries)

    def items(self) -> Iterator[tuple[LayerSpec, float]]:
        """The (spec, milliseconds) entries, in insertion order."""
        return iter(self._entries.items())

    @property
    def metadata(self) -> dict[str, Any]:
        """What the entries were measured on: device, device name, batch size, threads, torch."""
        return {"device": self.device, "device_name": self.device_name, "batch_size": self.batch_size,
                "threads": self.threads, "torch_version": self.torch_version}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyTable):
            return NotImplemented
        return self.metadata == other.metadata and self._entries == other._entries

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (f"LatencyTable({len(self)} entries, device={self.device!r}, "
                f"device_name={self.device_name!r}, batch_size={self.batch_size!r})")

    def set(self, spec: LayerSpec, ms: float) -> None:
        """Enter (or overwrite) the latency of ``spec`` in milliseconds.

        For values measured elsewhere: a vendor table (ChamNet's released CPU table, as nes2019
        §4.2 uses), another tool's measurements, or synthetic values in tests. The caller vouches
        that they are for this table's device and batch size; the metadata is not touched.
        """
        self._entries[_check_spec(spec)] = _check_ms(ms)
        self._fits.clear()

    def _check_compatible(self, *, device: str | None, device_name: str | None,
                          batch_size: int | None, threads: int | None, what: str) -> None:
        """Refuse to mix latencies of different hardware, batch sizes or CPU thread counts."""
        mine = {"device": self.device, "device_name": self.device_name, "batch_size": self.batch_size}
        theirs = {"device": device, "device_name": device_name, "batch_size": batch_size}
        if (self.device or device) == "cpu":
            mine["threads"], theirs["threads"] = self.threads, threads
        for key, value in mine.items():
            if value is not None and theirs[key] is not None and value != theirs[key]:
                raise ValueError(
                    f"A LatencyTable is for one device and batch size: this one holds {key}={value!r}, "
                    f"but {what} has {key}={theirs[key]!r}. Latencies of different settings do not add "
                    "up; use a separate table for each.")
        if self._entries and (self.device_name is None or self.batch_size is None) and what == "measure()":
            raise ValueError(
                f"This table holds {len(self)} entries of an unnamed device or batch size "
                f"(device_name={self.device_name!r}, batch_size={self.batch_size!r}), so measuring on "
                f"{device_name!r} at batch_size={batch_size} could mix settings. Name them when "
                "creating the table (LatencyTable(device_name=..., batch_size=...)) or measure into "
                "a fresh table.")

    def _adopt(self, meta: dict[str, Any]) -> None:
        for key, value in meta.items():
            if getattr(self, key) is None:
                setattr(self, key, value)

    def measure(
        self,
        layers: Iterable[LayerSpec],
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 1,
        repeats: int = 20,
        warmup: int = 5,
        progress: bool = False,
    ) -> dict[LayerSpec, float]:
        """Time every distinct layer of ``layers`` that the table lacks, and enter it.

        Each layer is built by :func:`build_layer` on ``device`` in eval mode and run on a random
        input of shape :func:`input_shape` under ``torch.inference_mode``: ``warmup`` untimed
        forwards, then the median milliseconds of ``repeats`` timed ones (with
        ``torch.cuda.synchronize`` on CUDA). Entries already present are kept as they are, so a
        table grows as new architectures are priced.

        The first measurement fixes the table's device, device name, batch size, threads and torch
        version; a later one with another device, batch size or (on CPU) thread count raises.

        Args:
            layers: the specs to price, e.g. the layers of one or more architectures (repeats
                are timed once).
            device: ``"cpu"`` or a CUDA device.
            batch_size: the batch size of the input (nes2019 times its GPU at 256).
            repeats: timed forwards per layer.
            warmup: untimed forwards per layer before timing.
            progress: show a progress bar over the layers to time.

        Returns:
            The newly measured entries, spec → milliseconds.
        """
        _check_int("batch_size", batch_size, 1)
        _check_int("repeats", repeats, 1)
        _check_int("warmup", warmup, 0)
        dev = torch.device(device)
        if dev.type not in DEVICE_TYPES:
            raise ValueError(f"`device` must be of type {list(DEVICE_TYPES)}, but got device={device!r}.")
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"`device` must be available, but got device={device!r} and CUDA is not.")
        meta = {"device": dev.type, "device_name": device_name(dev), "batch_size": batch_size,
                "threads": torch.get_num_threads(), "torch_version": torch.__version__}
        self._check_compatible(device=meta["device"], device_name=meta["device_name"],
                               batch_size=batch_size, threads=meta["threads"], what="measure()")
        # dict.fromkeys: distinct specs in first-seen order (an architecture repeats layers).
        todo = [s for s in dict.fromkeys(_check_spec(s) for s in layers) if s not in self._entries]
        self._adopt(meta)
        if progress:
            from tqdm.auto import tqdm

            todo_iter: Iterable[LayerSpec] = tqdm(todo, desc="latency", unit="layer")
        else:
            todo_iter = todo
        measured: dict[LayerSpec, float] = {}
        for spec in todo_iter:
            module = build_layer(spec).to(dev).eval()
            x = torch.randn(input_shape(spec, batch_size), device=dev)
            # perf_counter has sub-microsecond resolution, but guard the strict positivity the
            # table requires against a clock that returns equal readings.
            ms = max(_time_forward(module, x, repeats=repeats, warmup=warmup), 1e-9)
            measured[spec] = ms
            self._entries[spec] = ms
            del module, x
        self._fits.clear()
        return measured

    def update(self, other: LatencyTable) -> None:
        """Enter all entries of ``other`` (its values win), which must be for the same device,
        batch size and (on CPU) threads; e.g. tables measured by several processes."""
        if not isinstance(other, LatencyTable):
            raise TypeError(f"`other` must be a LatencyTable, but got {type(other).__name__}.")
        self._check_compatible(device=other.device, device_name=other.device_name,
                               batch_size=other.batch_size, threads=other.threads, what="the other table")
        self._adopt(other.metadata)
        self._entries.update(other._entries)
        self._fits.clear()

    # ---------------------------------------------------------------- lookup
    def _fit(self, key: Any, specs: Iterable[LayerSpec]) -> tuple[float, float] | None:
        if key not in self._fits:
            points = [(float(macs(s)), self._entries[s]) for s in specs]
            distinct = {x for x, _ in points}
            self._fits[key] = _fit_line(points) if len(distinct) >= 2 else None
        return self._fits[key]

    def latency(self, spec: LayerSpec, *, interpolate: bool = True) -> float:
        """Milliseconds of one layer: its entry, or an interpolation when it has none.

        Interpolation (nes2019 §4.2 uses a Gaussian process here; see the module docstring for
        why this is a line): ``latency ≈ a + b·MACs`` (:func:`macs`), fitted by least squares with
        ``a, b >= 0`` over the entries that share the spec's :func:`family` ``(kind, kernel,
        stride, groups pattern, batch_norm)``:

        1. over those at the spec's resolution, when they have at least two distinct MACs (the
           line then only has to explain the channels);
        2. else over the whole family across resolutions (MACs carries the resolution), when it
           has at least two distinct MACs.

        ``a`` is the per-layer overhead (launch, memory pass), ``b`` the cost per MAC. With
        ``b >= 0`` the interpolation never decreases as channels grow, and with ``a >= 0`` it is
        positive. Measured entries are returned as measured, noise included.

        Raises:
            LatencyLookupError: (a ``KeyError``) the spec has no entry and ``interpolate`` is
                false, or its family has fewer than two distinct MACs to fit a line to.
        """
        _check_spec(spec)
        if spec in self._entries:
            return self._entries[spec]
        if not interpolate:
            raise LatencyLookupError(f"No latency entry for {spec} (interpolate=False).")
        fam = family(spec)
        members = [s for s in self._entries if family(s) == fam]
        same_res = [s for s in members if s.resolution == spec.resolution]
        line = self._fit((fam, spec.resolution), same_res) or self._fit((fam, None), members)
        if line is None:
            known = sorted({family(s) for s in self._entries}, key=repr)
            raise LatencyLookupError(
                f"Cannot interpolate the latency of {spec}: its family (kind, kernel, stride, groups "
                f"pattern, batch_norm)={fam} needs entries with at least two distinct MACs, but the "
                f"table has {len(members)} such entries. Measure some layers of this family "
                f"(LatencyTable.measure) or enter them (LatencyTable.set). Families present: {known}.")
        a, b = line
        return a + b * macs(spec)

    def total(self, layers: Iterable[LayerSpec], *, interpolate: bool = True) -> float:
        """Milliseconds of an architecture: the sum of :meth:`latency` over its layers, as
        nes2019 §4.2 (after ChamNet and FBNet) sums its look-up table. Repeated layers count
        once per occurrence."""
        return sum((self.latency(s, interpolate=interpolate) for s in layers), 0.0)

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """The JSON layout :meth:`save` writes: format, version, metadata and sorted entries."""
        entries = sorted(self._entries.items(), key=lambda kv: tuple(kv[0].to_dict().values()))
        return {"format": FORMAT, "version": VERSION, "units": "ms", "metadata": self.metadata,
                "entries": [{"spec": s.to_dict(), "ms": ms} for s, ms in entries]}

    @classmethod
    def from_dict(cls, data: Any) -> LatencyTable:
        """The table of a :meth:`to_dict` layout, validating it."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"Not a latency table: expected format={FORMAT!r}, but got "
                             f"format={data.get('format') if isinstance(data, dict) else data!r}.")
        if data.get("version") != VERSION:
            raise ValueError(f"`version` must be {VERSION}, but got version={data.get('version')!r}.")
        meta = data.get("metadata", {})
        unknown = sorted(set(meta) - {"device", "device_name", "batch_size", "threads", "torch_version"})
        if unknown:
            raise ValueError(f"Unknown metadata keys {unknown} in a latency table.")
        table = cls(**meta)
        for entry in data.get("entries", []):
            spec = LayerSpec(**entry["spec"])
            if spec in table._entries:
                raise ValueError(f"Duplicate latency entry for {spec}.")
            table.set(spec, entry["ms"])
        return table

    def save(self, path: str | os.PathLike) -> None:
        """Write the table as JSON, atomically (a crash leaves the old file or the new one)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike, *, device_name: str | None = None,
             batch_size: int | None = None) -> LatencyTable:
        """Read a table written by :meth:`save`.

        Args:
            device_name, batch_size: when given, the table must be for them (else ``ValueError``):
                a guard against pricing a GPU search with a CPU table, or batch 256 with batch 1.
        """
        with open(path) as f:
            table = cls.from_dict(json.load(f))
        table._check_compatible(device=None, device_name=device_name, batch_size=batch_size,
                                threads=None, what=f"load({os.fspath(path)!r})")
        return table
