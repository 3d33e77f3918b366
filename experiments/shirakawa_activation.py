"""shirakawa2018 experiment (II) / table 2: selection of activation functions (ReLU or tanh per unit).

AdaptiveActivation (eq. 4, λ = 2, θ_init = 0.5) against StochasticActivation (θ fixed at 0.5)
and the all-ReLU and all-tanh networks. As in the paper, the baselines take 2N examples per
step for twice the epochs (the same number of iterations and of examples per step as the λ = 2
search). Writes ``results.md`` (deterministic / stochastic test error and training time, mean ±
std over the seeds) and the per-layer histograms of θ (the paper's fig. 4).

    python experiments/shirakawa_activation.py            # CPU default: mnist5k, 3 × 1,024 units
    python experiments/shirakawa_activation.py --dataset mnist --epochs 1000 --batch-size 64 \\
        --device cuda --seeds 10                           # the paper's scale (GPU)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import AVG, ERR, run_and_summarise, verdict  # noqa: E402

from bayesnas.analysis import Posterior  # noqa: E402
from bayesnas.analysis.plots import plot_theta_histograms  # noqa: E402
from bayesnas.methods.study import Arm, arm_options, base_config, study_parser  # noqa: E402

NAME = "shirakawa_activation"

PAPER = """Table 2 (MNIST, 3 × 1,024 units, mean (std) test error % over 30 trials):

| | deterministic | stochastic | training time (min) |
|---|---|---|---|
| AdaptiveActivation | 1.414 (0.054) | 1.407 (0.036) | 255 |
| StochasticActivation | – | 1.452 (0.025) | 204 |
| ReLU | 1.609 (0.044) | – | 120 |
| tanh | 1.592 (0.069) | – | 120 |"""


def arms(args) -> list[Arm]:
    base = base_config(args, space="activation-select", batch_size=args.batch_size,
                       space_options={"depth": args.depth, "width": args.width})
    twice = dict(batch_size=2 * args.batch_size, epochs=2 * args.epochs)
    return [
        Arm("AdaptiveActivation", arm_options(base, num_samples=2)),
        Arm("StochasticActivation", arm_options(base, method="stochastic", num_samples=1, **twice)),
        Arm("ReLU", arm_options(base, method="fixed", fixed_value=1, num_samples=1, **twice)),
        Arm("tanh", arm_options(base, method="fixed", fixed_value=0, num_samples=1, **twice)),
    ]


def histograms(groups, path):
    """θ per layer after training, first seed (fig. 4): θ → 1 means ReLU."""
    return plot_theta_histograms(Posterior.load(groups["AdaptiveActivation"][0] / "posterior.json"), path)


def findings(stats) -> list[str]:
    a, s, r, t = (stats[k] for k in ("AdaptiveActivation", "StochasticActivation", "ReLU", "tanh"))
    best = min(r[ERR][0], t[ERR][0])
    out = [
        f"AdaptiveActivation beats StochasticActivation (stochastic prediction): {a[AVG][0]:.4f} vs "
        f"{s[AVG][0]:.4f}, {verdict(a[AVG][0] < s[AVG][0])}.",
        f"AdaptiveActivation (deterministic) is at least as accurate as the better of ReLU and tanh: "
        f"{a[ERR][0]:.4f} vs {best:.4f}, {verdict(a[ERR][0] <= best)}.",
    ]
    if "undecided" in a:
        out.append(f"θ moved little: {a['undecided'][0]:.0f} bits end undecided (max probability < 0.9). "
                   "With ηθ = 1/d a bit moves at most 1/d per step; the paper ran about 9×10⁵ steps.")
    return out


def main(argv=None) -> int:
    p = study_parser(NAME, __doc__.splitlines()[0], epochs=20)
    p.add_argument("--batch-size", type=int, default=32, help="N per architecture of the search")
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--width", type=int, default=1024)
    args = p.parse_args(argv)
    if args.smoke:
        args.depth, args.width, args.epochs, args.batch_size = 2, 16, 1, 16
        args.dataset = "digits" if args.dataset == "mnist5k" else args.dataset
    run_and_summarise(
        NAME, args, arms(args), argv=argv,
        title="shirakawa2018 (II): selection of activation functions (table 2, fig. 4)",
        figures=[("theta_histograms.png", "θ = P(ReLU) per layer after training, first seed (fig. 4)",
                  histograms)],
        notes=[f"Space: {args.depth} hidden layers × {args.width} units, one bit per unit "
               f"(d = {args.depth * args.width}); search N = {args.batch_size}, λ = 2, {args.epochs} "
               f"epochs; baselines N = {2 * args.batch_size}, {2 * args.epochs} epochs."],
        paper=PAPER, findings=findings,
    )
    return 0


if __name__ == "__main__":
    from bayesnas.user_errors import report_user_errors

    raise SystemExit(report_user_errors(main))
