"""shirakawa2018 experiment (I) / table 1: selection of layers, completed.

AdaptiveLayer (a) (same mini-batch for the λ samples, eq. 4, λ = 2) and (b) (λ disjoint parts,
eq. 5, λ ∈ {2, 8, 32}), θ_init ∈ {0.5, 0.968}, the StochasticLayer baseline (θ fixed at 0.5),
and a sweep of fixed depths at the same training budget (same epochs and mini-batch size N per
architecture, so the same number of iterations). Writes ``results.md`` (mean ± std over the
seeds) and the Σθ-over-iterations figure (the paper's fig. 2).

Two settings decide whether the search works at the ``mnist5k`` scale (4,500 training images,
60 epochs ≈ 8,400 iterations instead of the paper's 9 × 10⁴), and the extra arms show both:

- the initialisation: Chainer's default (LeCun, the space's default ``init``), which the paper
  ran on, makes deep samples start out worse, so θ moves to a shallow net as soon as the
  network starts learning; He's (the ``He init`` arm) leaves θ to drift;
- θ's range and step: with the paper's [1/d, 1 − 1/d] every converged bit still flips with
  probability 1/31, so the weights keep training for the mode plus about one random extra
  layer and the mode errs well above a fixed net of its depth; and while the deep samples do
  not learn yet (the first epochs), θ has to reach a shallower net before the training budget's
  first learning-rate drop. ``--tuned LAMBDA,THETA_MIN[,ETA]`` arms narrow the range and take a
  larger step with more samples per step.

    python experiments/shirakawa_layers.py                 # CPU default: mnist5k
    python experiments/shirakawa_layers.py --dataset mnist --data-dir DATA --epochs 100 \\
        --batch-size 64 --device cuda --seeds 30            # the paper's scale (GPU)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import AVG, ERR, run_and_summarise, verdict  # noqa: E402

from bayesnas.analysis.history import HISTORY_FILE, PosteriorHistory  # noqa: E402
from bayesnas.analysis.plots import plot_tradeoff  # noqa: E402
from bayesnas.methods.study import Arm, arm_options, base_config, study_parser  # noqa: E402

NAME = "shirakawa_layers"


def arms(args) -> list[Arm]:
    base = base_config(args, space="layer-skip", batch_size=args.batch_size,
                       space_options={"depth": args.depth, "width": args.width})
    high = round(1 - 1 / (args.depth - 1), 3)  # θ_init = 1 − 1/d, the paper's "bad" start
    out = [Arm(f"fixed depth {k}", arm_options(base, method="fixed", num_samples=1,
                                              space_options={"depth": k}))
           for k in args.fixed_depths]
    out += [
        Arm("StochasticLayer", arm_options(base, method="stochastic", num_samples=1)),
        Arm("AdaptiveLayer (a) λ=2", arm_options(base, num_samples=2)),
        Arm(f"AdaptiveLayer (a) λ=2 θ0={high}", arm_options(base, num_samples=2, theta_init=high)),
    ]
    for lam in args.lambdas:
        out.append(Arm(f"AdaptiveLayer (b) λ={lam}", arm_options(base, num_samples=lam, same_batch=False)))
    out.append(Arm(f"AdaptiveLayer (b) λ=2 θ0={high}",
                   arm_options(base, num_samples=2, same_batch=False, theta_init=high)))
    for lam, theta_min, eta in args.tuned:
        label = f"AdaptiveLayer (a) λ={lam} θmin={theta_min}" + (f" ηθ={eta}" if eta is not None else "")
        out.append(Arm(label, arm_options(base, num_samples=lam, theta_min=theta_min, theta_lr=eta)))
    if args.he_arm:
        out.append(Arm("AdaptiveLayer (a) λ=2, He init", arm_options(base, num_samples=2,
                                                                    space_options={"init": "he"})))
    return out


def sum_theta_figure(groups, path):
    """Σθ over iterations of each adaptive arm's first seed (shirakawa2018 fig. 2)."""
    points = []
    for label, dirs in groups.items():
        if not label.startswith("AdaptiveLayer"):
            continue
        for step, post in PosteriorHistory(dirs[0] / HISTORY_FILE).posteriors():
            points.append({"label": label, "x": step, "y": post.expected_active()})
    return plot_tradeoff(points, path, x_label="iteration", y_label="Σθ (expected number of kept layers − 1)")


def findings(stats) -> list[str]:
    fixed = {k: s[ERR][0] for k, s in stats.items() if k.startswith("fixed depth")}
    best_label = min(fixed, key=fixed.get)
    stochastic = stats["StochasticLayer"][AVG][0]
    out = []
    for label, s in stats.items():
        if not label.startswith("AdaptiveLayer"):
            continue
        e = s[ERR][0]
        layers = f"; E[hidden layers] = Σθ + 1 = {s['Σθ'][0] + 1:.1f} (paper: 8–10)" if "Σθ" in s else ""
        out.append(f"{label}: {e:.4f}; beats StochasticLayer ({stochastic:.4f}, stochastic prediction): "
                   f"{verdict(e < stochastic)}; within 1.5× the best fixed depth ({best_label}, "
                   f"{fixed[best_label]:.4f}): {verdict(e <= 1.5 * fixed[best_label])}{layers}.")
    return out


def _tuned(text: str) -> tuple[int, float, float | None]:
    parts = text.split(",")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        return int(parts[0]), float(parts[1]), float(parts[2]) if len(parts) == 3 else None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LAMBDA,THETA_MIN[,ETA] such as 4,0.005,0.064, but got {text!r}") from None


def main(argv=None) -> int:
    p = study_parser(NAME, __doc__.splitlines()[0], epochs=60)
    p.add_argument("--batch-size", type=int, default=32, help="N per architecture")
    p.add_argument("--depth", type=int, default=32, help="hidden layers of the searched net")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--fixed-depths", type=int, nargs="+", default=[2, 4, 8, 16])
    p.add_argument("--lambdas", type=int, nargs="+", default=[2, 8, 32], help="λ of AdaptiveLayer (b)")
    p.add_argument("--tuned", type=_tuned, nargs="*", default=[(2, 0.005, None), (4, 0.005, 0.064)],
                   metavar="LAMBDA,THETA_MIN[,ETA]",
                   help="extra AdaptiveLayer (a) arms with λ, θ kept in [θmin, 1 − θmin] and θ step "
                        "size ηθ (default 1/d): the settings that work at the mnist5k scale")
    p.add_argument("--no-he-arm", dest="he_arm", action="store_false",
                   help="leave out the AdaptiveLayer arm with He's initialisation")
    args = p.parse_args(argv)
    if args.smoke:
        args.depth, args.width, args.fixed_depths, args.lambdas, args.tuned = 4, 8, [2], [4], [(4, 0.05, 0.5)]
        args.epochs, args.batch_size = 1, 16
        args.dataset = "digits" if args.dataset == "mnist5k" else args.dataset
    run_and_summarise(
        NAME, args, arms(args), argv=argv,
        title="shirakawa2018 (I): selection of layers (table 1, fig. 2)",
        figures=[("sum_theta.png", "Σθ over iterations, first seed of each adaptive arm (fig. 2)",
                  sum_theta_figure)],
        findings=findings,
        notes=[
            f"Space: {args.depth} hidden layers × {args.width} units, layers 2..{args.depth} skippable "
            f"(d = {args.depth - 1}). Budget: {args.epochs} epochs, N = {args.batch_size} examples per "
            "architecture and step, for every arm (the same number of iterations). Initialisation: "
            "LeCun's (Chainer's default, as the paper ran) unless the arm says He; θ in [1/d, 1 − 1/d] "
            "(the paper's range) unless the arm gives θmin.",
        ],
    )
    return 0


if __name__ == "__main__":
    from bayesnas.user_errors import report_user_errors

    raise SystemExit(report_user_errors(main))
