"""A whole search run: data, model, guide, loss, optimizers, epochs, checkpoints, results.

The run directory holds ``config.json`` (the resolved configuration), ``metrics.jsonl`` (one
line per epoch: losses, errors, convergence statistics), ``posterior_history.jsonl`` (the
posterior after every epoch, epoch 0 included), ``checkpoint.pt`` (atomic, loaded with
``weights_only=True``), ``architecture.json`` (the most likely architecture),
``posterior.json`` (the guide's summary), ``credible_set.json`` (the most likely
architectures with their probabilities) and ``results.json`` (test metrics of the most likely
architecture and of the posterior average); ``bayesnas report`` turns it into a report.
``resume=True`` continues a killed run from its last epoch and reproduces the uninterrupted
run's θ trajectory exactly on CPU.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from tqdm.auto import tqdm

from bayesnas.analysis import Posterior, PosteriorHistory, convergence_stats, model_averaging
from bayesnas.analysis.calibration import classification_metrics
from bayesnas.analysis.diagnostics import clipped_sites, diagnose, warn_diagnostics
from bayesnas.analysis.history import HISTORY_FILE
from bayesnas.data import load_dataset
from bayesnas.data.batches import batches as _batches
from bayesnas.data.batches import cycle_batches, split_halves  # noqa: F401 - split_halves is public here too
from bayesnas.data.cutout import cutout
from bayesnas.families import FamilyOptions, NaturalGradientOptions, SiteSpec, families, get_family
from bayesnas.guides import FixedGuide, auto_guide, make_arch_optimizers
from bayesnas.guides.state import check_site_order
from bayesnas.infer import (
    AlternatingArchitectureSearch,
    ArchitectureSearch,
    ExpectedLoss,
    RankingNaturalGradientLoss,
    batchnorm_layers,
    predict_deterministic,
    recalibrated_batchnorm,
)
from bayesnas.infer.predict import error_rate
from bayesnas.models import get_space
from bayesnas.runs import (
    MetricsLog,
    RunConfig,
    distributed,
    save_architecture,
    start_run_dir,
    write_json,
)
from bayesnas.runs.checks import check_integers
from bayesnas.runs.loop import run_epochs
from bayesnas.sites import discover_sites, tensors_to_architecture

METHODS = ("search", "stochastic", "fixed")
LR_SCHEDULES = ("step", "cosine")


@dataclass
class SearchConfig(RunConfig):
    """Everything a run depends on; written to ``config.json``.

    ``method``: ``"search"`` learns θ (AdaptiveLayer of shirakawa2018), ``"stochastic"`` keeps
    θ = 0.5 (StochasticLayer; categorical choices uniform), ``"fixed"`` trains the network with
    every bit at ``fixed_value`` (1: every layer / unit / connection on, or ReLU; 0: tanh).
    ``batch_size`` is N, the mini-batch every sampled architecture sees (eq. 4); with
    ``same_batch=False`` it is cut into λ parts (eq. 5). ``theta_lr`` and ``theta_min`` replace
    the family's defaults for the θ step size (1/d) and the lower end of θ's range (1/d for
    bits: shirakawa2018 §2 keeps θ in [1/d, 1 − 1/d]). ``lr_schedule``: ``"step"`` divides the
    weight learning rate by 10 at 1/2 and 3/4 of the epochs (shirakawa2018, saito2018),
    ``"cosine"`` anneals it to 0 (pdas2019). ``alternate=True`` is pdas2019 alg. 1: the training
    data split into halves D_W / D_θ, W stepped on D_W, then θ on D_θ with the updated W
    (:class:`~bayesnas.infer.AlternatingArchitectureSearch`, whose gradient clipping is
    ``clip_norm``); an epoch is one pass over D_W. ``bn_recalibration_batches``: before the most
    likely architecture is evaluated, a network with BatchNorm recomputes its running
    statistics for that architecture on this many training mini-batches
    (:func:`~bayesnas.infer.recalibrated_batchnorm`; the model average keeps the statistics
    accumulated over the sampled architectures, and a ``fixed`` network its own); 0 evaluates
    the mode with those too.
    ``cutout``: the side of the square cut out of every training image of the weight steps
    (DeVries & Taylor 2017; pdas2019 uses 16 on CIFAR-10, on D_W only); 0 disables it.
    ``family_options``: per site family (:mod:`bayesnas.families`), the fields of its typed
    options (e.g. ``{"gaussian-integer": {"adapt_sigma": True, "lr": 1.0}}``); for the θ
    natural-gradient families they override ``adaptive``, ``num_samples``, ``theta_lr`` and
    ``theta_min``. ``split_seed``: the seed of the train / validation / test split (``None``: the
    run's ``seed``); a search judged against a ground-truth table (:mod:`bayesnas.bench`) uses
    the table's split, 0, so that it never trains on the images the table is tested on.
    """

    space: str = "layer-skip"
    method: str = "search"
    epochs: int = 30
    batch_size: int = 32
    num_samples: int = 2
    same_batch: bool = True
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    lr_schedule: str = "step"
    alternate: bool = False
    clip_norm: float | None = None
    bn_recalibration_batches: int = 20
    cutout: int = 0
    theta_init: float = 0.5
    theta_lr: float | None = None
    theta_min: float | None = None
    adaptive: bool = False
    penalty: float = 0.0
    stochastic_samples: int = 100
    val_fraction: float = 0.1
    split_seed: int | None = None
    space_options: dict[str, Any] = field(default_factory=dict)
    credible_set_size: int = 10
    fixed_value: int = 1
    tensorboard: bool = False
    family_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    kind: ClassVar[str] = "search"

    def validate(self) -> None:
        super().validate()
        get_space(self.space)
        check_integers(self, {"split_seed": 0}, optional=True)
        if self.method not in METHODS:
            raise ValueError(f"Unknown method {self.method!r}. Known methods: {', '.join(METHODS)}.")
        if self.cutout < 0:
            raise ValueError(f"`cutout` must be >= 0 (0: off), but got cutout={self.cutout}.")
        if self.bn_recalibration_batches < 0:
            raise ValueError(f"`bn_recalibration_batches` must be >= 0, but got "
                             f"bn_recalibration_batches={self.bn_recalibration_batches}.")
        for name in ("epochs", "batch_size", "num_samples", "stochastic_samples", "credible_set_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"`{name}` must be >= 1, but got {name}={getattr(self, name)}.")
        if self.method == "search" and self.num_samples < 2:
            raise ValueError(
                f"The ranking utility needs λ >= 2 samples, but got num_samples={self.num_samples}."
            )
        if self.lr <= 0:
            raise ValueError(f"`lr` must be positive, but got lr={self.lr}.")
        if self.fixed_value not in (0, 1):
            raise ValueError(
                f"`fixed_value` (every bit of the fixed network) must be 0 or 1, but got "
                f"fixed_value={self.fixed_value}."
            )
        if not 0.0 <= self.theta_init <= 1.0:
            raise ValueError(f"`theta_init` must lie in [0, 1], but got theta_init={self.theta_init}.")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"`lr_schedule` must be one of {LR_SCHEDULES}, but got "
                             f"lr_schedule={self.lr_schedule!r}.")
        if self.alternate and (self.method != "search" or not self.same_batch):
            raise ValueError(
                "`alternate` (pdas2019 alg. 1) updates θ on its own half of the data: it needs "
                f"method='search' and same_batch=True, but got method={self.method!r}, "
                f"same_batch={self.same_batch}.")
        if not isinstance(self.family_options, dict) or not all(
                isinstance(k, str) and isinstance(v, dict) for k, v in self.family_options.items()):
            raise ValueError("`family_options` must map family names to dicts of option fields, but got "
                             f"family_options={self.family_options!r}.")
        if self.clip_norm is not None and not self.alternate:
            raise ValueError(f"`clip_norm` is applied by the alternating search; set alternate=True "
                             f"or clip_norm=None (got clip_norm={self.clip_norm}).")


def family_options(config: SearchConfig, sites: Mapping[str, SiteSpec]) -> dict[str, FamilyOptions]:
    """The typed options of every family of the space's ``sites``: ``config.family_options``
    of that family over, for the θ natural-gradient families, the search's own flags
    (``adaptive``, λ = ``num_samples``, ``theta_lr``, ``theta_min``)."""
    present = [f for f in families() if any(s.family == f.name for s in sites.values())]
    names = [f.name for f in present]
    unknown = sorted(set(config.family_options) - set(names))
    if unknown:
        raise ValueError(f"`family_options` names {unknown}, but the space {config.space!r} has sites of the "
                         f"families {names} only.")
    out: dict[str, FamilyOptions] = {}
    for family in present:
        fields: dict[str, Any] = {}
        if issubclass(family.options, NaturalGradientOptions):
            fields["adaptive"] = config.adaptive
            if config.method == "search":  # λ sets the adaptive step's Tr(F Cov[Δθ]) (pdas2019 app. C)
                fields["num_samples"] = config.num_samples
            if config.theta_lr is not None:
                fields["lr"] = config.theta_lr
            if config.theta_min is not None:  # the family's optimizer checks its range
                fields["theta_min"] = config.theta_min
        fields.update(config.family_options.get(family.name, {}))
        try:
            out[family.name] = family.options(**fields)
        except TypeError as err:
            known = [f.name for f in dataclasses.fields(family.options)]
            raise ValueError(f"`family_options[{family.name!r}]` takes {known}, but got "
                             f"{sorted(config.family_options.get(family.name, {}))}.") from err
    return out


def _flat(x: torch.Tensor, flatten: bool) -> torch.Tensor:
    return x.flatten(1) if flatten else x


class SearchRun:
    """Builds every part of a run from a :class:`SearchConfig` and trains it epoch by epoch."""

    def __init__(self, config: SearchConfig, out: str | Path) -> None:
        config.validate()
        self.config = config
        self.out = Path(out)
        # Under torchrun: one process per device, the weights in DDP, losses averaged before
        # ranking, files written by rank 0 (bayesnas.runs.distributed).
        self.dist, self.device = distributed.setup_run(config.device, (config.batch_size,))
        if self.dist.distributed:
            if not config.same_batch:
                raise ValueError("Several processes share each global mini-batch (eq. 4); eq. (5)'s λ "
                                 "disjoint parts are not split across them: use same_batch=True, but got "
                                 "same_batch=False.")
        torch.manual_seed(config.seed)
        self.space = get_space(config.space)
        self.data = load_dataset(
            config.dataset,
            data_dir=config.data_dir,
            download=config.download,
            seed=config.seed if config.split_seed is None else config.split_seed,
            val_fraction=config.val_fraction,
            flatten=self.space.flatten_input,
        )
        info = self.data.info
        try:
            self.model = self.space.build(info.input_shape, info.num_classes, **config.space_options)
        except TypeError as err:  # an option the space does not have
            raise ValueError(
                f"The space {config.space!r} cannot be built with the options {config.space_options}: {err}"
            ) from err
        self.model.to(self.device)
        if config.cutout and self.space.flatten_input:
            raise ValueError(f"`cutout` needs image inputs, but the space {config.space!r} takes "
                             f"flattened vectors (got cutout={config.cutout}).")
        example = _flat(self.data.train[0][0].unsqueeze(0), self.space.flatten_input)
        self.sites = discover_sites(self.model, example.to(self.device))
        self.family_options = family_options(config, self.sites)
        self.guide = self._make_guide().to(self.device)
        self.loss = self._make_loss()
        if isinstance(self.loss, RankingNaturalGradientLoss) and self.dist.distributed:
            self.loss.reduce = self.dist.mean
        # The weights the search trains through (DDP with several processes); ``self.model``
        # stays the plain module for evaluation, checkpoints and the space's own methods.
        self.train_model = self.dist.wrap(self.model, self.device)
        self.weight_optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
        if config.lr_schedule == "cosine":  # pdas2019: from lr to 0 over the epochs
            self.scheduler: Any = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.weight_optimizer, T_max=config.epochs)
        else:  # shirakawa2018 / saito2018: divided by 10 at 1/2 and 3/4 of training
            self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
                self.weight_optimizer,
                milestones=[max(1, config.epochs // 2), max(1, (3 * config.epochs) // 4)],
                gamma=0.1,
            )
        self.arch_optimizers = make_arch_optimizers(self.guide, self.family_options)
        # Before any step (a resumed run rebuilds the guide at its start too): what the
        # diagnostics measure the posterior's movement from.
        self.initial_entropy = self.posterior().entropy()
        self.generator = torch.Generator().manual_seed(config.seed)
        self.train_halves = None
        if config.alternate:
            self.train_halves = split_halves(self.data.train, seed=config.seed)
            if len(self.train_halves[1]) < config.batch_size:
                raise ValueError(
                    f"Half of the training data (D_θ, {len(self.train_halves[1])} examples) must hold "
                    f"at least one mini-batch, but got batch_size={config.batch_size}.")
            self.search: Any = AlternatingArchitectureSearch(
                self.train_model, self.guide, self.loss, weight_optimizer=self.weight_optimizer,
                arch_optimizers=self.arch_optimizers, generator=self.generator,
                clip_norm=config.clip_norm)
        else:
            self.search = ArchitectureSearch(
                self.train_model,
                self.guide,
                self.loss,
                weight_optimizer=self.weight_optimizer,
                arch_optimizers=self.arch_optimizers,
                generator=self.generator,
            )
        self.epoch = 0
        self.history = PosteriorHistory(self.out / HISTORY_FILE)
        weight_data = self.data.train if self.train_halves is None else self.train_halves[0]
        self.steps_per_epoch = len(weight_data) // config.batch_size

    # -- construction -------------------------------------------------------------------
    def _make_guide(self) -> torch.nn.Module:
        method = self.config.method
        if method == "fixed":
            value = self.config.fixed_value
            arch = {n: torch.full(s.shape, value).long().tolist() for n, s in self.sites.items()}
            return FixedGuide(arch, self.sites)
        guide = auto_guide(sites=self.sites, options=self.family_options)
        # Bits start at θ_init (the stochastic baseline at 0.5); other families at uniform.
        theta_init = self.config.theta_init if method == "search" else 0.5
        with torch.no_grad():
            for g in getattr(guide, "guides", [guide]):
                if get_family(g.family).binary:
                    for theta in g.thetas:
                        theta.fill_(theta_init)
                if method == "stochastic":  # StochasticLayer / StochasticActivation: θ never moves
                    for theta in g.thetas:
                        theta.requires_grad_(False)
        return guide

    def _make_loss(self) -> ExpectedLoss:
        c = self.config
        if c.method != "search":
            return ExpectedLoss(num_samples=1)
        costs = None
        if c.penalty:
            if not hasattr(self.model, "complexity_costs"):
                raise ValueError(
                    f"`penalty` needs a space that defines complexity_costs(), but the space "
                    f"{c.space!r} does not; use penalty=0 with it (got penalty={c.penalty})."
                )
            costs = self.model.complexity_costs()
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
        check_site_order(self.guide, state["guide"])  # the optimizers' states are positional
        for opt, s in zip(self.arch_optimizers, state["arch_optimizers"], strict=True):
            opt.load_state_dict(s)
        self.generator.set_state(state["arch_generator"])
        torch.set_rng_state(state["torch_rng"])

    # -- evaluation ---------------------------------------------------------------------
    def _eval_batches(self, dataset: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in _batches(dataset, batch_size=500, seed=0, device=self.device, shuffle=False):
            yield _flat(x, self.space.flatten_input), y

    def _recalibrates(self) -> bool:
        # A fixed network's running statistics already belong to its one architecture.
        return bool(self.config.bn_recalibration_batches and self.config.method != "fixed"
                    and batchnorm_layers(self.model))

    @contextmanager
    def _evaluating(self, *, recalibrate: bool = True) -> Iterator[None]:
        """Eval mode; with ``recalibrate``, BatchNorm statistics recomputed for the most likely
        architecture (the running statistics otherwise, as the posterior average needs)."""
        c = self.config
        self.model.eval()
        try:
            if recalibrate and self._recalibrates():
                data = self.data.train if self.train_halves is None else self.train_halves[0]
                batches = _batches(data, batch_size=c.batch_size, seed=c.seed + 31_337,
                                   device=self.device, shuffle=True)
                inputs = (_flat(x, self.space.flatten_input)
                          for x, _ in itertools.islice(batches, c.bn_recalibration_batches))
                with recalibrated_batchnorm(self.model, self.guide.mode(), inputs):
                    yield
            else:
                yield
        finally:
            self.model.train()

    def _mode_scores(self, dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
        scores, labels = zip(
            *((predict_deterministic(self.model, self.guide, x).cpu(), y.cpu())
              for x, y in self._eval_batches(dataset)),
            strict=True,
        )
        return torch.cat(scores), torch.cat(labels)

    def errors(self, *splits: str) -> dict[str, float | None]:
        """Error of the most likely architecture on each split (``None`` for an empty one),
        under one BatchNorm recalibration."""
        datasets = {s: getattr(self.data, s) for s in splits}
        out: dict[str, float | None] = {s: None for s in splits}
        with self._evaluating():
            for split, dataset in datasets.items():
                if dataset is not None and len(dataset) > 0:
                    out[split] = error_rate(*self._mode_scores(dataset))
        return out

    def error(self, split: str) -> float | None:
        """Error of the most likely architecture on ``split`` (``None`` if the split is empty)."""
        return self.errors(split)[split]

    def averaged_metrics(self, split: str) -> dict[str, Any] | None:
        """Accuracy, NLL and ECE of the most likely architecture (BatchNorm recalibrated for it)
        and of the posterior average (with the running statistics of the sampled paths)."""
        dataset = getattr(self.data, split)
        if dataset is None or len(dataset) == 0:
            return None
        with self._evaluating(recalibrate=False):
            out = model_averaging(
                self.model, self.guide, self._eval_batches(dataset),
                num_samples=self.config.stochastic_samples,
                generator=torch.Generator().manual_seed(self.config.seed + 1),  # never moves θ's draws
            )
        if self._recalibrates():
            with self._evaluating():
                scores, labels = self._mode_scores(dataset)
            out["most_likely"] = classification_metrics(scores.softmax(-1), labels)
        return out

    def posterior(self) -> Posterior:
        return Posterior.from_guide(self.guide)

    def theta_stats(self, posterior: Posterior | None = None) -> dict[str, Any]:
        """Convergence of the posterior (bayesnas.analysis.convergence_stats), θ when small."""
        row = convergence_stats(posterior or self.posterior())
        if sum(p.numel() for p in self.guide.parameters()) <= 256:
            row["theta"] = {n: v["theta"] for n, v in self.guide.summary().items() if "theta" in v}
        row["theta_lr"] = [o.param_groups[0]["lr"] for o in self.arch_optimizers]
        return row

    def weight_usage(self) -> dict[str, float]:
        """saito2018's weight usage rate of the most likely architecture, and its expectation
        (a Monte-Carlo mean over 256 architectures drawn from the posterior, seeded), for a
        space that counts the weights an architecture uses (``num_weights_used(arch)``)."""
        count = getattr(self.model, "num_weights_used", None)
        if count is None:
            return {}
        total = float(sum(p.numel() for p in self.model.parameters()))
        post = self.posterior()
        draws = post.sample(256, generator=torch.Generator().manual_seed(self.config.seed))
        return {
            "weight_usage_rate": count(post.mode()) / total,
            "expected_weight_usage_rate": sum(count(a) for a in draws) / len(draws) / total,
        }

    # -- training -----------------------------------------------------------------------
    def train_epoch(self, progress: bool) -> float:
        c = self.config
        flat = self.space.flatten_input
        total, count = 0.0, 0
        seed = c.seed * 100_003 + self.epoch  # a fresh order per epoch, no state to save
        weight_data = self.data.train if self.train_halves is None else self.train_halves[0]
        batches = _batches(weight_data, batch_size=c.batch_size, seed=seed, device=self.device, shuffle=True)
        theta_batches = None if self.train_halves is None else cycle_batches(
            self.train_halves[1], batch_size=c.batch_size, seed=seed + 50_000, device=self.device)
        bar = tqdm(batches, total=self.steps_per_epoch, leave=False, disable=not progress,
                   desc=f"epoch {self.epoch + 1}")
        holes = torch.Generator().manual_seed(seed + 99_991)  # per epoch: a resumed run repeats
        for x, y in bar:
            if c.cutout:  # the weights' data only: θ is ranked on whole images
                x = cutout(x, c.cutout, generator=holes)  # on the global batch: any process count alike
            x, y = self.dist.shard(x, y)
            if theta_batches is None:
                metrics = self.search.step(_flat(x, flat), y)
            else:
                tx, ty = self.dist.shard(*next(theta_batches))
                metrics = self.search.step((_flat(x, flat), y), (_flat(tx, flat), ty))
            loss = float(self.dist.mean(metrics["loss"].detach()))
            if not math.isfinite(loss):
                raise FloatingPointError(f"The training loss became {loss} in epoch {self.epoch + 1}.")
            total += loss
            count += 1
        self.scheduler.step()
        return total / max(count, 1)

    def run(self, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        """Train the remaining epochs (:func:`~bayesnas.runs.loop.run_epochs`) and finish. With
        several processes every rank trains; rank 0 alone evaluates, logs, checkpoints and writes
        the results (the others return ``{}``)."""
        ckpt = self.out / "checkpoint.pt"
        main = self.dist.is_main
        if resume and not ckpt.exists():
            raise FileNotFoundError(f"No checkpoint at {ckpt}: nothing to resume.")
        start_run_dir(self.out, self.config, resume=resume, marker=ckpt.name, write=main)
        tensorboard: list[Any] = []  # opened at the first logged epoch: it purges what came after

        def run_epoch(epoch: int) -> dict[str, Any]:
            start = time.perf_counter()
            train_loss = self.train_epoch(progress and main)
            self.epoch = epoch + 1
            if not main:
                return {}
            return {"iteration": self.epoch * self.steps_per_epoch, "train_loss": train_loss,
                    "lr": self.weight_optimizer.param_groups[0]["lr"],
                    **{f"{k}_error": v for k, v in self.errors("val", "test").items()},
                    "seconds": time.perf_counter() - start, **self.theta_stats()}

        def log_tensorboard(row: dict[str, Any]) -> None:
            if not tensorboard:
                tensorboard.append(self._tensorboard())
            if tensorboard[0] is not None:
                tensorboard[0].log(row, self.posterior(), step=row["iteration"])

        c = self.config
        run_epochs(self.out, c.epochs, run_epoch, self.state_dict, self.load_state_dict,
                   progress=progress and main, desc=f"{c.space}/{c.method}", history=self.history,
                   posterior=self.guide, main=main, loss_key="train_loss", after_log=log_tensorboard)
        if tensorboard and tensorboard[0] is not None:
            tensorboard[0].close()
        results = self.finish() if main else {}
        self.dist.barrier()  # every process leaves once rank 0 has written the results
        return results

    def _tensorboard(self) -> Any:
        if not self.config.tensorboard:
            return None
        from bayesnas.runs.tensorboard import TensorBoardLog

        # Events past the checkpoint (a killed run's last epoch) are purged on resume; opened
        # after the first epoch since the checkpoint, whose events start at the purge step.
        first = (self.epoch - 1) * self.steps_per_epoch + 1
        return TensorBoardLog(self.out / "tensorboard", purge_step=first)

    def finish(self) -> dict[str, Any]:
        arch = tensors_to_architecture(self.guide.mode())
        save_architecture(arch, self.out / "architecture.json")
        genotype = getattr(self.model, "genotype", None)
        if genotype is not None:  # a space that names its choices (e.g. the cell space's JSON)
            write_json(self.out / "genotype.json", genotype(arch))
        write_json(self.out / "posterior.json", self.guide.summary())
        credible = self.posterior().credible_set(k=self.config.credible_set_size)
        write_json(self.out / "credible_set.json", [dataclasses.asdict(m) for m in credible])
        test = self.averaged_metrics("test")
        stats = {k: v for k, v in self.theta_stats().items() if k not in ("theta", "mean_max_prob_per_site")}
        results = {
            "epochs": self.epoch,
            "test_error_deterministic": test["most_likely"]["error"] if test else None,
            "test_error_stochastic": test["averaged"]["error"] if test else None,
            "test_most_likely": test["most_likely"] if test else None,
            "test_model_average": test["averaged"] if test else None,
            "val_error_deterministic": self.error("val"),
            "num_weights": sum(p.numel() for p in self.model.parameters()),
            "stochastic_samples": self.config.stochastic_samples,
            "mode_probability": credible[0].probability,
            **self.weight_usage(),
            **stats,
            "diagnostics": self.diagnostics(credible),
        }
        write_json(self.out / "results.json", results)
        warn_diagnostics(results["diagnostics"])
        return results

    def diagnostics(self, credible: Sequence[Any]) -> dict[str, Any] | None:
        """:func:`bayesnas.analysis.diagnostics.diagnose` of the finished search (``None`` for
        the fixed and stochastic baselines: their θ is not a search's answer)."""
        if self.config.method != "search":
            return None
        at_bound = clipped_sites(self.guide, self.arch_optimizers)
        return diagnose(history=MetricsLog(self.out / "metrics.jsonl").read(), posterior=self.posterior(),
                        credible=credible, num_classes=self.data.info.num_classes,
                        initial_entropy=self.initial_entropy, at_bound=at_bound or None)

