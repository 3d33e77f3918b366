"""shirakawa2018 experiment (III) / table 3: adaptation of a stochastic network.

10 hidden layers × 1,024 units; 9 layer-skip bits plus one dropout keep-rate per layer shared by
its units (the shared-rate Bernoulli family, natural gradient (1/U)Σᵢ mᵢ − θ). AdaptiveNet
(eq. 4, λ = 2) against the same network with θ fixed at 0.5 (StochasticNet) and the plain
network (every layer, every unit). Writes ``results.md`` with the test errors (stochastic
prediction, 100 samples, as the paper reports) and the learned skip and keep probabilities.

    python experiments/shirakawa_stochastic_net.py          # CPU default: mnist5k, 10 × 256 units
    python experiments/shirakawa_stochastic_net.py --dataset mnist --width 1024 --epochs 100 \\
        --batch-size 64 --device cuda --seeds 30             # the paper's scale (GPU)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import AVG, run_and_summarise, verdict  # noqa: E402

from bayesnas.analysis import Posterior  # noqa: E402
from bayesnas.analysis.plots import plot_heatmap  # noqa: E402
from bayesnas.methods.study import Arm, arm_options, base_config, study_parser  # noqa: E402

NAME = "shirakawa_stochastic_net"

PAPER = """Table 3 (MNIST, 10 × 1,024 units, stochastic prediction with 100 samples):
AdaptiveNet 1.645 (0.072) % test error in 1.01 h; Bayesian optimisation of the same 19
rates: 1.780 % (budget 10, 9.59 h), 1.490 % (budget 20, 18.29 h). "The networks obtained by
the proposed method skip about five to seven layers and their units are not dropped with
high probability." """


def rate(site: str, index: int, name: str):
    """θ of one layer's skip bit or keep-rate (mean over seeds in the table)."""
    def get(run):
        if run.posterior is None:
            return None
        m = run.posterior[site]
        theta = getattr(m, "group_theta", None)
        theta = m.parameter_stats().get("theta") if theta is None else theta
        if theta is None:  # the plain network has no θ
            return None
        theta = theta.reshape(-1)
        return float(theta[index]) if index < theta.numel() else None

    return (name, get)


def arms(args) -> list[Arm]:
    base = base_config(args, space="stochastic-net", batch_size=args.batch_size,
                       space_options={"depth": args.depth, "width": args.width})
    twice = dict(batch_size=2 * args.batch_size, epochs=2 * args.epochs, num_samples=1)
    return [
        Arm("AdaptiveNet", arm_options(base, num_samples=2)),
        Arm("StochasticNet (θ = 0.5)", arm_options(base, method="stochastic", **twice)),
        Arm("plain network", arm_options(base, method="fixed", fixed_value=1, **twice)),
    ]


def rates_figure(groups, path):
    """Skip and keep probabilities per layer, first seed."""
    return plot_heatmap(Posterior.load(groups["AdaptiveNet"][0] / "posterior.json"), path)


def findings(stats) -> list[str]:
    a, s, plain = stats["AdaptiveNet"], stats["StochasticNet (θ = 0.5)"], stats["plain network"]
    keep = [v[0] for k, v in a.items() if k.startswith("P(keep layer")]
    skipped = sum(1.0 - p for p in keep)  # per run: E[skipped layers], averaged over the seeds
    rates = [v[0] for k, v in a.items() if k.startswith("keep rate")]
    return [
        f"AdaptiveNet beats the fixed-rate StochasticNet (model average): {a[AVG][0]:.4f} vs "
        f"{s[AVG][0]:.4f}, {verdict(a[AVG][0] < s[AVG][0])}; the plain network: {plain[AVG][0]:.4f}.",
        f"The paper's networks skip about five to seven of nine layers: here a run skips "
        f"Σ(1 − P(keep)) = {skipped:.1f} of {len(keep)} on average, {verdict(4.5 <= skipped <= 7.5)}.",
        f"... and keep their units with high probability: the keep rates average "
        f"{sum(rates) / max(len(rates), 1):.2f} (from 0.5), lowest {min(rates, default=0):.2f}: "
        f"{verdict(min(rates, default=0) > 0.5)}.",
    ]


def main(argv=None) -> int:
    p = study_parser(NAME, __doc__.splitlines()[0], epochs=20)
    p.add_argument("--batch-size", type=int, default=32, help="N per architecture of the search")
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--width", type=int, default=256)
    args = p.parse_args(argv)
    if args.smoke:
        args.depth, args.width, args.epochs, args.batch_size = 3, 8, 1, 16
        args.dataset = "digits" if args.dataset == "mnist5k" else args.dataset
    metrics = [rate("layers", j, f"P(keep layer {j + 2})") for j in range(args.depth - 1)]
    metrics += [rate("units", j, f"keep rate layer {j + 1}") for j in range(args.depth)]
    run_and_summarise(
        NAME, args, arms(args), argv=argv,
        title="shirakawa2018 (III): adaptation of a stochastic network (table 3)",
        figures=[("rates.png", "Skip and keep probabilities of AdaptiveNet, first seed", rates_figure)],
        metrics=metrics,
        notes=[f"Space: {args.depth} hidden layers × {args.width} units, {args.depth - 1} layer bits and "
               f"{args.depth} shared keep-rates (θ ∈ R^{2 * args.depth - 1}); search N = {args.batch_size}, "
               f"λ = 2, {args.epochs} epochs; baselines N = {2 * args.batch_size}, {2 * args.epochs} epochs. "
               "The paper reports the stochastic prediction (model average) column."],
        paper=PAPER, findings=findings,
    )
    return 0


if __name__ == "__main__":
    from bayesnas.user_errors import report_user_errors

    raise SystemExit(report_user_errors(main))
