"""The configuration of a run: one base for every method's config dataclass, and the one place
that reads a run directory's ``config.json``.

A run directory's ``config.json`` is the configuration's fields plus two of the run's own:
``"kind"`` (the method that wrote it: ``"search"``, ``"retrain"``, ``"inpainting"``,
``"vinnas"``, ``"nes"``; :mod:`bayesnas.methods` dispatches on it) and
``"bayesnas_version"``. A directory written before ``kind`` existed has its kind inferred once,
here (:func:`run_kind`), from the fields only that method's config has.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from bayesnas import __version__
from bayesnas.runs.checks import check_bools, check_dataset, check_integers
from bayesnas.runs.files import read_json, write_json

__all__ = ["RUN_FIELDS", "RunConfig", "config_from_dict", "config_to_run", "read_config", "run_kind",
           "start_run_dir", "write_config"]

#: Fields of ``config.json`` that belong to the run, not to its method's configuration.
RUN_FIELDS = ("kind", "bayesnas_version")

#: For run directories written before ``kind``: fields that only one method's config has.
_LEGACY_SIGNATURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("search", ("space",)),
    ("retrain", ("genotype", "normal_cells")),
    ("inpainting", ("mask", "search_iterations")),
    ("vinnas", ("layout", "gamma_arch")),
    ("nes", ("backbone", "budget")),
)

C = TypeVar("C", bound="RunConfig")


def _plain(value: Any) -> Any:
    # JSON has lists, not tuples: the dict compares equal to the one read back from config.json.
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclasses.dataclass(kw_only=True)
class RunConfig:
    """Base of the methods' configuration dataclasses: the fields every run has, ``kind``,
    plain-dict round trips that refuse unknown keys, and ``validate()`` (the shared fields'
    checks here; each method adds its own, with the helpers of :mod:`bayesnas.runs.checks`).

    ``dataset``: a name of :func:`bayesnas.data.available_datasets`. ``seed``: the one integer
    a CPU run repeats exactly from. ``device``: where the networks run (``"cpu"``, ``"cuda"``,
    ``"cuda:1"``, ...; under ``torchrun``, each process's own GPU). ``data_dir``: where a
    torchvision dataset's files are (``None``: the default cache). ``download``: fetch them when
    missing (never in tests). Keyword-only, so that each method's own fields keep their order
    and a method may have fields without a default."""

    dataset: str = "mnist5k"
    seed: int = 0
    device: str = "cpu"
    data_dir: str | None = None
    download: bool = False

    kind: ClassVar[str] = ""

    def validate(self) -> None:
        """Check every field; errors state the rule and the value. A method's config extends
        this with ``super().validate()``."""
        check_dataset(self.dataset)
        check_integers(self, {"seed": 0})
        check_bools(self, ("download",))
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"`device` must be a device name such as 'cpu' or 'cuda', but got "
                             f"device={self.device!r}.")
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise ValueError(f"`data_dir` must be None or a folder's path, but got "
                             f"data_dir={self.data_dir!r}.")

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON values (tuples as lists)."""
        return _plain(dataclasses.asdict(self))  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any]) -> C:
        return config_from_dict(cls, d)


def config_from_dict(cls: type[C], d: Mapping[str, Any]) -> C:
    """``cls(**d)`` for a configuration dataclass, refusing unknown keys by name (a typo, or a
    config.json written by another version): a run never starts from a silently dropped key.
    The run's own fields (``kind``, ``bayesnas_version``) are checked and dropped."""
    kind = d.get("kind")
    if kind is not None and cls.kind and kind != cls.kind:
        raise ValueError(f"This config.json is of a {kind!r} run, not of a {cls.kind!r} run "
                         f"({cls.__name__}).")
    fields = {k: v for k, v in d.items() if k not in RUN_FIELDS}
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"Unknown config keys {unknown}. Known keys: {sorted(known)}.")
    return cls(**fields)


def write_config(run_dir: str | os.PathLike, config: RunConfig) -> None:
    """``run_dir/config.json``: the run's kind and library version, then the configuration."""
    write_json(Path(run_dir) / "config.json",
               {"kind": config.kind, "bayesnas_version": __version__, **config.to_dict()})


def start_run_dir(run_dir: str | os.PathLike, config: RunConfig, *, resume: bool, marker: str = "config.json",
                  write: bool = True) -> None:
    """The run directory at the start of a run: a new run is refused where one has started
    already (its ``marker`` file exists: a method's first checkpoint, or its config.json),
    then the directory is made and ``config.json`` written; a resumed run keeps its own.
    ``write=False`` (a data-parallel rank other than 0) only checks."""
    run_dir = Path(run_dir)
    if not resume and (run_dir / marker).exists():
        raise FileExistsError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                              "(resume=True) or choose another --out.")
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            write_config(run_dir, config)


def read_config(run_dir: str | os.PathLike, cls: type[C]) -> C:
    """The configuration saved in ``run_dir/config.json``, as ``cls``."""
    return config_from_dict(cls, read_json(Path(run_dir) / "config.json"))


def config_to_run(cls: type[C], config: C | None, *, out: str | os.PathLike, resume: bool, what: str) -> C:
    """The configuration a ``run_*`` entry point runs: the one saved in ``out/config.json`` when
    it resumes (the directory is the whole truth), else ``config``, which is then required."""
    if resume:
        return read_config(out, cls)
    if config is None:
        raise ValueError(f"{what} needs a config unless resume=True.")
    return config


def run_kind(config: Mapping[str, Any]) -> str:
    """The kind of the run whose ``config.json`` is ``config``: its ``"kind"``, or for a directory
    written before that field, the one method whose fields it has."""
    if "kind" in config:
        return str(config["kind"])
    for kind, fields in _LEGACY_SIGNATURES:
        if all(f in config for f in fields):
            return kind
    raise ValueError(f"config.json names no run kind, and its fields {sorted(config)} match none of "
                     f"{[k for k, _ in _LEGACY_SIGNATURES]}.")
