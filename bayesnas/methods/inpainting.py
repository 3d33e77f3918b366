"""The inpainting experiment of pdas2019 §4.2: search a symmetric CAE, re-train it, score it.

:func:`bayesnas.methods.run` of an :class:`InpaintingConfig` (an :class:`InpaintingRun`) does, in ``out``:

1. **search** (``search/``): pdas2019 alg. 1 on :class:`~bayesnas.models.InpaintingSearchSpace`
   — the training images cut into halves D_W / D_θ, W stepped on a D_W mini-batch, then θ on a
   D_θ mini-batch with the updated W (:class:`~bayesnas.infer.AlternatingArchitectureSearch`),
   λ = 2, the adaptive step size (app. C), MSE loss, SGD with momentum 0.9, learning rate
   0.025 → 0 on a cosine schedule (Loshchilov & Hutter 2017, no restart), gradient clipping at
   norm 5, mini-batches of 16 ("Training Detail");
2. **export** of the most likely architecture as ``genotype.json`` (and ``architecture.json``,
   ``posterior.json``; the posterior at the start and after every search epoch is in
   ``posterior_history.jsonl``, as a search run of :mod:`bayesnas.methods.search` writes it);
3. **re-training** (``retrain-searched/``) of :class:`~bayesnas.nn.cae.SymmetricCAE` built from
   ``genotype.json`` alone, freshly initialised, on all training images with the same
   optimizer settings for ``retrain_iterations``;
4. optionally (``random_architectures``) the same re-training of architectures drawn uniformly
   from the space (``retrain-random{r}/``), pdas2019's RANDOM baseline of §4.1;
5. **test** PSNR / SSIM (:mod:`bayesnas.analysis.image_quality`) of every re-trained network on
   the test images under one fixed, seeded mask per image, in ``results.json``.

Masks (:mod:`bayesnas.data.masks`) are drawn anew for every training mini-batch; training
images are flipped horizontally at random (pdas2019's augmentation). The reconstructions are
clipped to [0, 1] before they are scored.

Data: the images of :func:`bayesnas.data.load_dataset` — the embedded ``mnist5k`` (28×28) and
``digits`` (8×8), or a torchvision dataset the user has (e.g. ``svhn``, one of the paper's
three) — with the loader's normalisation undone (pixels in [0, 1], pdas2019 "normalized by
dividing by 255") and resized to ``side`` × ``side`` (bilinear, antialiased) per mini-batch.
CelebA and Stanford Cars, the paper's other two datasets, are not in the loader and so not
available here. The images are held in memory at their stored size.

Every phase checkpoints atomically once per epoch (``checkpoint_every`` iterations; default
one pass over its training images) and at its end; ``resume=True`` continues a killed run and,
on the CPU, repeats the uninterrupted run exactly: the data order, flips and masks of an
iteration are functions of (``seed``, iteration), the architectures come from a checkpointed
generator.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from bayesnas.analysis.history import HISTORY_FILE, PosteriorHistory
from bayesnas.analysis.image_quality import psnr, ssim
from bayesnas.data.masks import MASKS, apply_mask, make_masks
from bayesnas.nn.cae import DEFAULT_CHANNELS, SymmetricCAE, genotype_from_arch, search_variables
from bayesnas.runs import (
    MetricsLog,
    RunConfig,
    read_json,
    save_architecture,
    start_run_dir,
    training_seconds,
    write_json,
)
from bayesnas.runs.checks import check_integers
from bayesnas.runs.loop import run_epochs
from bayesnas.runs.seeds import stream, stream_seed

__all__ = ["InpaintingConfig", "InpaintingData", "InpaintingRun", "load_images"]

# The loaders' normalisations, undone to get pixels in [0, 1]: mean and std per channel.
# (bayesnas.data.embedded: MNIST's constants for mnist5k, fixed constants for digits.)
_EMBEDDED_NORMALISATION = {"mnist5k": ((0.1307,), (0.3081,)), "digits": ((0.30501,), (0.37776,))}
# −log N(y; μ, 1/√2) per element is (y − μ)² + ½ log π (bayesnas.sites.regression_likelihood).
_MSE_OFFSET = 0.5 * math.log(math.pi)


@dataclass
class InpaintingConfig(RunConfig):
    """Everything a run depends on; written to ``config.json``. The defaults are pdas2019
    §4.2's (N_c = 20, b = 5, channels {64, 128, 256}, 64 × 64 images, mini-batches of 16,
    50K search and 500K re-training iterations, SGD 0.025 → 0 cosine, momentum 0.9, clipping
    at 5, λ = 2, adaptive step size) on the embedded ``mnist5k`` images.

    ``mask``: ``"center"``, ``"pixel"`` or ``"half"``. ``random_architectures``: how many
    uniformly drawn architectures are re-trained beside the searched one. ``test_images``:
    score only the first so many test images (``None``: all). ``checkpoint_every``: iterations
    between checkpoints (``None``: one epoch, a pass over the phase's training images).
    ``flip``: random horizontal flips of the training images.
    """

    side: int = 64
    mask: str = "center"
    num_hidden: int = 20
    level_back: int = 5
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    batch_size: int = 16
    search_iterations: int = 50_000
    retrain_iterations: int = 500_000
    random_architectures: int = 0
    lr: float = 0.025
    momentum: float = 0.9
    clip_norm: float = 5.0
    num_samples: int = 2
    adaptive: bool = True
    flip: bool = True
    test_images: int | None = None
    eval_batch_size: int = 100
    checkpoint_every: int | None = None

    kind: ClassVar[str] = "inpainting"

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)

    def validate(self) -> None:
        super().validate()
        from bayesnas.nn.cae import check_space_options

        if self.mask not in MASKS:
            raise ValueError(f"`mask` must be one of {MASKS}, but got mask={self.mask!r}.")
        check_space_options(self.num_hidden, self.level_back, self.channels, 1)
        check_integers(self, {"side": 4, "batch_size": 1, "search_iterations": 1, "retrain_iterations": 1,
                              "random_architectures": 0, "num_samples": 2, "eval_batch_size": 1})
        check_integers(self, {"test_images": 1, "checkpoint_every": 1}, optional=True)
        if not self.lr > 0:
            raise ValueError(f"`lr` must be positive, but got lr={self.lr!r}.")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"`momentum` must lie in [0, 1), but got momentum={self.momentum!r}.")
        if not self.clip_norm > 0:
            raise ValueError(f"`clip_norm` must be positive, but got clip_norm={self.clip_norm!r}.")



# -- data --------------------------------------------------------------------------------------
@dataclass
class InpaintingData:
    """Training and test images in [0, 1] at their stored size, ``(N, C, h, w)``."""

    train: torch.Tensor
    test: torch.Tensor
    name: str

    @property
    def in_channels(self) -> int:
        return int(self.train.shape[1])


def _to_unit_range(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x * s + m).clamp_(0.0, 1.0)


def _all_images(dataset: Any) -> torch.Tensor:
    from bayesnas.data import as_tensors, make_loader

    tensors = as_tensors(dataset)
    if tensors is not None:
        return tensors[0]
    return torch.cat([x for x, _ in make_loader(dataset, batch_size=1000, shuffle=False)])


def load_images(
    name: str, *, data_dir: str | None = None, download: bool = False
) -> InpaintingData:
    """The images of a dataset of :func:`bayesnas.data.load_dataset`, pixels in [0, 1].

    Embedded data: the loader's training part (its test fraction, 20 %, is the test set);
    torchvision data: the official training and test sets. No validation part is held out.
    """
    from bayesnas.data import load_dataset
    from bayesnas.data.vision import VISION

    data = load_dataset(name, data_dir=data_dir, download=download, seed=0, val_fraction=0.0, augment=False)
    mean, std = _EMBEDDED_NORMALISATION[name] if name in _EMBEDDED_NORMALISATION else VISION[name][1:3]
    train, test = (_to_unit_range(_all_images(d).float(), mean, std) for d in (data.train, data.test))
    return InpaintingData(train, test, name)


def resize(x: torch.Tensor, side: int) -> torch.Tensor:
    """Images resized to ``side`` × ``side`` (bilinear, antialiased), kept in [0, 1]."""
    if tuple(x.shape[-2:]) == (side, side):
        return x
    out = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    return out.clamp_(0, 1)


_seed, _generator = stream_seed, stream


# Streams of randomness, one per use, so that no use shifts another's draws.
(_ORDER, _THETA_ORDER, _FLIP, _MASK, _THETA_FLIP, _THETA_MASK, _TEST_MASK, _INIT, _RANDOM_ARCH, _HALVES,
 _ARCH) = range(11)


class _Batches:
    """Mini-batch ``iteration`` of a fixed index set: epochs of seeded permutations, the ragged
    end dropped; the same (seed, iteration) always gives the same batch."""

    def __init__(self, indices: torch.Tensor, batch_size: int, *parts: int) -> None:
        if len(indices) < batch_size:
            raise ValueError(f"The training images ({len(indices)}) must hold one mini-batch, but got "
                             f"batch_size={batch_size}.")
        self.indices, self.batch_size, self.parts = indices, batch_size, parts
        self.steps_per_epoch = len(indices) // batch_size
        self._cached: tuple[int, torch.Tensor] | None = None

    def __call__(self, iteration: int) -> torch.Tensor:
        epoch, pos = divmod(iteration, self.steps_per_epoch)
        if self._cached is None or self._cached[0] != epoch:
            order = torch.randperm(len(self.indices), generator=_generator(*self.parts, epoch))
            self._cached = (epoch, self.indices[order])
        return self._cached[1][pos * self.batch_size : (pos + 1) * self.batch_size]


def _cosine_sgd(params: Any, config: InpaintingConfig, iterations: int) -> tuple[torch.optim.Optimizer, Any]:
    """SGD with momentum, learning rate from ``lr`` to 0 on a cosine over the iterations."""
    opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=iterations, eta_min=0.0)


# -- the run -----------------------------------------------------------------------------------
class InpaintingRun:
    """Builds the phases of a run from an :class:`InpaintingConfig` (module docstring)."""

    def __init__(
        self, config: InpaintingConfig, out: str | Path, *, data: InpaintingData | None = None
    ) -> None:
        config.validate()
        self.config = config
        self.out = Path(out)
        self.device = torch.device(config.device)
        self.data = data if data is not None else load_images(
            config.dataset, data_dir=config.data_dir, download=config.download)
        c = config
        test = self.data.test if c.test_images is None else self.data.test[: c.test_images]
        self.test_images = test
        # One fixed mask per test image, the same for every network scored in this run.
        self.test_masks = make_masks(c.mask, len(test), c.side, c.side,
                                     generator=_generator(c.seed, _TEST_MASK))

    # -- data --------------------------------------------------------------------------------
    def _training_batch(self, indices: torch.Tensor, flip_stream: int, mask_stream: int,
                        iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(masked input, clean target) on the device: resized, flipped at random, masked anew."""
        c = self.config
        x = resize(self.data.train[indices], c.side)
        if c.flip:
            flips = torch.rand(len(x), generator=_generator(c.seed, flip_stream, iteration)) < 0.5
            x = torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x)
        masks = make_masks(c.mask, len(x), c.side, c.side,
                           generator=_generator(c.seed, mask_stream, iteration))
        x = x.to(self.device)
        return apply_mask(x, masks), x

    @torch.no_grad()
    def evaluate(self, net: torch.nn.Module) -> dict[str, float]:
        """Mean test PSNR [dB] and SSIM of ``net`` under the run's fixed test masks."""
        was_training = net.training
        net.eval()
        scores: dict[str, list[torch.Tensor]] = {"psnr": [], "ssim": []}
        b = self.config.eval_batch_size
        for i in range(0, len(self.test_images), b):
            x = resize(self.test_images[i : i + b], self.config.side).to(self.device)
            pred = net(apply_mask(x, self.test_masks[i : i + b])).clamp(0, 1)
            scores["psnr"].append(psnr(pred, x).cpu())
            scores["ssim"].append(ssim(pred, x).cpu())
        net.train(was_training)
        return {k: float(torch.cat(v).double().mean()) for k, v in scores.items()}

    # -- a resumable loop --------------------------------------------------------------------
    def _loop(self, phase: Path, total: int, per_epoch: int, step: Callable[[int], float],
              state: Callable[[], dict[str, Any]], load: Callable[[dict[str, Any]], None],
              progress: bool, desc: str, extra: Callable[[], dict[str, Any]] | None = None,
              posterior: Any = None) -> None:
        """Iterations ``[0, total)`` of ``step`` in epochs of ``checkpoint_every`` (default
        ``per_epoch``) iterations, the last one possibly shorter: each epoch is one of
        :func:`~bayesnas.runs.loop.run_epochs`, logged and checkpointed, so a killed phase
        continues from its last epoch.

        With ``posterior`` (a guide), its snapshot at the start (epoch 0) and after every epoch
        goes to ``OUT/posterior_history.jsonl``, as :mod:`bayesnas.methods.search` writes it."""
        every = self.config.checkpoint_every or per_epoch

        def run_epoch(epoch: int) -> dict[str, Any]:
            end = min((epoch + 1) * every, total)
            losses = []
            for it in range(epoch * every, end):
                loss = step(it)
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"The training loss became {loss} at iteration {it + 1} of {desc}.")
                losses.append(loss)
            return {"iteration": end, "train_mse": sum(losses) / len(losses), **(extra() if extra else {})}

        history = PosteriorHistory(self.out / HISTORY_FILE) if posterior is not None else None
        run_epochs(phase, math.ceil(total / every), run_epoch, state, load, progress=progress, desc=desc,
                   history=history, posterior=posterior, loss_key="train_mse")

    # -- phase 1-2: search and export --------------------------------------------------------
    def search(self, *, progress: bool = True) -> dict[str, Any]:
        """pdas2019 alg. 1 on the space; writes and returns the most likely genotype."""
        from bayesnas.analysis import Posterior, convergence_stats
        from bayesnas.analysis.diagnostics import clipped_sites, diagnose, warn_diagnostics
        from bayesnas.guides import auto_guide
        from bayesnas.infer import AlternatingArchitectureSearch, RankingNaturalGradientLoss
        from bayesnas.models import InpaintingSearchSpace
        from bayesnas.sites import discover_sites, tensors_to_architecture

        c = self.config
        phase = self.out / "search"
        torch.manual_seed(_seed(c.seed, _INIT, 0))
        space = InpaintingSearchSpace(self.data.in_channels, num_hidden=c.num_hidden, level_back=c.level_back,
                                      channels=c.channels).to(self.device)
        example = torch.zeros(1, self.data.in_channels, c.side, c.side, device=self.device)
        guide = auto_guide(sites=discover_sites(space, example)).to(self.device)
        loss = RankingNaturalGradientLoss(num_samples=c.num_samples, same_batch=True)
        weights, scheduler = _cosine_sgd(space.parameters(), c, c.search_iterations)
        arch_optimizers = guide.make_optimizers(adaptive=c.adaptive, num_samples=c.num_samples)
        generator = _generator(c.seed, _ARCH)  # the λ architectures of every step
        search = AlternatingArchitectureSearch(space, guide, loss, weight_optimizer=weights,
                                               arch_optimizers=arch_optimizers, generator=generator,
                                               clip_norm=c.clip_norm)
        # D_W and D_θ: the training images cut into two halves at random (pdas2019 §2), seeded.
        order = torch.randperm(len(self.data.train), generator=_generator(c.seed, _HALVES))
        half = len(order) // 2
        weight_batches = _Batches(order[:half], c.batch_size, c.seed, _ORDER)
        theta_batches = _Batches(order[half:], c.batch_size, c.seed, _THETA_ORDER)

        def step(it: int) -> float:
            w = self._training_batch(weight_batches(it), _FLIP, _MASK, it)
            t = self._training_batch(theta_batches(it), _THETA_FLIP, _THETA_MASK, it)
            out = search.step(w, t)
            scheduler.step()
            return float(out["loss"]) - _MSE_OFFSET

        def state() -> dict[str, Any]:
            return {"model": space.state_dict(), "guide": guide.state_dict(), "weights": weights.state_dict(),
                    "scheduler": scheduler.state_dict(), "arch": [o.state_dict() for o in arch_optimizers],
                    "generator": generator.get_state()}

        def load(saved: dict[str, Any]) -> None:
            space.load_state_dict(saved["model"])
            guide.load_state_dict(saved["guide"])
            weights.load_state_dict(saved["weights"])
            scheduler.load_state_dict(saved["scheduler"])
            for o, s in zip(arch_optimizers, saved["arch"], strict=True):
                o.load_state_dict(s)
            generator.set_state(saved["generator"])

        def stats() -> dict[str, Any]:
            row = convergence_stats(Posterior.from_guide(guide))
            row.pop("mean_max_prob_per_site", None)
            return {**row, "theta_lr": [o.param_groups[0]["lr"] for o in arch_optimizers]}

        initial_entropy = Posterior.from_guide(guide).entropy()  # before a resumed run loads its θ
        self._loop(phase, c.search_iterations, weight_batches.steps_per_epoch, step, state, load, progress,
                   "search", stats, guide)
        arch = tensors_to_architecture(guide.mode())
        genotype = space.genotype(arch)
        save_architecture(arch, self.out / "architecture.json")
        write_json(self.out / "posterior.json", guide.summary())
        # A regression: no chance level to check against.
        post = Posterior.from_guide(guide)
        diagnostics = diagnose(history=MetricsLog(phase / "metrics.jsonl").read(), posterior=post,
                               credible=post.credible_set(k=10), num_classes=None,
                               initial_entropy=initial_entropy,
                               at_bound=clipped_sites(guide, arch_optimizers) or None)
        write_json(self.out / "diagnostics.json", diagnostics)
        warn_diagnostics(diagnostics)
        write_json(self.out / "genotype.json", genotype)  # last: its presence marks the search done
        return genotype

    # -- phase 3-4: re-training and scoring ------------------------------------------------
    def retrain(self, name: str, genotype: Mapping[str, Any], *, progress: bool = True) -> dict[str, Any]:
        """Re-train the CAE of ``genotype`` (from the JSON alone) and score it on the test set."""
        c = self.config
        phase = self.out / f"retrain-{name}"
        done = phase / "result.json"
        if done.exists():
            return read_json(done)
        torch.manual_seed(_seed(c.seed, _INIT, 1 + zlib.crc32(name.encode())))  # a fresh initialisation
        net = SymmetricCAE(genotype, in_channels=self.data.in_channels).to(self.device)
        opt, scheduler = _cosine_sgd(net.parameters(), c, c.retrain_iterations)
        batches = _Batches(torch.arange(len(self.data.train)), c.batch_size, c.seed, _ORDER, 1)
        streams = (_FLIP + 100, _MASK + 100)  # not the search's draws

        def step(it: int) -> float:
            x, y = self._training_batch(batches(it), *streams, it)
            opt.zero_grad(set_to_none=True)
            loss = F.mse_loss(net(x), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), c.clip_norm)
            opt.step()
            scheduler.step()
            return float(loss.detach())

        def state() -> dict[str, Any]:
            return {"model": net.state_dict(), "weights": opt.state_dict(),
                    "scheduler": scheduler.state_dict()}

        def load(saved: dict[str, Any]) -> None:
            net.load_state_dict(saved["model"])
            opt.load_state_dict(saved["weights"])
            scheduler.load_state_dict(saved["scheduler"])

        self._loop(phase, c.retrain_iterations, batches.steps_per_epoch, step, state, load, progress,
                   f"re-train {name}")
        result = {
            **self.evaluate(net),
            "genotype": dict(genotype),
            "active_layers": list(net.chain),
            "num_weights": sum(p.numel() for p in net.parameters()),
            "seconds": training_seconds(phase),
        }
        write_json(done, result)
        return result

    def random_genotype(self, r: int) -> dict[str, Any]:
        """Architecture ``r`` drawn uniformly from the space (every variable uniform), seeded."""
        c = self.config
        g = _generator(c.seed, _RANDOM_ARCH, r)
        variables = search_variables(c.num_hidden, c.level_back, c.channels)
        arch = {name: int(torch.randint(len(labels), (), generator=g)) for name, labels in variables.items()}
        return genotype_from_arch(arch, num_hidden=c.num_hidden, level_back=c.level_back, channels=c.channels)

    def run(self, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        """Every phase (finished ones are read back, not re-run); writes ``results.json``."""
        start_run_dir(self.out, self.config, resume=resume)
        genotype_path = self.out / "genotype.json"
        genotype = read_json(genotype_path) if genotype_path.exists() else self.search(progress=progress)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()  # the search network's weights are gone
        searched = self.retrain("searched", genotype, progress=progress)
        random = [self.retrain(f"random{r}", self.random_genotype(r), progress=progress)
                  for r in range(self.config.random_architectures)]
        results = {
            "dataset": self.data.name,
            "mask": self.config.mask,
            "seed": self.config.seed,
            "side": self.config.side,
            "train_images": len(self.data.train),
            "test_images": len(self.test_images),
            "searched": searched,
            "random": random,
            "search_seconds": training_seconds(self.out / "search"),
            "diagnostics": read_json(self.out / "diagnostics.json"),
        }
        write_json(self.out / "results.json", results)
        return results

