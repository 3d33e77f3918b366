"""Re-train an exported cell architecture from its JSON alone (pdas2019 §4.1, re-training).

The run directory holds ``config.json`` (the genotype itself included, so the directory is
self-contained), ``metrics.jsonl`` (one line per epoch), ``checkpoint.pt`` (atomic; a killed
run continues with ``resume=True`` and repeats the uninterrupted run exactly on CPU),
``model.pt`` (the trained ``state_dict``: rebuild with
``CellNetwork(genotype=..., **options)``) and ``results.json`` (test error, parameter count).

The paper's settings are the defaults where they do not depend on the data's size: SGD with
momentum 0.9, learning rate 0.025 → 0 on a cosine schedule, weight decay 3·10⁻⁴, gradient
norm clipped at 5, mini-batch 80, BatchNorm with affine parameters, ScheduledDropPath rising
linearly from 0 to 0.3, an auxiliary classifier on the second reduction cell weighted 0.4.
The paper trains N = 6 cells per stage for 600 epochs on CIFAR-10 with ~3 M weights; the
defaults here are CPU-sized and every one of those is an option.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from bayesnas.data import load_dataset
from bayesnas.data.batches import batches
from bayesnas.data.cutout import cutout
from bayesnas.infer.predict import error_rate
from bayesnas.nn.cell_network import CellNetwork, decode_genotype
from bayesnas.runs import (
    RunConfig,
    read_json,
    save_checkpoint,
    start_run_dir,
    training_seconds,
    write_json,
)
from bayesnas.runs.loop import run_epochs


@dataclass
class RetrainConfig(RunConfig):
    """Everything a re-training run depends on; written to ``config.json``.

    ``genotype``: the JSON genotype (:mod:`bayesnas.nn.cell_network`). ``channels`` and
    ``normal_cells`` are C and N of the re-trained network (pdas2019: N = 6, C chosen for
    ~3 M weights). ``drop_path``: the final ScheduledDropPath rate, reached linearly over the
    epochs. ``auxiliary_weight``: the auxiliary classifier's share of the loss (0: no head).
    ``cutout``: side of the square cut from every training image (0: off; pdas2019 uses 16
    on 32×32 CIFAR-10).
    """

    genotype: dict[str, Any]
    channels: int = 16
    normal_cells: int = 2
    epochs: int = 30
    batch_size: int = 80
    lr: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 3e-4
    clip_norm: float = 5.0
    drop_path: float = 0.3
    auxiliary_weight: float = 0.4
    cutout: int = 0
    val_fraction: float = 0.1

    kind: ClassVar[str] = "retrain"

    def validate(self) -> None:
        super().validate()
        decode_genotype(self.genotype)
        for name in ("channels", "normal_cells", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, but got {name}={value!r}.")
        for name in ("lr", "clip_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be positive, but got {name}={getattr(self, name)}.")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"`drop_path` must lie in [0, 1), but got drop_path={self.drop_path}.")
        if self.auxiliary_weight < 0:
            raise ValueError(
                f"`auxiliary_weight` must be >= 0, but got auxiliary_weight={self.auxiliary_weight}.")
        if self.cutout < 0:
            raise ValueError(f"`cutout` must be >= 0 (0: off), but got cutout={self.cutout}.")



def load_genotype(path: str | Path) -> dict[str, Any]:
    """The genotype in ``path``: a ``genotype.json`` file, or a search run directory holding one."""
    path = Path(path)
    if path.is_dir():
        path = path / "genotype.json"
    if not path.exists():
        raise FileNotFoundError(f"No genotype at {path}: pass a genotype.json or a run directory of "
                                "`bayesnas search enas-cells`.")
    genotype = read_json(path)
    decode_genotype(genotype)
    return genotype


class RetrainRun:
    """Builds the fixed network of a genotype and trains it epoch by epoch."""

    def __init__(self, config: RetrainConfig, out: str | Path) -> None:
        config.validate()
        self.config = config
        self.out = Path(out)
        self.device = torch.device(config.device)
        torch.manual_seed(config.seed)
        self.data = load_dataset(config.dataset, data_dir=config.data_dir, download=config.download,
                                 seed=config.seed, val_fraction=config.val_fraction)
        info = self.data.info
        if len(info.input_shape) != 3:
            raise ValueError(f"A cell network takes images (C, H, W), but {config.dataset!r} gives "
                             f"{info.input_shape}.")
        self.net = CellNetwork(
            in_channels=info.input_shape[0], num_classes=info.num_classes, channels=config.channels,
            normal_cells=config.normal_cells, num_nodes=len(config.genotype["normal"]),
            genotype=config.genotype, affine=True, auxiliary=config.auxiliary_weight > 0,
        ).to(self.device)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=config.epochs)
        self.epoch = 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])

    @torch.no_grad()
    def error(self, split: str) -> float | None:
        dataset = getattr(self.data, split)
        if dataset is None or len(dataset) == 0:
            return None
        self.net.eval()
        try:
            scores, labels = zip(*((self.net(x).cpu(), y.cpu()) for x, y in batches(
                dataset, batch_size=500, seed=0, device=self.device, shuffle=False)), strict=True)
        finally:
            self.net.train()
        return error_rate(torch.cat(scores), torch.cat(labels))

    def train_epoch(self, progress: bool) -> float:
        c = self.config
        # ScheduledDropPath: 0 in the first epoch, rising linearly towards c.drop_path.
        self.net.drop_path_prob = c.drop_path * self.epoch / c.epochs
        seed = c.seed * 100_003 + self.epoch  # a fresh order per epoch, no state to save
        holes = torch.Generator().manual_seed(seed + 99_991)
        total, count = 0.0, 0
        steps = len(self.data.train) // c.batch_size
        for x, y in tqdm(batches(self.data.train, batch_size=c.batch_size, seed=seed, device=self.device,
                                 shuffle=True), total=steps, leave=False, disable=not progress,
                         desc=f"epoch {self.epoch + 1}"):
            if c.cutout:
                x = cutout(x, c.cutout, generator=holes)
            logits, aux = self.net.forward_with_auxiliary(x)
            loss = F.cross_entropy(logits, y)
            if aux is not None:
                loss = loss + c.auxiliary_weight * F.cross_entropy(aux, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), c.clip_norm)
            self.optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"The training loss became {value} in epoch {self.epoch + 1}.")
            total, count = total + value, count + 1
        self.scheduler.step()
        return total / max(count, 1)

    def run(self, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        """Train the remaining epochs (:func:`~bayesnas.runs.loop.run_epochs`) and finish."""
        ckpt = self.out / "checkpoint.pt"
        if resume and not ckpt.exists():
            raise FileNotFoundError(f"No checkpoint at {ckpt}: nothing to resume.")
        start_run_dir(self.out, self.config, resume=resume, marker=ckpt.name)
        if not resume:
            write_json(self.out / "genotype.json", self.config.genotype)

        def run_epoch(epoch: int) -> dict[str, Any]:
            train_loss = self.train_epoch(progress)
            self.epoch = epoch + 1
            return {"train_loss": train_loss, "lr": self.optimizer.param_groups[0]["lr"],
                    "drop_path": self.net.drop_path_prob, "val_error": self.error("val"),
                    "test_error": self.error("test")}

        run_epochs(self.out, self.config.epochs, run_epoch, self.state_dict, self.load_state_dict,
                   progress=progress, desc="retrain", loss_key="train_loss")
        return self.finish()

    def finish(self) -> dict[str, Any]:
        save_checkpoint(self.out / "model.pt", self.net.state_dict())
        results = {
            "epochs": self.epoch,
            "test_error": self.error("test"),
            "val_error": self.error("val"),
            "num_parameters": self.net.num_parameters(),
            "num_parameters_with_auxiliary": self.net.num_parameters(auxiliary=True),
            "seconds": training_seconds(self.out),
        }
        write_json(self.out / "results.json", results)
        return results

