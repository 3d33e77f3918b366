"""Run infrastructure: the run directory and its files, the resumable epoch loop, named seed
streams, data-parallel processes, configuration checks and TensorBoard logs.

Nothing here knows a method or a search space: the methods (:mod:`bayesnas.methods`) build on
it, and the core (sites, guides, optimizers, losses, handlers) never imports it.
"""

from bayesnas.runs.config import (
    RunConfig,
    config_from_dict,
    config_to_run,
    read_config,
    run_kind,
    start_run_dir,
    write_config,
)
from bayesnas.runs.files import (
    MetricsLog,
    atomic_write_bytes,
    atomic_write_text,
    load_architecture,
    load_checkpoint,
    read_json,
    save_architecture,
    save_checkpoint,
    training_seconds,
    write_json,
)

__all__ = [
    "RunConfig",
    "read_config",
    "run_kind",
    "start_run_dir",
    "write_config",
    "MetricsLog",
    "atomic_write_bytes",
    "atomic_write_text",
    "config_from_dict",
    "config_to_run",
    "load_architecture",
    "load_checkpoint",
    "read_json",
    "save_architecture",
    "save_checkpoint",
    "training_seconds",
    "write_json",
]
