"""Search step vs plain training step, measured side by side in one run.

    python benchmarks/step_time.py [--device cpu|cuda] [--repeats 7] [--steps 50]

Search step: shirakawa2018 exp. I (32 x 128 MLP, 31 layer-skip bits), λ = 2 architectures on
one shared mini-batch of N = 32 (eq. 4), weights and θ updated. Plain step: the fixed
32-layer network written in plain PyTorch, N = 64 (the same number of examples per step), SGD.
Both use SGD with Nesterov momentum 0.9 and weight decay 1e-4. The two are timed in
alternation (median of `repeats` blocks of `steps` steps each) so that machine noise hits both.

Three search cases are reported: θ = 0.5 (the search's start: layers skipped by both samples
cost nothing), θ = 1 − 1/d (converged to the full depth: the two samples mostly agree and share
their activations) and the worst case, two architectures that differ in layer 2 only, so that
every later layer runs separately for both samples (64 rows, like the plain step).
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from bayesnas.guides import BernoulliGuide
from bayesnas.infer import ArchitectureSearch, RankingNaturalGradientLoss
from bayesnas.models import LayerSkipMLP
from bayesnas.sites import discover_sites


def plain_network(depth: int = 32, width: int = 128) -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(784, width), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.ReLU()]
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def sgd(params) -> torch.optim.Optimizer:
    # A small rate keeps the 32-layer nets finite on random data for the whole measurement.
    return torch.optim.SGD(params, lr=1e-4, momentum=0.9, nesterov=True, weight_decay=1e-4)


def make_plain_step(device: torch.device, x: torch.Tensor, y: torch.Tensor):
    net = plain_network().to(device)
    opt = sgd(net.parameters())

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()

    return step


class TwoArchitectures(nn.Module):
    """Proposes [0, 1, 1, ...] and [1, 1, 1, ...]: activations are never shared (worst case)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        table = torch.ones(2, d)
        table[0, 0] = 0
        self.register_buffer("table", table)

    def forward(self, *args, **kwargs):
        return pyro.sample("layers", dist.Delta(self.table, event_dim=1), infer={"arch": True})

    def make_optimizers(self):
        return []


def make_search_step(device: torch.device, x: torch.Tensor, y: torch.Tensor, theta: float | None):
    model = LayerSkipMLP().to(device)
    specs = discover_sites(model, x[:1])
    if theta is None:
        guide = TwoArchitectures(specs["layers"].numel).to(device)
    else:
        guide = BernoulliGuide(specs, init=theta).to(device)
    search = ArchitectureSearch(
        model,
        guide,
        RankingNaturalGradientLoss(num_samples=2),
        weight_optimizer=sgd(model.parameters()),
        arch_optimizers=guide.make_optimizers(),
        generator=torch.Generator().manual_seed(0),
    )
    return lambda: search.step(x, y)


def time_block(step, steps: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    x64 = torch.randn(64, 784, device=device)
    y64 = torch.randint(0, 10, (64,), device=device)
    steps = {
        "plain (fixed net, N=64)": make_plain_step(device, x64, y64),
        "search θ=0.5 (λ=2, N=32)": make_search_step(device, x64[:32], y64[:32], 0.5),
        "search θ=1-1/d (λ=2, N=32)": make_search_step(device, x64[:32], y64[:32], 1 - 1 / 31),
        "search worst case (λ=2, N=32)": make_search_step(device, x64[:32], y64[:32], None),
    }
    for step in steps.values():  # warm-up
        time_block(step, 5, device)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            times[name].append(time_block(step, args.steps, device))
    med = {k: statistics.median(v) for k, v in times.items()}
    plain = med["plain (fixed net, N=64)"]
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name, t in med.items():
        print(f"{name:38s} {1e3 * t:8.3f} ms/step   ratio to plain {t / plain:5.2f}")


if __name__ == "__main__":
    main()
