"""Search step with Bayesian LRT weights vs the same step with deterministic weights, side by side.

    OMP_NUM_THREADS=1 python benchmarks/lrt_step_time.py [--device cpu|cuda] [--layout M]
        [--channels 8] [--batch-size 32] [--repeats 20] [--steps 1] [--profile]

The step is vinnas2020 alg. 1 as :class:`bayesnas.infer.VariationalArchitectureSearch` runs it
(after the warm-up): a W step and an α step, each one eq. 8 loss
(:class:`~bayesnas.infer.variational.VariationalSearchELBO`, a ``TraceMeanField_ELBO`` with the
γ-scaled analytic KLs), its backward and an Adam step, under the local reparameterization
handler. The network is :class:`~bayesnas.models.VinnasSearchSpace` on 1 × 28 × 28 images,
10 classes, one architecture sample (``space.model(x, y, num_arch=1)``).

* ``bayesian``: ``bayesian=True`` with ``space.weight_guide()``: every weight is a Normal site,
  every convolution the LRT's two (mean = conv(x, μ), var = conv(x², σ²)).
* ``deterministic``: ``bayesian=False``, the same supernetwork with ``nn.Parameter`` weights
  (Ψ, stepped by the same Adam); only α is a latent site.
* ``bayesian, layers at μ``: the Bayesian step, but every layer computes ``op(x, μ)`` only
  (no variance convolution, no noise): not a valid estimator, a probe. Its excess over
  ``deterministic`` is Pyro's per-weight-site bookkeeping (q(w) draws, tracing, replay, the
  analytic KL of every site); the excess of ``bayesian`` over it is the LRT's own cost (the
  second convolution, x², the output noise and their backward).

To tell the LRT's arithmetic from Pyro's bookkeeping (tracing, replay, the KL, the effect
stack), a bare forward + backward of the network (fixed mixing weights, mean cross-entropy,
no ELBO, no optimiser) is timed in both modes too: ``bayesian`` draws the weights from q(w)
and runs the network under the handler (the LRT), ``deterministic`` runs it on the
parameters. Every round times each variant once (``--steps`` steps), in turn; the ratios are
taken within each round and summarised by their median and quartiles, so a burst of machine
noise moves one round's ratio, not the result. ``--profile`` also prints the
``torch.profiler`` table of a few Bayesian search steps. Both search steps run under the
handler (``lrt=True``, as the driver does); it leaves the deterministic layers alone.

Measured (CPU, 1 thread, ``--repeats 25``): search step **2.02×** (quartiles 1.90–2.07), bare
forward + backward 2.03×; split: Pyro's weight sites +0.06×, LRT layers +0.98×. At the paper's
MNIST size (``--channels 16 --batch-size 64 --repeats 12``): 2.14× (2.06–2.25), bare 2.06×.
Before all the weights became one site (:class:`bayesnas.nn.parameter_layout.ParameterLayout`)
the step was 2.19–2.45× with Pyro's ~150 weight sites at +0.3×; sharing x² among the ops that
read one input (the handler's cache) saves a further ~6 % of the Bayesian step. What remains is
the LRT's own floor: every convolution is doubled (≈ 53 % of the deterministic step, so
+0.53×) and one N(0, 1) draw per output element of every layer (``randn``, ≈ 10 % of the
Bayesian step) plus x², the root and their backward make up the rest. So the ≤ 2.0× target
is met at C = 8 and missed by 0.1× at C = 16 on this CPU.

On an H100 (``--device cuda``, before the one-site change) the step was launch-bound: 394 ms
Bayesian vs 54 ms deterministic, 7.3×, of which Pyro's ~150 weight sites were +4.3× and the
LRT layers +1.9×; one site for all the weights removes that +4.3× (not re-measured: no GPU
in that session).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from pyro.poutine.messenger import Messenger
from torch import nn
from torch.func import functional_call

from bayesnas.guides import NormalGuide
from bayesnas.handlers import local_reparameterization
from bayesnas.handlers.local_reparameterization import registered
from bayesnas.infer.variational import VariationalArchitectureSearch, VariationalSearchELBO
from bayesnas.models.vinnas_space import VinnasSearchSpace
from bayesnas.sites import discover_sites


class NoWeightGuide(nn.Module):
    """q(w) of the deterministic mode: no latent weights."""

    def forward(self, *args, **kwargs) -> dict:
        return {}


class LayersAtMean(Messenger):
    """The probe ``bayesian, layers at μ``: answers the LRT's messages with ``op(x, μ, μ_b)``."""

    def _pyro_lrt(self, msg) -> None:
        input, weight, bias = msg["args"]
        params = registered(weight)
        if msg["value"] is not None or params is None:
            return
        bias_params = registered(bias)
        bias_loc = bias if bias_params is None else bias_params[0]
        msg["value"] = msg["fn"](input, params[0], bias_loc, **msg["kwargs"])
        msg["done"] = True


def make_search(bayesian: bool, args, x: torch.Tensor, device: torch.device, model_handler=None):
    torch.manual_seed(0)
    space = VinnasSearchSpace(layout=args.layout, channels=args.channels, bayesian=bayesian).to(device)
    weights = space.point_weights() if bayesian else None
    specs = discover_sites(space, x[:2], weights=weights)
    arch_guide = NormalGuide(specs).to(device)
    weight_guide = space.weight_guide().to(device) if bayesian else NoWeightGuide()
    loss = VariationalSearchELBO(arch_sites=arch_guide.site_names, num_data=25_000)
    model = space.model if model_handler is None else model_handler(space.model)
    search = VariationalArchitectureSearch(
        model, weight_guide=weight_guide, arch_guide=arch_guide, loss=loss, epochs=50,
        params=() if bayesian else space.parameters(),
    )
    return space, weight_guide, search


def make_steps(args, device: torch.device) -> dict[str, object]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 1, 28, 28, generator=g).to(device)
    y = torch.randint(0, 10, (args.batch_size,), generator=g).to(device)
    steps = {}
    for bayesian in (True, False):
        mode = "bayesian" if bayesian else "deterministic"
        space, weight_guide, search = make_search(bayesian, args, x, device)
        steps[f"search step, {mode}"] = (lambda s=search: s.step((x, y), (x, y), epoch=1))
        mix = {kind: torch.softmax(torch.zeros(space.num_edges, 10, device=device), -1)
               for kind in space.cell_kinds}

        if bayesian:
            def bare(space=space, weight_guide=weight_guide, mix=mix) -> None:
                with local_reparameterization():
                    w = weight_guide.weights(weight_guide())
                    out = functional_call(space.net, w, (x, mix), strict=True)
                F.cross_entropy(out, y).backward()
        else:
            def bare(space=space, mix=mix) -> None:
                F.cross_entropy(space.net(x, mix), y).backward()

        steps[f"bare fwd+bwd, {mode}"] = bare
        if bayesian:
            probe = make_search(True, args, x, device, model_handler=LayersAtMean())[2]
            steps["search step, bayesian, layers at μ"] = (lambda s=probe: s.step((x, y), (x, y), epoch=1))
    return steps


def time_block(step, steps: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def profile(step, device: torch.device, n: int = 5) -> None:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(n):
            step()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=25))


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
    return q1, q2, q3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--layout", default="M")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20, help="rounds; each times every variant once")
    parser.add_argument("--steps", type=int, default=1, help="steps per variant and round")
    parser.add_argument("--profile", action="store_true", help="profile the Bayesian search step")
    args = parser.parse_args()
    device = torch.device(args.device)
    steps = make_steps(args, device)
    for step in steps.values():  # warm-up
        time_block(step, 2, device)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            times[name].append(time_block(step, args.steps, device))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"layout {args.layout}, channels {args.channels}, batch {args.batch_size}, 28x28, "
          f"{args.repeats} rounds of {args.steps} step(s) per variant")
    for name, t in med.items():
        print(f"{name:34s} {1e3 * t:9.1f} ms (median)")
    # Ratios within each round (its steps ran seconds apart), then their median and quartiles:
    # a burst of machine noise shifts one round's ratio, not the summary.
    for what in ("search step", "bare fwd+bwd"):
        pairs = zip(times[f"{what}, bayesian"], times[f"{what}, deterministic"], strict=True)
        ratios = [b / d for b, d in pairs]
        q1, q2, q3 = quartiles(ratios)
        print(f"{what:34s} bayesian / deterministic = {q2:.2f}x (quartiles {q1:.2f}-{q3:.2f})")
    det = med["search step, deterministic"]
    probe = med["search step, bayesian, layers at μ"]
    print(f"search step, split of the excess     Pyro's weight sites {(probe - det) / det:+.2f}x, "
          f"LRT layers {(med['search step, bayesian'] - probe) / det:+.2f}x (of the deterministic step)")
    if args.profile:
        profile(steps["search step, bayesian"], device)


if __name__ == "__main__":
    main()
