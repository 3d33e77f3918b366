"""nes2019 end to end: a search of ordered integer hyper-parameters under a budget, the
re-training of ⌊μ⌋ from scratch, and the uniform-rescale baselines at the same budget.

A run (:func:`bayesnas.methods.run` of a :class:`NesConfig`, resumable, everything under one directory):

1. **search** (nes2019 algorithm 1, :class:`~bayesnas.infer.NESArchitectureSearch`): the
   training images are split into a sub-train part (the weights) and a sub-evaluation part
   (H, §4.1); each outer iteration ("epoch" of ``search/metrics.jsonl``) trains the weights of
   the weight-sharing backbone (:mod:`bayesnas.nn.width_backbones`) for ``weight_steps``
   mini-batches under perturbed architectures ⌊H + n⌋ (eq. 8), then updates H ``arch_steps``
   times by NES over ``num_samples`` perturbations on sub-evaluation batches (eqs. 6–9), with
   the loss L = L_c + ρ (R/R_t − 1)² (eq. 2; R the multiply-accumulates, "FLOPs", or a
   latency table's sum, expressed in units of the budget R_t); σ and α decay linearly to 0
   (app. B). ``posterior_history.jsonl`` holds the Gaussian after every outer iteration;
2. **export**: ``mode.json``, the hyper-parameters ⌊μ⌋ (§4.1, "train the corresponding
   architecture from scratch"), and ``architecture.json``, the same with its channels
   rescaled by one multiplier to the budget where ⌊μ⌋ misses it by more than
   ``budget_tolerance`` (``fit_budget``, beyond the paper: :func:`fit_to_budget`);
3. **re-training** from scratch of ``architecture.json`` (a plain network,
   :meth:`WidthBackbone.build`) on all training images, scored on the test images;
4. **baselines**: the backbone scaled uniformly — every channel count by one multiplier
   ("channel"), the input resolution ("resolution"), or both by one multiplier
   ("channel+resolution") — to the resource closest to the same budget (the paper's
   "Uniform Rescale Baseline" rows of tables 1–2), re-trained alike.

``results.json`` gathers the test errors, resources (and their ratio to the budget) and
parameter counts of every arm, and the search time.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from bayesnas.analysis.diagnostics import diagnose_logged, warn_diagnostics
from bayesnas.analysis.history import HISTORY_FILE, PosteriorHistory
from bayesnas.data.tensors import TensorData, load_tensors
from bayesnas.infer.schedules import cosine_lr
from bayesnas.nn.width_backbones import BACKBONES
from bayesnas.runs import (
    RunConfig,
    distributed,
    read_json,
    start_run_dir,
    training_seconds,
    write_json,
)
from bayesnas.runs.checks import check_bools, check_integers, check_numbers
from bayesnas.runs.loop import run_epochs
from bayesnas.runs.seeds import stream, stream_seed
from bayesnas.runs.training import check_one_batch, error_on_tensors, train_epoch_on_tensors

__all__ = ["BACKBONES", "UNIFORM", "NesConfig", "NesRun", "fit_to_budget", "measure_latency_table",
           "uniform_architecture"]

RESOURCES = ("macs", "latency")
#: where the search's H starts: the 1× backbone, or its uniform channel scaling to the budget.
INITS = ("base", "uniform")
#: the uniform-rescale baselines (nes2019 tables 1–2).
UNIFORM = ("channel", "resolution", "channel+resolution")

# Streams of randomness, one per use.
(_INIT, _SPLIT, _WEIGHT_ORDER, _EVAL_ORDER, _ARCH, _RETRAIN_ORDER, _SUBSET, _RETRAIN_INIT) = range(8)
#: test images per forward pass of a re-trained network's test error.
_TEST_BATCH = 500


@dataclass
class NesConfig(RunConfig):
    """Everything a run depends on; written to ``config.json``.

    nes2019 app. B gives σ = 1.25 and α = 5, both decaying linearly to 0, M = 100
    perturbations, 20 H updates per outer iteration and 75 outer iterations on ImageNet; the
    defaults here are a CPU-sized version (M = 20, 5 H updates, 10 outer iterations) on the
    embedded digits. ``budget``: R_t as a fraction of the base (1×) architecture's resource.
    ``rho``: ρ of eq. (2) with R in units of R_t. ``eval_fraction``: the sub-evaluation part
    of the training images (§4.1 holds out 50 images per class of ImageNet). ``weight_steps``:
    weight mini-batches per outer iteration (``None``: one pass over the sub-train part).
    ``search_resolution`` / ``search_depth``: the dimensions searched besides the channels.
    ``uniform``: the uniform-rescale baselines re-trained beside the searched architecture.
    ``adapt_sigma``: beyond nes2019, learn σ² per hyper-parameter by its natural gradient
    (step ``sigma_lr``) instead of the linear schedule (:class:`~bayesnas.guides.GaussianGuide`).
    ``init``: where H starts — ``"base"``, the 1× backbone (nes2019 alg. 1 line 1), or
    ``"uniform"``, the backbone with every channel count scaled by one multiplier to the budget
    (the "channel" baseline), so that the search refines an architecture that already meets the
    budget instead of first descending from one several times over it.
    ``fit_budget``: beyond nes2019, export ⌊μ⌋ with its channels rescaled by one multiplier to
    the budget when it misses it by more than ``budget_tolerance`` (:func:`fit_to_budget`;
    ``mode.json`` keeps ⌊μ⌋ itself); ``False`` exports ⌊μ⌋ as the paper does.
    ``latency_table``: with ``resource="latency"``, a table written by
    :meth:`~bayesnas.resources.latency.LatencyTable.save` to price architectures with (e.g. one
    measured once for a whole study); ``None``: measured on the run's device at its start.
    """

    dataset: str = field(default="digits", kw_only=True)
    backbone: str = "mobilenetv2"
    width_mult: float = 0.5
    search_resolution: bool = False
    search_depth: bool = False
    resource: str = "macs"
    latency_table: str | None = None
    budget: float = 0.5
    rho: float = 20.0
    outer_iterations: int = 10
    weight_steps: int | None = None
    arch_steps: int = 5
    num_samples: int = 20
    sigma: float = 1.25
    adapt_sigma: bool = False
    init: str = "base"
    fit_budget: bool = True
    budget_tolerance: float = 0.05
    sigma_lr: float = 0.1
    arch_lr: float = 5.0
    eval_fraction: float = 0.2
    eval_batch_size: int = 256
    batch_size: int = 64
    weight_lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    retrain_epochs: int = 30
    retrain_lr: float = 0.05
    retrain_batch_size: int = 64
    uniform: tuple[str, ...] = UNIFORM
    max_train_images: int | None = None
    test_images: int | None = None

    kind: ClassVar[str] = "nes"

    def __post_init__(self) -> None:
        self.uniform = tuple(self.uniform)

    def validate(self) -> None:
        """Check every field; errors state the rule and the value."""
        super().validate()
        for name, allowed in (("backbone", BACKBONES), ("resource", RESOURCES), ("init", INITS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"`{name}` must be one of {list(allowed)}, but got "
                                 f"{name}={getattr(self, name)!r}.")
        unknown = [u for u in self.uniform if u not in UNIFORM]
        if unknown:
            raise ValueError(f"`uniform` takes baselines from {list(UNIFORM)}, but got {list(self.uniform)}.")
        check_integers(self, {"outer_iterations": 1, "arch_steps": 1, "num_samples": 1,
                              "eval_batch_size": 2, "batch_size": 2, "retrain_epochs": 1,
                              "retrain_batch_size": 2})
        check_integers(self, {"weight_steps": 1, "max_train_images": 1, "test_images": 1}, optional=True)
        check_bools(self, ("search_resolution", "search_depth", "adapt_sigma", "fit_budget"))
        check_numbers(self, positive=("width_mult", "budget", "budget_tolerance", "sigma", "sigma_lr",
                                      "weight_lr", "retrain_lr"),
                      nonnegative=("rho", "arch_lr", "momentum", "weight_decay"))
        if not 0 < self.eval_fraction < 1:
            raise ValueError(f"`eval_fraction` must lie in (0, 1), but got "
                             f"eval_fraction={self.eval_fraction!r}.")


def make_backbone(config: NesConfig, input_shape: tuple[int, ...], num_classes: int, *,
                  search_resolution: bool | None = None, search_depth: bool | None = None) -> Any:
    """The weight-sharing backbone of a run (freshly initialised from torch's global RNG)."""
    from bayesnas.nn.width_backbones import width_backbone

    return width_backbone(
        config.backbone, input_shape, num_classes, width_mult=config.width_mult,
        search_resolution=config.search_resolution if search_resolution is None else search_resolution,
        search_depth=config.search_depth if search_depth is None else search_depth)


def uniform_architecture(backbone: Any, kind: str, cost: Any, target: float, *,
                          start: Mapping[str, int] | None = None) -> dict[str, int]:
    """An architecture scaled uniformly to the resource closest to ``target``: every channel
    count by one multiplier m (``"channel"``), the resolution (``"resolution"``), or both by
    one multiplier (``"channel+resolution"``). ``start``: the architecture scaled (default: the
    backbone's base, depth full — the paper's uniform-rescale baselines); its depths, and its
    resolution when ``kind`` does not scale it, are kept. ``cost(hparams) -> float``. Among
    equally close candidates the larger network is taken. The backbone must search the
    resolution for the kinds that scale it."""
    if kind not in UNIFORM:
        raise ValueError(f"`kind` must be one of {list(UNIFORM)}, but got kind={kind!r}.")
    grids = backbone.hyperparameters()
    if "resolution" in kind and "resolution" not in grids:
        raise ValueError("A baseline that scales the resolution needs a backbone that searches it.")
    start = {name: g.base for name, g in grids.items()} if start is None else backbone.validate(dict(start))

    scaled = [name for name in grids if ("resolution" in kind if name == "resolution"
                                         else "channel" in kind and not name.endswith(".depth"))]
    # Every architecture of the family, exactly: snap(start · m) changes only where start · m
    # crosses a midpoint between two grid values, so one m between each pair of neighbouring
    # crossings (and one beyond either end) gives each distinct architecture once.
    crossings = sorted({(v + grids[n].step / 2) / start[n] for n in scaled for v in grids[n].values()[:-1]})
    ms = [crossings[0] / 2, *((a + b) / 2 for a, b in itertools.pairwise(crossings)), 2 * crossings[-1]] \
        if crossings else [1.0]
    candidates = [{n: grids[n].snap(start[n] * m) if n in scaled else start[n] for n in grids} for m in ms]
    return min(candidates, key=lambda h: (abs(cost(h) - target), -cost(h)))


def fit_to_budget(backbone: Any, hparams: Mapping[str, int], cost: Any, target: float, *,
                  tolerance: float) -> dict[str, int]:
    """``hparams`` when its resource lies within ``tolerance`` (a fraction) of ``target``;
    otherwise its channel counts scaled by the one multiplier that brings the resource closest
    to ``target`` — the searched allocation of channels and the depths kept — at its own
    resolution or, should the channels' grids not reach that far, at the nearest resolution
    where they do (the closest fit of all when none does). Beyond nes2019, whose soft penalty
    ρ(R − R_t)² of eq. (2) lands its table 2 rows within −7 %…+13 % of the budget; the uniform
    width multiplier that resizes a searched network to a budget is MorphNet's "expand" step
    (Gordon et al. 2018, algorithm 1, which takes the largest ω with F(ω · O) ≤ ζ; here the
    closest, as the uniform baselines are)."""
    hparams = backbone.validate(dict(hparams))

    def miss(h: Mapping[str, int]) -> float:
        return abs(cost(h) / target - 1)

    if miss(hparams) <= tolerance:
        return hparams
    grids = backbone.hyperparameters()
    resolutions = [None]
    if "resolution" in grids:
        own = hparams["resolution"]
        resolutions = sorted(grids["resolution"].values(), key=lambda r: (abs(r - own), -r))
    best = None
    for resolution in resolutions:
        start = hparams if resolution is None else {**hparams, "resolution": resolution}
        fitted = uniform_architecture(backbone, "channel", cost, target, start=start)
        if miss(fitted) <= tolerance:
            return fitted
        best = fitted if best is None or miss(fitted) < miss(best) else best
    return best


def measure_latency_table(backbone: Any, *, device: str | torch.device = "cpu", batch_size: int = 1) -> Any:
    """A :class:`~bayesnas.resources.latency.LatencyTable` measured on ``device`` at ``batch_size``
    for the layers of ``backbone``'s base, smallest and largest architectures (other layers
    are interpolated from these)."""
    from bayesnas.resources.latency import LatencyTable

    table = LatencyTable()
    for h in (backbone.base_hparams(), backbone.min_hparams(), backbone.max_hparams()):
        table.measure(backbone.layers(h), device=str(device), batch_size=batch_size)
    return table


class NesRun:
    """Builds the phases of a run from a :class:`NesConfig` (module docstring)."""

    def __init__(self, config: NesConfig, out: str | Path, *, data: TensorData | None = None) -> None:
        config.validate()
        self.config, self.out = config, Path(out)
        # Under torchrun: the global batches split over the processes, the losses of H's
        # perturbations and the weights' gradients averaged, files written by rank 0.
        self.dist, self.device = distributed.setup_run(
            config.device, (config.batch_size, config.eval_batch_size, config.retrain_batch_size))
        self.data = data if data is not None else load_tensors(config.dataset, data_dir=config.data_dir,
                                                               download=config.download)
        self.x_train, self.y_train, self.x_test, self.y_test = self.data.subset(
            max_train_images=config.max_train_images, test_images=config.test_images,
            train_generator=stream(0, _SUBSET, 1), test_generator=stream(0, _SUBSET, 2), device=self.device)
        n = len(self.x_train)
        n_eval = max(1, int(round(config.eval_fraction * n)))
        order = torch.randperm(n, generator=stream(config.seed, _SPLIT)).to(self.device)
        self.eval_index, self.train_index = order[:n_eval], order[n_eval:]
        if len(self.train_index) < config.batch_size:
            raise ValueError(f"The sub-train part ({len(self.train_index)} images) must hold one "
                             f"mini-batch, but got batch_size={config.batch_size}.")
        # The reference backbone prices architectures of every dimension (the baselines scale
        # the resolution even when the search does not).
        shape, k = self.data.input_shape, self.data.num_classes
        self.reference = make_backbone(config, shape, k, search_resolution=True, search_depth=True)
        self.base_cost = self.cost(self.reference.base_hparams(), self.reference)
        self.target = config.budget * self.base_cost

    # -- resources -----------------------------------------------------------------------------
    def cost(self, hparams: Mapping[str, int], backbone: Any) -> float:
        """The resource of an architecture: its multiply-accumulates (nes2019's "FLOPs") or its
        latency summed over the run's table."""
        from bayesnas.resources.flops import macs

        layers = backbone.layers(hparams)
        if self.config.resource == "macs":
            return float(macs(layers))
        return float(self.latency_table().total(layers))

    def latency_table(self) -> Any:
        """The run's latency table (``latency_table.json``), measured on the run's device at the
        first use for the layers of the base, smallest and largest architectures."""
        from bayesnas.resources.latency import LatencyTable

        cached = getattr(self, "_table", None)
        if cached is not None:
            return cached
        path = self.out / "latency_table.json"
        given = self.config.latency_table
        if given is not None and not Path(given).is_file():
            raise FileNotFoundError(f"`latency_table` must be a table written by LatencyTable.save, but got "
                                    f"latency_table={given!r}, which is not a file.")
        if not path.exists() and self.dist.is_main:  # one table for every rank: rank 0 measures
            table = (LatencyTable.load(given) if given is not None
                     else measure_latency_table(self.reference, device=self.device))
            table.save(path)  # the run's own copy, what its resources were priced with
        self.dist.barrier()
        table = LatencyTable.load(path)
        self._table = table
        return table

    # -- phase 1: search -------------------------------------------------------------------------
    def build_search(self) -> None:
        """The backbone, its space, the Gaussian guide at the base architecture and the driver."""
        from bayesnas.guides import GaussianGuide
        from bayesnas.infer.nes import NESArchitectureSearch, NESLoss
        from bayesnas.models.width_space import WidthSearchSpace
        from bayesnas.sites import discover_sites

        c, d = self.config, self.data
        torch.manual_seed(stream_seed(c.seed, _INIT))
        backbone = make_backbone(c, d.input_shape, d.num_classes).to(self.device)
        space = WidthSearchSpace(backbone)
        init = None
        if c.init == "uniform":
            start = uniform_architecture(self.reference, "channel",
                                         functools.partial(self.cost, backbone=self.reference), self.target)
            init = {name: start[name] for name in backbone.hyperparameters()}
        guide = GaussianGuide(discover_sites(space, self.x_train[:2]), init=init, sigma=c.sigma,
                              adapt_sigma=c.adapt_sigma).to(self.device)

        def resource(values: Mapping[str, torch.Tensor]) -> torch.Tensor:
            return torch.tensor([self.cost(a, backbone) / self.target for a in space.architectures(values)],
                                dtype=torch.get_default_dtype())

        loss = NESLoss(num_samples=c.num_samples, resource=resource, target=1.0, rho=c.rho,
                       reduce=self.dist.mean)
        weight_opt = torch.optim.SGD(backbone.parameters(), lr=c.weight_lr, momentum=c.momentum,
                                     weight_decay=c.weight_decay)
        (arch_opt,) = guide.make_optimizers(lr=c.arch_lr, sigma_lr=c.sigma_lr)
        self.backbone, self.space, self.guide = backbone, space, guide
        self.search = NESArchitectureSearch(
            space, guide, loss, weight_optimizer=weight_opt, arch_optimizer=arch_opt,
            generator=stream(c.seed, _ARCH), total_arch_steps=c.outer_iterations * c.arch_steps,
            sigma=c.sigma, lr=c.arch_lr, clip_norm=5.0, grad_reduce=self.dist.average_gradients)
        self.weight_steps = c.weight_steps or max(1, len(self.train_index) // c.batch_size)

    def _batches(self, index: torch.Tensor, size: int, stream_id: int, epoch: int, count: int) -> list:
        """``count`` mini-batches of ``size`` from ``index``, a fresh seeded order per pass."""
        generator = stream(self.config.seed, stream_id, epoch)
        order = torch.empty(0, dtype=torch.long)
        out = []
        for _ in range(count):
            if len(order) < size:
                order = torch.cat([order, torch.randperm(len(index), generator=generator)])
            rows, order = index[order[:size].to(self.device)], order[size:]
            out.append(self.dist.shard(self.x_train[rows], self.y_train[rows]))  # this rank's share
        return out

    def search_epoch(self, epoch: int) -> dict[str, Any]:
        """One outer iteration of alg. 1: the weights, then H."""
        c = self.config
        weights = self._batches(self.train_index, c.batch_size, _WEIGHT_ORDER, epoch, self.weight_steps)
        weight_losses = [self.search.weight_step(b) for b in weights]
        size = min(c.eval_batch_size, len(self.eval_index))
        rows = [self.search.arch_step(b) for b in self._batches(self.eval_index, size, _EVAL_ORDER, epoch,
                                                                c.arch_steps)]
        mode = {k: int(v) for k, v in self.guide.mode().items()}
        return {"iteration": (epoch + 1) * (self.weight_steps + c.arch_steps),
                "loss": sum(weight_losses) / len(weight_losses),
                "arch_loss": sum(float(r["loss"]) for r in rows) / len(rows),
                "baseline_loss": float(rows[-1]["baseline"]),
                "sigma": rows[-1]["sigma"], "lr": rows[-1]["lr"],
                "resource_ratio": self.cost(mode, self.backbone) / self.target}

    def run_search(self, *, progress: bool = True) -> dict[str, int]:
        """Phases 1–2: algorithm 1, then ``mode.json`` = ⌊μ⌋ and ``architecture.json`` = ⌊μ⌋
        fitted to the budget (``fit_budget``) or ⌊μ⌋ itself."""
        from bayesnas.sites import tensors_to_architecture

        self.build_search()
        history = PosteriorHistory(self.out / HISTORY_FILE)
        main = self.dist.is_main
        run_epochs(self.out / "search", self.config.outer_iterations, self.search_epoch,
                   self.search.state_dict, self.search.load_state_dict, progress=progress and main,
                   desc="search", history=history, posterior=self.guide, main=main)
        mode = tensors_to_architecture(self.guide.mode())  # the same on every rank
        arch = mode
        if self.config.fit_budget:
            arch = fit_to_budget(self.backbone, mode, functools.partial(self.cost, backbone=self.backbone),
                                 self.target, tolerance=self.config.budget_tolerance)
        if main:
            write_json(self.out / "posterior.json", self.guide.summary())
            write_json(self.out / "mode.json", mode)
            write_json(self.out / "architecture.json", arch)  # last: its presence marks the search done
        self.dist.barrier()
        return arch

    # -- phases 3-4: re-training ------------------------------------------------------------------
    def retrain(self, name: str, hparams: Mapping[str, int], backbone: Any, *,
                progress: bool = True) -> dict[str, Any]:
        """Re-train ``backbone.build(hparams)`` from scratch on all training images (SGD with
        momentum, cosine learning rate); score it on the test images."""
        c = self.config
        phase = self.out / f"retrain-{name}"
        done = phase / "result.json"
        if done.exists():
            return read_json(done)
        torch.manual_seed(stream_seed(c.seed, _RETRAIN_INIT))  # one initialisation seed for every arm
        net = backbone.build(dict(hparams)).to(self.device)
        trained = self.dist.wrap(net, self.device)  # DDP with several processes
        opt = torch.optim.SGD(net.parameters(), lr=c.retrain_lr, momentum=c.momentum,
                              weight_decay=c.weight_decay)
        n, bs = len(self.x_train), c.retrain_batch_size
        check_one_batch(n, bs)

        def run_epoch(epoch: int) -> dict[str, Any]:
            lr = cosine_lr(epoch, base=c.retrain_lr, epochs=c.retrain_epochs)
            for group in opt.param_groups:
                group["lr"] = lr
            order = torch.randperm(n, generator=stream(c.seed, _RETRAIN_ORDER, epoch)).to(self.device)
            net.train()
            loss = train_epoch_on_tensors(lambda x, y: F.cross_entropy(trained(x), y), opt, self.x_train,
                                          self.y_train, order=order, batch_size=bs, shard=self.dist.shard)
            return {"iteration": (epoch + 1) * (n // bs), "loss": loss, "lr": lr}

        def state() -> dict[str, Any]:
            return {"model": net.state_dict(), "optimizer": opt.state_dict()}

        def load(saved: dict[str, Any]) -> None:
            net.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])

        main = self.dist.is_main
        run_epochs(phase, c.retrain_epochs, run_epoch, state, load, progress=progress and main,
                   desc=f"re-train {name}", main=main)
        self.dist.barrier()  # rank 0's logs are complete
        error = error_on_tensors(net, self.x_test, self.y_test, batch_size=_TEST_BATCH)
        cost = self.cost(hparams, backbone)
        result = {"test_error": error, "test_accuracy": 1.0 - error, "hparams": dict(hparams),
                  "resource": cost, "resource_ratio": cost / self.target,
                  "num_params": sum(p.numel() for p in net.parameters()), "seconds": training_seconds(phase)}
        if main:
            write_json(done, result)
        return result

    def diagnostics(self) -> dict[str, Any]:
        """The run diagnostics of the search (:func:`~bayesnas.analysis.diagnostics.diagnose_logged`):
        its posterior's entropy per outer iteration from the history, against the weights' loss."""
        from bayesnas.runs import MetricsLog

        return diagnose_logged(MetricsLog(self.out / "search" / "metrics.jsonl").read(),
                               PosteriorHistory(self.out / HISTORY_FILE).posteriors(by="epoch"),
                               num_classes=self.data.num_classes, loss_key="loss")

    def run(self, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        """Every phase (finished ones are read back, not re-run); writes ``results.json``."""
        main = self.dist.is_main
        start_run_dir(self.out, self.config, resume=resume, write=False)  # every rank looks first
        self.dist.barrier()  # ... before rank 0 writes
        if main:
            start_run_dir(self.out, self.config, resume=resume)
        self.dist.barrier()
        c, d = self.config, self.data
        if (self.out / "architecture.json").exists():
            arch = read_json(self.out / "architecture.json")
        else:
            arch = self.run_search(progress=progress)
        searched_backbone = make_backbone(c, d.input_shape, d.num_classes)
        searched = self.retrain("searched", arch, searched_backbone, progress=progress)
        mode_path = self.out / "mode.json"  # absent in runs written before fit_budget existed
        mode = read_json(mode_path) if mode_path.exists() else arch
        mode_cost = self.cost(mode, searched_backbone)
        searched = {**searched, "mode_hparams": mode, "mode_resource": mode_cost,
                    "mode_resource_ratio": mode_cost / self.target, "fitted": mode != arch}
        uniform = {}
        for kind in c.uniform:
            path = self.out / f"uniform-{kind}.json"
            if path.exists():
                h = read_json(path)
            else:
                cost = functools.partial(self.cost, backbone=self.reference)
                h = uniform_architecture(self.reference, kind, cost, self.target)
                if main:
                    write_json(path, h)
            uniform[kind] = self.retrain(f"uniform-{kind}", h, self.reference, progress=progress)
        results = {
            "dataset": d.name, "backbone": c.backbone, "seed": c.seed, "resource": c.resource,
            "budget": c.budget, "base_resource": self.base_cost, "target_resource": self.target,
            "dimensions": ["channel", *(["resolution"] if c.search_resolution else []),
                           *(["depth"] if c.search_depth else [])],
            "train_images": len(self.x_train), "test_images": len(self.x_test),
            "searched": searched, "uniform": uniform, "search_seconds": training_seconds(self.out / "search"),
            "diagnostics": self.diagnostics(),
        }
        if main:
            write_json(self.out / "results.json", results)
            warn_diagnostics(results["diagnostics"])
        self.dist.barrier()
        return results

