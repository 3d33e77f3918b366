"""Search step vs plain training step for every registered search space, side by side in one run.

    python benchmarks/spaces_step_time.py [--device cpu|cuda] [--repeats 5] [--steps 20] [--spaces ...]

For each space, the plain step trains the fixed network of the all-ones architecture (every
layer, unit, connection on; ReLU everywhere) on N = 64 examples: the space's module with its
architecture conditioned, cross-entropy, SGD. The search step samples λ = 2 architectures from
θ and trains W and θ on one shared mini-batch of N = 32 (eq. 4): the same number of examples
per step. Two search cases: θ = 0.5 (the start) and θ = 1 − 1/d (converged to the all-ones
network). Steps are timed in alternation (median of ``repeats`` blocks of ``steps`` steps).
The sizes are the papers' (the DenseNet is the narrow CPU version on 28 × 28 inputs).
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F
from step_time import sgd, time_block  # the same SGD and timing as benchmarks/step_time.py

from bayesnas.guides import auto_guide
from bayesnas.infer import ArchitectureSearch, RankingNaturalGradientLoss
from bayesnas.models import get_space
from bayesnas.sites import arch_plate, discover_sites, fixed_architecture

#: space -> (input shape, options): the papers' networks (DenseNet: the narrow CPU version).
SPACES: dict[str, tuple[tuple[int, ...], dict]] = {
    "layer-skip": ((784,), {}),
    "activation-select": ((784,), {}),
    "unit-select": ((784,), {}),
    "stochastic-net": ((784,), {}),
    "densenet-connections": ((1, 28, 28), {"growth": 4, "layers_per_block": 4}),
}


def make_steps(name: str, device: torch.device) -> dict[str, object]:
    shape, options = SPACES[name]
    x = torch.randn(64, *shape, device=device)
    y = torch.randint(0, 10, (64,), device=device)
    space = get_space(name)
    steps = {}

    plain = space.build(shape, 10, **options).to(device)
    specs = discover_sites(plain, x[:1])
    ones = {n: torch.ones(s.shape).long().tolist() for n, s in specs.items()}
    fixed = fixed_architecture(plain, ones, specs, device=device)
    opt = sgd(plain.parameters())

    def plain_step() -> None:
        opt.zero_grad(set_to_none=True)
        with arch_plate(1):
            logits = fixed(x)[0]
        F.cross_entropy(logits, y).backward()
        opt.step()

    steps["plain (fixed net, N=64)"] = plain_step
    for label, theta in (("θ=0.5", 0.5), ("θ=1-1/d", None)):
        model = space.build(shape, 10, **options).to(device)
        guide = auto_guide(sites=discover_sites(model, x[:1])).to(device)
        with torch.no_grad():
            for g in getattr(guide, "guides", [guide]):
                d = sum(t.numel() for t in g.thetas)
                for t in g.thetas:
                    t.fill_(theta if theta is not None else 1 - 1 / max(d, 3))
        search = ArchitectureSearch(
            model, guide, RankingNaturalGradientLoss(num_samples=2),
            weight_optimizer=sgd(model.parameters()),
            arch_optimizers=guide.make_optimizers(),
            generator=torch.Generator().manual_seed(0),
        )
        steps[f"search {label} (λ=2, N=32)"] = (lambda s=search: s.step(x[:32], y[:32]))
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--spaces", nargs="+", default=list(SPACES), choices=list(SPACES))
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name in args.spaces:
        steps = make_steps(name, device)
        for step in steps.values():  # warm-up
            time_block(step, 3, device)
        times: dict[str, list[float]] = {k: [] for k in steps}
        for _ in range(args.repeats):
            for label, step in steps.items():
                times[label].append(time_block(step, args.steps, device))
        med = {k: statistics.median(v) for k, v in times.items()}
        plain = med["plain (fixed net, N=64)"]
        for label, t in med.items():
            print(f"{name:22s} {label:30s} {1e3 * t:9.3f} ms/step   ratio to plain {t / plain:5.2f}")


if __name__ == "__main__":
    main()
