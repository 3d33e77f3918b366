"""A whole search run: data, model, guide, loss, optimizers, epochs, checkpoints, results.

The run directory holds ``config.json`` (the resolved configuration), ``metrics.jsonl`` (one
line per epoch), ``checkpoint.pt`` (atomic, loaded with ``weights_only=True``),
``architecture.json`` (the most likely architecture), ``posterior.json`` (θ per site) and
``results.json`` (test errors). ``resume=True`` continues a killed run from its last epoch and
reproduces the uninterrupted run's θ trajectory exactly on CPU.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bayesnas.data import as_tensors, load_dataset, make_loader
from bayesnas.guides import BernoulliGuide, FixedGuide, auto_guide
from bayesnas.infer import (
    ArchitectureSearch,
    ExpectedLoss,
    RankingNaturalGradientLoss,
    predict_deterministic,
    predict_stochastic,
)
from bayesnas.infer.predict import error_rate
from bayesnas.models import get_space
from bayesnas.runs import MetricsLog, load_checkpoint, read_json, save_checkpoint, write_json
from bayesnas.sites import discover_sites, save_architecture, tensors_to_architecture

METHODS = ("search", "stochastic", "fixed")


@dataclass
class SearchConfig:
    """Everything a run depends on; written to ``config.json``.

    ``method``: ``"search"`` learns θ (AdaptiveLayer of shirakawa2018), ``"stochastic"`` keeps
    θ = 0.5 (StochasticLayer), ``"fixed"`` trains the network with every bit on.
    ``batch_size`` is N, the mini-batch every sampled architecture sees (eq. 4); with
    ``same_batch=False`` it is cut into λ parts (eq. 5).
    """

    space: str = "layer-skip"
    dataset: str = "mnist5k"
    method: str = "search"
    epochs: int = 30
    seed: int = 0
    batch_size: int = 32
    num_samples: int = 2
    same_batch: bool = True
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    theta_init: float = 0.5
    theta_lr: float | None = None
    adaptive: bool = False
    penalty: float = 0.0
    stochastic_samples: int = 100
    device: str = "cpu"
    data_dir: str | None = None
    download: bool = False
    val_fraction: float = 0.1
    space_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        get_space(self.space)
        if self.method not in METHODS:
            raise ValueError(f"Unknown method {self.method!r}. Known methods: {', '.join(METHODS)}.")
        for name in ("epochs", "batch_size", "num_samples", "stochastic_samples"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"`{name}` must be >= 1, but got {name}={getattr(self, name)}.")
        if self.method == "search" and self.num_samples < 2:
            raise ValueError(
                f"The ranking utility needs λ >= 2 samples, but got num_samples={self.num_samples}."
            )
        if self.lr <= 0:
            raise ValueError(f"`lr` must be positive, but got lr={self.lr}.")
        if not 0.0 <= self.theta_init <= 1.0:
            raise ValueError(f"`theta_init` must lie in [0, 1], but got theta_init={self.theta_init}.")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"Unknown config keys {unknown}. Known keys: {sorted(known)}.")
        return cls(**d)


def _batches(
    dataset: Any, *, batch_size: int, seed: int, device: torch.device, shuffle: bool
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches on ``device``; whole-tensor indexing for in-memory datasets."""
    tensors = as_tensors(dataset)
    if tensors is not None:
        x, y = (t.to(device) for t in tensors)
        n = x.shape[0]
        order = (
            torch.randperm(n, generator=torch.Generator().manual_seed(seed))
            if shuffle
            else torch.arange(n)
        )
        stop = n - n % batch_size if shuffle else n  # drop the ragged last batch when training
        for i in range(0, stop, batch_size):
            idx = order[i : i + batch_size].to(device)
            yield x[idx], y[idx]
        return
    loader = make_loader(dataset, batch_size=batch_size, shuffle=shuffle, seed=seed, drop_last=shuffle)
    for x, y in loader:
        yield x.to(device), y.to(device)


def _flat(x: torch.Tensor, flatten: bool) -> torch.Tensor:
    return x.flatten(1) if flatten else x


class SearchRun:
    """Builds every part of a run from a :class:`SearchConfig` and trains it epoch by epoch."""

    def __init__(self, config: SearchConfig, out: str | Path) -> None:
        config.validate()
        self.config = config
        self.out = Path(out)
        self.device = torch.device(config.device)
        torch.manual_seed(config.seed)
        self.space = get_space(config.space)
        self.data = load_dataset(
            config.dataset,
            data_dir=config.data_dir,
            download=config.download,
            seed=config.seed,
            val_fraction=config.val_fraction,
            flatten=self.space.flatten_input,
        )
        info = self.data.info
        self.model = self.space.build(info.input_shape, info.num_classes, **config.space_options)
        self.model.to(self.device)
        example = _flat(self.data.train[0][0].unsqueeze(0), self.space.flatten_input)
        self.sites = discover_sites(self.model, example.to(self.device))
        self.guide = self._make_guide().to(self.device)
        self.loss = self._make_loss()
        self.weight_optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=True,
            weight_decay=config.weight_decay,
        )
        # The papers divide the learning rate by 10 at 1/2 and 3/4 of training.
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.weight_optimizer,
            milestones=[max(1, config.epochs // 2), max(1, (3 * config.epochs) // 4)],
            gamma=0.1,
        )
        arch_kwargs: dict[str, Any] = {"adaptive": config.adaptive}
        if config.theta_lr is not None:
            arch_kwargs["lr"] = config.theta_lr
        self.arch_optimizers = self.guide.make_optimizers(**arch_kwargs)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.search = ArchitectureSearch(
            self.model,
            self.guide,
            self.loss,
            weight_optimizer=self.weight_optimizer,
            arch_optimizers=self.arch_optimizers,
            generator=self.generator,
        )
        self.epoch = 0
        self.metrics = MetricsLog(self.out / "metrics.jsonl")

    # -- construction -------------------------------------------------------------------
    def _make_guide(self) -> torch.nn.Module:
        method = self.config.method
        if method == "search":
            bern = {n: self.config.theta_init for n, s in self.sites.items() if s.family == "bernoulli"}
            guide = auto_guide(sites=self.sites)
            for g in getattr(guide, "guides", [guide]):
                if isinstance(g, BernoulliGuide):
                    with torch.no_grad():
                        for name in g.site_names:
                            g.theta(name).fill_(bern[name])
            return guide
        if method == "stochastic":
            if any(s.family != "bernoulli" for s in self.sites.values()):
                raise ValueError("The stochastic baseline (θ fixed at 0.5) is for Bernoulli spaces.")
            return BernoulliGuide(self.sites, init=0.5, learnable=False)
        ones = {n: torch.ones(s.shape).long().tolist() for n, s in self.sites.items()}
        return FixedGuide(ones, self.sites)

    def _make_loss(self) -> ExpectedLoss:
        c = self.config
        if c.method != "search":
            return ExpectedLoss(num_samples=1)
        costs = self.model.complexity_costs() if c.penalty else None
        return RankingNaturalGradientLoss(
            num_samples=c.num_samples, same_batch=c.same_batch, penalty=c.penalty, costs=costs
        )

    # -- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "guide": self.guide.state_dict(),
            "weight_optimizer": self.weight_optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "arch_optimizers": [o.state_dict() for o in self.arch_optimizers],
            "arch_generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.model.load_state_dict(state["model"])
        self.guide.load_state_dict(state["guide"])
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for opt, s in zip(self.arch_optimizers, state["arch_optimizers"], strict=True):
            opt.load_state_dict(s)
        self.generator.set_state(state["arch_generator"])
        torch.set_rng_state(state["torch_rng"])

    # -- evaluation ---------------------------------------------------------------------
    def _scores(self, dataset: Any, *, stochastic: bool) -> tuple[torch.Tensor, torch.Tensor]:
        self.model.eval()
        scores, labels = [], []
        gen = torch.Generator().manual_seed(self.config.seed + 1)  # evaluation never moves θ's
        for x, y in _batches(dataset, batch_size=500, seed=0, device=self.device, shuffle=False):
            x = _flat(x, self.space.flatten_input)
            if stochastic:
                s = predict_stochastic(
                    self.model, self.guide, x, num_samples=self.config.stochastic_samples, generator=gen
                )
            else:
                s = predict_deterministic(self.model, self.guide, x)
            scores.append(s.cpu())
            labels.append(y.cpu())
        self.model.train()
        return torch.cat(scores), torch.cat(labels)

    def error(self, split: str, *, stochastic: bool = False) -> float | None:
        dataset = getattr(self.data, split)
        if dataset is None or len(dataset) == 0:
            return None
        return error_rate(*self._scores(dataset, stochastic=stochastic))

    def theta_stats(self) -> dict[str, Any]:
        thetas = [p.detach() for p in self.guide.parameters()]
        row: dict[str, Any] = {"entropy": float(self.guide.entropy())}
        bern = [t for g in getattr(self.guide, "guides", [self.guide]) if isinstance(g, BernoulliGuide)
                for t in g.thetas]
        if bern:
            row["expected_active_bits"] = float(sum(t.detach().sum() for t in bern))
        if thetas and sum(t.numel() for t in thetas) <= 256:
            row["theta"] = {n: v["theta"] for n, v in self.guide.summary().items()}
        row["theta_lr"] = [o.param_groups[0]["lr"] for o in self.arch_optimizers]
        return row

    # -- training -----------------------------------------------------------------------
    def train_epoch(self, progress: bool) -> float:
        c = self.config
        flat = self.space.flatten_input
        total, count = 0.0, 0
        batches = _batches(
            self.data.train,
            batch_size=c.batch_size,
            seed=c.seed * 100_003 + self.epoch,  # a fresh order per epoch, no state to save
            device=self.device,
            shuffle=True,
        )
        steps = len(self.data.train) // c.batch_size
        bar = tqdm(batches, total=steps, leave=False, disable=not progress, desc=f"epoch {self.epoch + 1}")
        for x, y in bar:
            metrics = self.search.step(_flat(x, flat), y)
            loss = float(metrics["loss"])
            if not math.isfinite(loss):
                raise FloatingPointError(f"The training loss became {loss} in epoch {self.epoch + 1}.")
            total += loss
            count += 1
        self.scheduler.step()
        return total / max(count, 1)

    def run(self, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        ckpt = self.out / "checkpoint.pt"
        if resume:
            self.load_state_dict(load_checkpoint(ckpt))
            self.metrics.truncate_after(self.epoch)
        else:
            if ckpt.exists():
                raise FileExistsError(
                    f"{self.out} already holds a run; continue it with --resume {self.out} "
                    "or choose another --out."
                )
            self.out.mkdir(parents=True, exist_ok=True)
            write_json(self.out / "config.json", dataclasses.asdict(self.config))
            self.metrics.truncate_after(0)
        c = self.config
        epochs = tqdm(range(self.epoch, c.epochs), total=c.epochs, initial=self.epoch,
                      disable=not progress, desc=f"{c.space}/{c.method}")
        for _ in epochs:
            start = time.perf_counter()
            train_loss = self.train_epoch(progress)
            self.epoch += 1
            row = {
                "epoch": self.epoch,
                "train_loss": train_loss,
                "lr": self.weight_optimizer.param_groups[0]["lr"],
                "val_error": self.error("val"),
                "test_error": self.error("test"),
                "seconds": time.perf_counter() - start,
                **self.theta_stats(),
            }
            self.metrics.append(row)
            save_checkpoint(ckpt, self.state_dict())
            epochs.set_postfix(loss=f"{train_loss:.3f}", test_err=f"{row['test_error']:.4f}")
        return self.finish()

    def finish(self) -> dict[str, Any]:
        arch = tensors_to_architecture(self.guide.mode())
        save_architecture(arch, self.out / "architecture.json")
        write_json(self.out / "posterior.json", self.guide.summary())
        results = {
            "epochs": self.epoch,
            "test_error_deterministic": self.error("test"),
            "test_error_stochastic": self.error("test", stochastic=True),
            "val_error_deterministic": self.error("val"),
            "num_weights": sum(p.numel() for p in self.model.parameters()),
            "stochastic_samples": self.config.stochastic_samples,
            **{k: v for k, v in self.theta_stats().items() if k != "theta"},
        }
        write_json(self.out / "results.json", results)
        return results


def run_search(
    config: SearchConfig | None = None,
    *,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or with ``resume=True`` continue) a search into ``out``; returns the results."""
    out = Path(out)
    if resume:
        saved = SearchConfig.from_dict(read_json(out / "config.json"))
        return SearchRun(saved, out).run(resume=True, progress=progress)
    if config is None:
        raise ValueError("run_search needs a config unless resume=True.")
    return SearchRun(config, out).run(progress=progress)
