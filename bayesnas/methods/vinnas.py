"""The MNIST experiment of vinnas2020 §V (table II): search, export by SNR and by magnitude,
re-train, and compare with a random cell.

:func:`bayesnas.methods.run` of a :class:`VinnasConfig` (a :class:`VinnasRun`) does, in ``out``:

1. **search** (``search/``): vinnas2020 alg. 1 on :class:`~bayesnas.models.VinnasSearchSpace`
   (layout ``M``: one reduction cell of I = 2 states, §V-A) with Bayesian weights under the
   local reparameterization trick (eq. 4–5, ``bayesian=True``), driven by
   :class:`~bayesnas.infer.variational.VariationalArchitectureSearch`: a part of the training
   images (§V-A: "25 % — M") cut into halves D_w / D_α (:func:`~bayesnas.data.batches.split_halves`),
   ``warmup_epochs`` weight-only epochs (alg. 1 line 10), γ₁, γ₂, γ₃ ramped linearly from the end
   of the warm-up (alg. 1 line 19), Adam for both, cosine learning rate of the weights, a
   constant one for α, label smoothing (§V-A "Search Settings"). After every epoch the
   deterministic network at the guide means (:func:`~bayesnas.handlers.local_reparameterization`
   with ``deterministic=True``, §IV-B) is scored on D_α and the α of the lowest error kept
   (alg. 1 lines 15–17); metrics go to ``search/metrics.jsonl``, the α posterior to
   ``posterior_history.jsonl`` (``bayesnas report`` draws its trajectories);
2. **export** of ``genotype_snr.json`` (positive SNR μ/σ², §IV-C) and ``genotype_magnitude.json``
   (the means μ, "Magnitude" in table II) from the kept α, with ``posterior.json``;
3. **re-training** (``retrain-snr/``, ``retrain-magnitude/``) of the
   :class:`~bayesnas.nn.vinnas_cells.VinnasNetwork` built from each JSON file alone, freshly
   initialised (the same initialisation seed for every arm, so identical genotypes give identical
   results), on all training images: Adam with a cosine learning rate and label smoothing
   (§V-A "Evaluation Settings"); deterministic weights and the plain parameter count
   (``num_params``) by default, or, with ``retrain_bayesian``, Bayesian weights under the LRT
   with γ₁ ramped up (as the paper re-trains), scored at the means after pruning log α ≥ 3, with
   the non-zero parameters left (``nonzero_params``, table II's count);
4. the **random baseline** of table II (``retrain-random{r}/``): cells drawn uniformly from the
   same space (two different incoming edges per state, non-zero ops), re-trained alike;
5. ``results.json``: test error / accuracy and parameters of every re-trained network, the
   genotypes, the kept epoch and its validation error, and the search time.

Every phase checkpoints atomically after every epoch; ``resume=True`` continues a killed run and,
on the CPU, repeats the uninterrupted run exactly: the data order of an epoch is a function of
(``seed``, epoch), Pyro's draws come from torch's global generator, whose state the checkpoint
holds (:meth:`VariationalArchitectureSearch.state_dict`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pyro import poutine

from bayesnas.analysis.diagnostics import diagnose_logged, warn_diagnostics
from bayesnas.analysis.history import HISTORY_FILE, PosteriorHistory
from bayesnas.data.tensors import TensorData, load_tensors
from bayesnas.methods import run, run_resumably
from bayesnas.runs import (
    RunConfig,
    distributed,
    read_config,
    read_json,
    start_run_dir,
    training_seconds,
    write_config,
    write_json,
)
from bayesnas.runs.checks import check_integers
from bayesnas.runs.loop import run_epochs
from bayesnas.runs.seeds import stream, stream_seed
from bayesnas.runs.training import check_one_batch, error_on_tensors, train_epoch_on_tensors

__all__ = ["VinnasConfig", "VinnasData", "VinnasRun", "load_data", "random_genotype",
           "run_vinnas_resumably"]

#: the exported genotypes: criterion of :meth:`VinnasSearchSpace.genotype` → file stem.
SELECTIONS = {"snr": "snr", "mean": "magnitude"}


_seed, _generator = stream_seed, stream


# Streams of randomness, one per use, so that no use shifts another's draws.
(_INIT, _ARCH_INIT, _W_ORDER, _A_ORDER, _RETRAIN_ORDER, _RANDOM_ARCH, _SUBSET) = range(7)


@dataclass
class VinnasConfig(RunConfig):
    """Everything a run depends on; written to ``config.json``.

    The defaults follow vinnas2020 §V-A for MNIST where the paper gives a value (layout ``M``,
    search on 25 % of the training data, half of it for α, 20 search epochs, Adam, cosine,
    label smoothing, log σ² initialised at −10, 100 re-training epochs); where it gives none
    they are stated here: batch size 64, 5 warm-up ("weight") epochs, γ₁ = γ₂ = γ₃ = 1 at the end
    of their ramps (per datum: the loss is eq. 8 divided by |D_w|, see
    :class:`~bayesnas.infer.variational.VariationalSearchELBO`), ε = 0.1, learning rates 1e-3
    (weights, Adam's default) and 3e-4 (α, DARTS'), C = 16 (≈ 0.01 M parameters, table II).

    ``search_fraction``: the fraction of the training images searched on (halved into D_w / D_α).
    ``gamma_start`` / ``gamma_end``: the epochs of the γ ramps (default: from the end of the
    warm-up to the last epoch). ``retrain_channels`` / ``retrain_cells``: the evaluation network
    (default: the search's; vinnas2020 scales up F and C). ``random_architectures``: how many
    uniformly drawn cells are re-trained beside the two selections. ``retrain_bayesian``: re-train
    q(w) under the log-uniform prior with the LRT, γ₁ ramped linearly from 0 to
    ``retrain_gamma_weights`` over the first half of the epochs (§V-A "Evaluation Settings"), and
    score the network at the means after pruning log α ≥ 3, counting the non-zero parameters as
    table II does. ``test_images`` /
    ``max_train_images``: a fixed random subset of so many test / training images (``None``: all).
    """

    layout: str = "M"
    channels: int = 16
    bayesian: bool = True
    search_fraction: float = 0.25
    batch_size: int = 64
    epochs: int = 20
    warmup_epochs: int = 5
    gamma_weights: float = 1.0
    gamma_arch: float = 1.0
    gamma_entropy: float = 1.0
    gamma_start: int | None = None
    gamma_end: int | None = None
    weight_lr: float = 1e-3
    min_weight_lr: float = 0.0
    arch_lr: float = 3e-4
    label_smoothing: float = 0.1
    clip_norm: float | None = 5.0
    retrain_epochs: int = 100
    retrain_lr: float = 1e-3
    retrain_batch_size: int = 64
    retrain_channels: int | None = None
    retrain_cells: str | None = None
    retrain_bayesian: bool = False
    retrain_gamma_weights: float = 1.0
    random_architectures: int = 1
    max_train_images: int | None = None
    test_images: int | None = None
    eval_batch_size: int = 500

    kind: ClassVar[str] = "vinnas"

    def validate(self) -> None:
        """Check every field; errors state the rule and the value."""
        super().validate()
        from bayesnas.nn.vinnas_cells import LAYOUTS, parse_cells

        if self.layout not in LAYOUTS:
            raise ValueError(f"`layout` must be one of {sorted(LAYOUTS)} (vinnas2020 §V-A), but got "
                             f"layout={self.layout!r}.")
        check_integers(self, {"channels": 2, "batch_size": 1, "epochs": 1, "warmup_epochs": 0,
                              "retrain_epochs": 1, "retrain_batch_size": 1, "random_architectures": 0,
                              "eval_batch_size": 1})
        check_integers(self, {"gamma_start": 0, "gamma_end": 0, "retrain_channels": 2, "max_train_images": 2,
                              "test_images": 1}, optional=True)
        if self.warmup_epochs >= self.epochs:
            raise ValueError("The α steps need epochs after the warm-up: `warmup_epochs < epochs` must "
                             f"hold, but got (warmup_epochs={self.warmup_epochs}, epochs={self.epochs}).")
        start, end = self.gamma_ramp
        if not start <= end <= self.epochs:
            raise ValueError("`gamma_start <= gamma_end <= epochs` must hold, but got "
                             f"(gamma_start={start}, gamma_end={end}, epochs={self.epochs}).")
        if not isinstance(self.bayesian, bool) or not self.bayesian:
            # The driver trains q(w) (vinnas2020 eq. 5); deterministic weights are not wired here.
            raise ValueError(f"`bayesian` must be True (the search trains q(w), vinnas2020 eq. 5), but got "
                             f"bayesian={self.bayesian!r}.")
        if not (isinstance(self.search_fraction, int | float) and 0 < self.search_fraction <= 1):
            raise ValueError(f"`search_fraction` must lie in (0, 1], but got "
                             f"search_fraction={self.search_fraction!r}.")
        if not isinstance(self.retrain_bayesian, bool):
            raise ValueError(f"`retrain_bayesian` must be True or False, but got "
                             f"retrain_bayesian={self.retrain_bayesian!r}.")
        for name in ("gamma_weights", "gamma_arch", "gamma_entropy", "min_weight_lr",
                     "retrain_gamma_weights"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                    math.isfinite(value) and value >= 0):
                raise ValueError(f"`{name}` must be a finite number >= 0, but got {name}={value!r}.")
        for name in ("weight_lr", "arch_lr", "retrain_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                    math.isfinite(value) and value > 0):
                raise ValueError(f"`{name}` must be a positive finite number, but got {name}={value!r}.")
        clip = self.clip_norm
        if clip is not None and not (isinstance(clip, int | float) and clip > 0):
            raise ValueError(f"`clip_norm` must be None or positive, but got clip_norm={self.clip_norm!r}.")
        if not (isinstance(self.label_smoothing, int | float) and 0 <= self.label_smoothing < 1):
            raise ValueError(f"`label_smoothing` must lie in [0, 1), but got "
                             f"label_smoothing={self.label_smoothing!r}.")
        if self.retrain_cells is not None:
            parse_cells(self.retrain_cells)

    @property
    def gamma_ramp(self) -> tuple[int, int]:
        """(first, last) epoch of the γ ramps."""
        start = self.warmup_epochs if self.gamma_start is None else self.gamma_start
        end = self.epochs if self.gamma_end is None else self.gamma_end
        return start, end



# -- data --------------------------------------------------------------------------------------
#: the data a run trains on (now shared with the other drivers).
VinnasData = TensorData
load_data = load_tensors


def random_genotype(*, kinds: tuple[str, ...], num_states: int, generator: torch.Generator) -> dict[str, Any]:
    """A cell per kind drawn uniformly from the VINNAS space (vinnas2020 table II, "Random"):
    per state n_i, two different incoming edges out of the i + 2 earlier states, each with an op
    drawn uniformly from the K − 1 non-zero ops."""
    from bayesnas.nn.vinnas_cells import KEPT_OPS, encode_genotype

    nodes = {}
    for kind in dict.fromkeys(kinds):
        states = []
        for i in range(num_states):
            inputs = sorted(int(j) for j in torch.randperm(i + 2, generator=generator)[:2])
            ops = tuple(KEPT_OPS[int(k)] for k in torch.randint(len(KEPT_OPS), (2,), generator=generator))
            states.append(((inputs[0], inputs[1]), ops))
        nodes[kind] = states
    return encode_genotype(nodes)


# -- the run -----------------------------------------------------------------------------------
class VinnasRun:
    """Builds the phases of a run from a :class:`VinnasConfig` (module docstring)."""

    def __init__(self, config: VinnasConfig, out: str | Path, *, data: VinnasData | None = None) -> None:
        config.validate()
        self.config = config
        self.out = Path(out)
        # Under torchrun: global batches split over the processes, the gradients of q(w), q(α)
        # and the re-trained weights averaged, files written by rank 0 (bayesnas.runs.distributed).
        self.dist, self.device = distributed.setup_run(config.device,
                                                       (config.batch_size, config.retrain_batch_size))
        self.data = data if data is not None else load_data(config.dataset, data_dir=config.data_dir,
                                                            download=config.download)
        self.x_train, self.y_train, self.x_test, self.y_test = self.data.subset(
            max_train_images=config.max_train_images, test_images=config.test_images,
            train_generator=_generator(0, _SUBSET, 1), test_generator=_generator(0, _SUBSET, 2),
            device=self.device)
        self.search_state: dict[str, Any] | None = None

    # -- a resumable epoch loop --------------------------------------------------------------
    def _loop(self, phase: Path, total: int, run_epoch: Callable[[int], dict[str, Any]],
              state: Callable[[], dict[str, Any]], load: Callable[[dict[str, Any]], None], *,
              progress: bool, desc: str, posterior: Any = None) -> None:
        """:func:`bayesnas.runs.loop.run_epochs` with this run's posterior history."""
        history = PosteriorHistory(self.out / HISTORY_FILE) if posterior is not None else None
        main = self.dist.is_main
        run_epochs(phase, total, run_epoch, state, load, progress=progress and main, desc=desc,
                   history=history, posterior=posterior, main=main)
        self.dist.barrier()  # rank 0's logs and checkpoint are complete

    def _write(self, path: Path, data: Any) -> None:
        """``path`` written by rank 0 (atomically), read by every rank after it."""
        if self.dist.is_main:
            write_json(path, data)
        self.dist.barrier()

    # -- phase 1: search ---------------------------------------------------------------------
    def build_search(self) -> None:
        """The space, q(w), q(α) and the alg. 1 driver, freshly seeded."""
        from bayesnas.guides import NormalGuide
        from bayesnas.infer.schedules import linear_ramp
        from bayesnas.infer.variational import VariationalArchitectureSearch, VariationalSearchELBO
        from bayesnas.models.vinnas_space import VinnasSearchSpace
        from bayesnas.sites import discover_sites

        c, d = self.config, self.data
        torch.manual_seed(_seed(c.seed, _INIT))
        space = VinnasSearchSpace.for_data(d.input_shape, d.num_classes, layout=c.layout, channels=c.channels,
                                           bayesian=c.bayesian).to(self.device)
        example = self.x_train[:2]
        specs = discover_sites(space, example, weights=space.point_weights())
        arch_guide = NormalGuide(specs, generator=_generator(c.seed, _ARCH_INIT)).to(self.device)
        weight_guide = space.weight_guide().to(self.device)
        # The search data: `search_fraction` of the training images, seeded, halved into D_w / D_α.
        n = max(2, int(round(c.search_fraction * len(self.x_train))))
        subset = torch.randperm(len(self.x_train), generator=_generator(c.seed, _SUBSET))[:n]
        half = n // 2
        self.w_index, self.a_index = subset[:half].to(self.device), subset[half:].to(self.device)
        if half < c.batch_size:
            raise ValueError(f"D_w and D_α ({half} images each) must hold one mini-batch, but got "
                             f"batch_size={c.batch_size}.")
        start, end = c.gamma_ramp
        ramp = functools.partial(linear_ramp, start=start, end=end)
        loss = VariationalSearchELBO(arch_sites=arch_guide.site_names, label_smoothing=c.label_smoothing,
                                     num_data=half)
        self.space, self.arch_guide, self.weight_guide = space, arch_guide, weight_guide
        self.search = VariationalArchitectureSearch(
            space.model, weight_guide=weight_guide, arch_guide=arch_guide, loss=loss, epochs=c.epochs,
            warmup_epochs=c.warmup_epochs, gamma_weights=functools.partial(ramp, final=c.gamma_weights),
            gamma_arch=functools.partial(ramp, final=c.gamma_arch),
            gamma_entropy=functools.partial(ramp, final=c.gamma_entropy), weight_lr=c.weight_lr,
            min_weight_lr=c.min_weight_lr, arch_lr=c.arch_lr, params=[], clip_norm=c.clip_norm,
            grad_reduce=self.dist.average_gradients)

    @torch.no_grad()
    def mean_logits(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Logits of the supernetwork at the guide means, weights and α (vinnas2020 §IV-B), in
        batches of ``eval_batch_size`` (BatchNorm without running statistics uses each batch's)."""
        from bayesnas.handlers.local_reparameterization import local_reparameterization

        out = []
        b = self.config.eval_batch_size
        for i in range(0, len(x), b):
            xb, yb = x[i : i + b], y[i : i + b]  # labels given: the likelihood site draws nothing
            with local_reparameterization(deterministic=True):
                trace = poutine.trace(self.search.guide).get_trace(xb, yb)
                out.append(poutine.replay(self.space.model, trace=trace)(xb, yb)[0])
        return torch.cat(out)

    def validation_error(self) -> float:
        """The error on D_α of the deterministic network at the means (alg. 1, line 15)."""
        x, y = self.x_train[self.a_index], self.y_train[self.a_index]
        return float((self.mean_logits(x, y).argmax(-1) != y).double().mean())

    def search_epoch(self, epoch: int) -> dict[str, Any]:
        """One epoch of alg. 1: as many (D_w, D_α) mini-batch pairs as the halves hold, each a
        W step and (after the warm-up) an α step; then the validation error and ``keep_best``."""
        c = self.config
        bs = c.batch_size
        w_perm = torch.randperm(len(self.w_index), generator=_generator(c.seed, _W_ORDER, epoch))
        a_perm = torch.randperm(len(self.a_index), generator=_generator(c.seed, _A_ORDER, epoch))
        w_order, a_order = self.w_index[w_perm.to(self.device)], self.a_index[a_perm.to(self.device)]
        steps = min(len(w_order), len(a_order)) // bs
        losses, arch_losses, metrics = [], [], {}
        for s in range(steps):
            wi, ai = w_order[s * bs : (s + 1) * bs], a_order[s * bs : (s + 1) * bs]
            weight_batch = self.dist.shard(self.x_train[wi], self.y_train[wi])  # this rank's share
            alpha_batch = self.dist.shard(self.x_train[ai], self.y_train[ai])
            metrics = self.search.step(weight_batch, alpha_batch, epoch=epoch)
            losses.append(metrics["loss"])
            if metrics["arch_loss"] is not None:
                arch_losses.append(metrics["arch_loss"])
        val_error = self.validation_error()
        kept = self.search.keep_best(val_error)
        return {"iteration": self.search.num_steps, "loss": sum(losses) / len(losses),
                "arch_loss": sum(arch_losses) / len(arch_losses) if arch_losses else None,
                "val_error": val_error, "kept": kept, "lr": metrics["lr"],
                **{k: metrics[k] for k in ("gamma_weights", "gamma_arch", "gamma_entropy")}}

    def run_search(self, *, progress: bool = True) -> dict[str, dict[str, Any]]:
        """Phase 1–2: alg. 1, then the genotypes of the kept α by SNR and by magnitude."""
        self.build_search()
        phase = self.out / "search"
        self._loop(phase, self.config.epochs, self.search_epoch, self.search.state_dict,
                   self.search.load_state_dict, progress=progress, desc="search", posterior=self.arch_guide)
        self.search.restore_best()  # alg. 1 line 21: select from the α of the lowest validation error
        genotypes = {SELECTIONS[k]: self.space.genotype(self.arch_guide, criterion=k) for k in SELECTIONS}
        self._write(self.out / "posterior.json", self.arch_guide.summary())
        # "epoch" counts from 1 like metrics.jsonl: the α kept after that many epochs.
        best = {"epoch": self.search.best_epoch + 1, "val_error": self.search.best_error}
        self._write(phase / "best.json", best)
        # The magnitude file last: its presence marks the search done.
        for name, genotype in genotypes.items():
            self._write(self.out / f"genotype_{name}.json", genotype)
        return genotypes

    # -- phase 3-4: re-training ------------------------------------------------------------
    def retrain(self, name: str, genotype_path: Path, *, progress: bool = True) -> dict[str, Any]:
        """Re-train the :class:`VinnasNetwork` of the genotype in ``genotype_path`` (the JSON
        alone), freshly initialised, on all training images; score it on the test images."""
        from bayesnas.infer.schedules import cosine_lr, linear_ramp
        from bayesnas.nn.vinnas_cells import VinnasNetwork

        c, d = self.config, self.data
        phase = self.out / f"retrain-{name}"
        done = phase / "result.json"
        if done.exists():
            return read_json(done)
        genotype = read_json(genotype_path)
        torch.manual_seed(_seed(c.seed, _INIT, 1))  # one initialisation seed for every arm
        net = VinnasNetwork(genotype=genotype, layout=c.layout, in_channels=int(d.input_shape[0]),
                            num_classes=d.num_classes, channels=c.retrain_channels or c.channels,
                            cells=c.retrain_cells).to(self.device)
        bayes = _BayesianWeights(net, num_data=len(self.x_train)) if c.retrain_bayesian else None
        trained = [*net.parameters(), *(bayes.parameters() if bayes is not None else ())]
        trained = [p for p in trained if p.requires_grad]
        opt = torch.optim.Adam(trained, lr=c.retrain_lr)
        bs = c.retrain_batch_size
        n = len(self.x_train)
        check_one_batch(n, bs)

        def loss_of(x: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
            if bayes is None:
                return F.cross_entropy(net(x), y, label_smoothing=c.label_smoothing)
            return bayes.loss(x, y, gamma=gamma, label_smoothing=c.label_smoothing)

        def run_epoch(epoch: int) -> dict[str, Any]:
            lr = cosine_lr(epoch, base=c.retrain_lr, epochs=c.retrain_epochs)
            for group in opt.param_groups:
                group["lr"] = lr
            order = torch.randperm(n, generator=_generator(c.seed, _RETRAIN_ORDER, epoch)).to(self.device)
            # γ₁ of the Bayesian re-training: 0 → final over the first half of the epochs.
            gamma = linear_ramp(epoch, start=0, end=max(1, c.retrain_epochs // 2),
                                final=c.retrain_gamma_weights)
            net.train()
            loss = train_epoch_on_tensors(functools.partial(loss_of, gamma=gamma), opt, self.x_train,
                                          self.y_train, order=order, batch_size=bs, shard=self.dist.shard,
                                          after_backward=lambda: self.dist.average_gradients(trained))
            return {"iteration": (epoch + 1) * (n // bs), "loss": loss, "lr": lr,
                    **({"gamma_weights": gamma} if bayes is not None else {})}

        def state() -> dict[str, Any]:
            return {"model": net.state_dict(), "optimizer": opt.state_dict(), "rng": torch.get_rng_state(),
                    "weights": bayes.state_dict() if bayes is not None else {}}

        def load(saved: dict[str, Any]) -> None:
            net.load_state_dict(saved["model"])
            if bayes is not None:
                bayes.load_state_dict(saved["weights"])
            opt.load_state_dict(saved["optimizer"])
            torch.set_rng_state(saved["rng"])

        self._loop(phase, c.retrain_epochs, run_epoch, state, load, progress=progress,
                   desc=f"re-train {name}")
        num_params = sum(p.numel() for p in net.parameters())
        forward = None if bayes is None else bayes.pruned(threshold=PRUNE_THRESHOLD)
        error = error_on_tensors(net, self.x_test, self.y_test, batch_size=c.eval_batch_size, forward=forward)
        nonzero = None if bayes is None else bayes.nonzero
        result = {"test_error": error, "test_accuracy": 1.0 - error, "num_params": num_params,
                  "nonzero_params": nonzero, "bayesian": bayes is not None, "genotype": genotype,
                  "seconds": training_seconds(phase)}
        self._write(done, result)
        return result

    def random_genotype(self, r: int) -> dict[str, Any]:
        """Random cell ``r`` of this run (seeded by the run's seed and ``r``)."""
        from bayesnas.nn.vinnas_cells import resolve_layout

        kinds, states = resolve_layout(self.config.layout)
        return random_genotype(kinds=kinds, num_states=states, generator=_generator(self.config.seed,
                                                                                    _RANDOM_ARCH, r))

    def run(self, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        """Every phase (finished ones are read back, not re-run); writes ``results.json``."""
        start_run_dir(self.out, self.config, resume=resume, write=False)  # every rank looks first
        self.dist.barrier()  # ... before rank 0 writes
        if self.dist.is_main:
            start_run_dir(self.out, self.config, resume=resume)
        self.dist.barrier()
        if not (self.out / "genotype_magnitude.json").exists():
            self.run_search(progress=progress)
        retrained = {name: self.retrain(name, self.out / f"genotype_{name}.json", progress=progress)
                     for name in SELECTIONS.values()}
        random = []
        for r in range(self.config.random_architectures):
            path = self.out / f"genotype_random{r}.json"
            if not path.exists():
                self._write(path, self.random_genotype(r))
            random.append(self.retrain(f"random{r}", path, progress=progress))
        best = read_json(self.out / "search" / "best.json")
        results = {
            "dataset": self.data.name,
            "layout": self.config.layout,
            "seed": self.config.seed,
            "bayesian_search": self.config.bayesian,
            "train_images": len(self.x_train),
            "search_images": int(round(self.config.search_fraction * len(self.x_train))),
            "test_images": len(self.x_test),
            **retrained,
            "random": random,
            "same_genotype": retrained["snr"]["genotype"] == retrained["magnitude"]["genotype"],
            "best_epoch": best["epoch"],
            "best_val_error": best["val_error"],
            "search_seconds": training_seconds(self.out / "search"),
            "diagnostics": self.diagnostics(),
        }
        self._write(self.out / "results.json", results)
        if self.dist.is_main:
            warn_diagnostics(results["diagnostics"])
        return results

    def diagnostics(self) -> dict[str, Any]:
        """The run diagnostics of the search (:func:`~bayesnas.analysis.diagnostics.diagnose_logged`)
        of the α it reports (``posterior.json``, the kept epoch's). Its loss holds the KL terms, so
        "at chance" is read from the validation error on D_α."""
        from bayesnas.runs import MetricsLog

        return diagnose_logged(MetricsLog(self.out / "search" / "metrics.jsonl").read(),
                               PosteriorHistory(self.out / HISTORY_FILE).posteriors(by="epoch"),
                               num_classes=self.data.num_classes, loss_key=None,
                               posterior=read_json(self.out / "posterior.json"))


#: vinnas2020 §V-B / Molchanov et al. 2017: weights with log α = log σ² − log μ² ≥ 3 are pruned.
PRUNE_THRESHOLD = 3.0


class _BayesianWeights(torch.nn.Module):
    """q(w) over the convolution and linear weights of a stand-alone network (vinnas2020 eq. 4–5
    in the re-training): a :class:`~bayesnas.guides.NormalWeightGuide` whose draws replace the
    weights through ``torch.func.functional_call``; the network's layers compute through
    :mod:`bayesnas.nn.lrt`, so under :func:`local_reparameterization` the draws give the LRT.
    BatchNorm's affine parameters stay deterministic (trained by the same Adam)."""

    def __init__(self, net: torch.nn.Module, *, num_data: int) -> None:
        from bayesnas.guides import NormalWeightGuide

        super().__init__()
        self.net = [net]  # not a submodule: its parameters are trained and saved by the caller
        # Every convolution / linear weight (≥ 2 dimensions; ops name theirs "depthwise", ...).
        names = [n for n, p in net.named_parameters() if p.dim() >= 2]
        self.guide = NormalWeightGuide(net, prefix="w", include=names, flat=True)
        self.num_data = num_data
        self.nonzero: int | None = None

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call

        return functional_call(self.net[0], self.guide.weights(self.guide()), (x,))

    def loss(self, x: torch.Tensor, y: torch.Tensor, *, gamma: float, label_smoothing: float) -> torch.Tensor:
        """Per datum: the label-smoothed cross-entropy of an LRT draw + γ₁ · KL(q(w) ‖ p(w)) / N
        (eq. 8's weight terms; the KL is Molchanov et al.'s approximation, analytic in (μ, σ))."""
        from bayesnas.distributions.kl import kl_normal_log_uniform
        from bayesnas.handlers.local_reparameterization import local_reparameterization

        with local_reparameterization():
            nll = F.cross_entropy(self._forward(x), y, label_smoothing=label_smoothing)
        if gamma == 0:
            return nll
        kl = sum(kl_normal_log_uniform(loc, torch.exp(0.5 * ls2)).sum()
                 for loc, ls2 in zip(self.guide.locs, self.guide.log_sigma2s, strict=True))
        return nll + gamma * kl / self.num_data

    def pruned(self, *, threshold: float) -> Callable[[torch.Tensor], torch.Tensor]:
        """The deterministic network at the means with log α ≥ ``threshold`` zeroed (§IV-B);
        sets :attr:`nonzero`, the non-zero parameters after pruning (BatchNorm's included)."""
        from bayesnas.handlers.local_reparameterization import local_reparameterization

        net = self.net[0]
        deterministic = sum(p.numel() for n, p in net.named_parameters() if n not in self.guide.param_names)

        def forward(x: torch.Tensor) -> torch.Tensor:
            with local_reparameterization(deterministic=True, threshold=threshold) as handler:
                out = self._forward(x)
            self.nonzero = handler.nonzero_count() + deterministic
            return out

        return forward



#: the fields that only the re-training reads: a finished search may be reused across them.
RETRAIN_FIELDS = frozenset({"retrain_epochs", "retrain_lr", "retrain_batch_size", "retrain_channels",
                            "retrain_cells", "retrain_bayesian", "retrain_gamma_weights",
                            "random_architectures", "test_images"})


def _reuse_search(config: VinnasConfig, source: Path, run_dir: Path) -> None:
    """Copy the finished search of ``source`` into ``run_dir`` with this run's ``config.json``,
    after checking that every field the search reads is the same."""
    import shutil

    if not (source / "genotype_magnitude.json").exists():
        raise FileNotFoundError(f"No finished search in {source} (genotype_magnitude.json is missing).")
    theirs = VinnasConfig.from_dict(read_json(source / "config.json")).to_dict()
    ours = config.to_dict()
    differ = sorted(k for k in ours if k not in RETRAIN_FIELDS and ours[k] != theirs[k])
    if differ:
        raise ValueError(f"The search in {source} used other settings: "
                         + ", ".join(f"{k}={theirs[k]!r} (here {ours[k]!r})" for k in differ) + ".")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source / "search", run_dir / "search", dirs_exist_ok=True)
    for f in ("posterior.json", HISTORY_FILE, "genotype_snr.json", "genotype_magnitude.json"):
        shutil.copy2(source / f, run_dir / f)
    write_config(run_dir, config)  # last: the run resumes from here, past its search


def run_vinnas_resumably(config: VinnasConfig, run_dir: str | Path, reuse: str | Path | None = None, *,
                         progress: bool = False, data: VinnasData | None = None) -> dict[str, Any]:
    """:func:`bayesnas.methods.run_resumably` for VINNAS studies: a finished run is read back, a
    killed one resumed, a new one started; with ``reuse``, a new one starts from the finished
    search in that directory (same search settings; only the re-training runs). A finished run
    asked for more random cells re-trains only the missing ones (their draws depend on the seed
    and their index, not on how many are asked for). Returns ``results.json``'s content."""
    run_dir = Path(run_dir)
    if (run_dir / "results.json").exists():
        done = read_json(run_dir / "results.json")
        if len(done["random"]) >= config.random_architectures:
            return done
        saved = read_config(run_dir, VinnasConfig)
        if dataclasses.replace(saved, random_architectures=config.random_architectures) != config:
            raise ValueError(f"{run_dir} holds a run with other settings; choose another --out.")
        write_config(run_dir, config)  # more random cells: the finished phases are read back
        return run(out=run_dir, resume=True, progress=progress, kind="vinnas", data=data)
    if reuse is not None and not (run_dir / "config.json").exists():
        _reuse_search(config, Path(reuse), run_dir)
    return run_resumably(config, run_dir, progress=progress, data=data)
