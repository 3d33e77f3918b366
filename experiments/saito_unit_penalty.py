"""saito2018 §4.1 / fig. 1a / table 1: unit selection with a complexity penalty.

One bit per hidden unit of a 3 × 784 ReLU network, cost c = 1 per unit, penalty
ε0 ∈ {2⁻⁶, 2⁻⁷, 2⁻⁸, 2⁻⁹, 0, −2⁻³}; against fixed networks with units removed uniformly and
against dropout 0.5 on the full network. As in the paper the baselines take 2N examples per
step for twice the epochs (the same iterations and examples per step as the λ = 2 search).
Writes ``results.md`` (weight usage rate, test error, selected units per layer; mean ± std over
the seeds) and the usage / error trade-off (fig. 1a).

    python experiments/saito_unit_penalty.py             # CPU default: mnist5k
    python experiments/saito_unit_penalty.py --dataset mnist --epochs 500 --device cuda --seeds 5
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ERR, monotone_usage, run_and_summarise, tradeoff_figure, verdict  # noqa: E402

from bayesnas.methods.study import Arm, arm_options, base_config, study_parser  # noqa: E402

NAME = "saito_unit_penalty"
PENALTIES = {"2^-6": 2**-6, "2^-7": 2**-7, "2^-8": 2**-8, "2^-9": 2**-9, "0": 0.0, "-2^-3": -(2**-3)}

PAPER = """Table 1 (MNIST, 3 × 784 units; selected units per hidden layer):

| weight usage rate | 1st | 2nd | 3rd |
|---|---|---|---|
| 6.6 % (ε0 = 2⁻⁶) | 92 | 31 | 24 |
| 26.1 % (ε0 = 2⁻⁷) | 340 | 141 | 126 |
| 57.8 % (ε0 = 2⁻⁸) | 599 | 380 | 379 |
| 77.7 % (ε0 = 2⁻⁹) | 704 | 544 | 567 |
| 93.7 % (ε0 = 0) | 770 | 717 | 724 |
| 100 % (ε0 = −2⁻³) | 784 | 784 | 784 |

Fig. 1a: the method is more accurate than uniform removal from 25 % to 100 % weight usage and
deteriorates at about 6 %."""


def _weights(in_features: int, widths: list[int]) -> int:
    from bayesnas.models.unit_select import UnitSelectMLP

    return UnitSelectMLP.weights_of_widths(in_features, widths, 10)


def arms(args) -> list[Arm]:
    base = base_config(args, space="unit-select", batch_size=args.batch_size,
                       space_options={"depth": args.depth, "width": args.width})
    twice = dict(batch_size=2 * args.batch_size, epochs=2 * args.epochs, num_samples=1)
    out = [Arm(f"proposed ε0={k}", arm_options(base, num_samples=2, penalty=v))
           for k, v in PENALTIES.items() if k in args.penalties]
    out += [Arm(f"fixed width {w}", arm_options(base, method="fixed", space_options={"width": w}, **twice))
            for w in args.fixed_widths]
    out.append(Arm("dropout 0.5", arm_options(base, method="fixed", space_options={"dropout": 0.5}, **twice)))
    return out


def units_per_layer(layer: int):
    def get(run):
        return None if run.architecture is None else float(sum(run.architecture["units"][layer]))

    return (f"units layer {layer + 1}", get)


def usage_vs_full(args):
    """Weight usage relative to the full network (a narrower fixed net uses fewer of them)."""
    full = _weights(args.in_features, [args.width] * args.depth)

    def get(run):
        if run.results is None:
            return None
        own = _weights(args.in_features, [run.config["space_options"].get("width", args.width)] * args.depth)
        return run.results["weight_usage_rate"] * own / full

    return (USAGE, get)


USAGE = "weight usage (of the full net)"


def findings(stats) -> list[str]:
    proposed = [(k, stats[f"proposed ε0={k}"]) for k in PENALTIES if f"proposed ε0={k}" in stats]
    out = [monotone_usage(stats, list(PENALTIES), USAGE)]
    fixed = sorted((s[USAGE][0], s[ERR][0]) for k, s in stats.items() if k.startswith("fixed width"))
    for k, s in proposed:
        u, e = s[USAGE][0], s[ERR][0]
        if not 0.25 <= u <= 1.0 or len(fixed) < 2 or not fixed[0][0] <= u <= fixed[-1][0]:
            continue
        for (u0, e0), (u1, e1) in zip(fixed, fixed[1:], strict=False):
            if u0 <= u <= u1:
                uniform = e0 + (e1 - e0) * (u - u0) / (u1 - u0) if u1 > u0 else e0
                break
        out.append(f"ε0 = {k} at {u:.1%} usage is more accurate than uniform removal at the same usage "
                   f"(interpolated): {e:.4f} vs {uniform:.4f}, {verdict(e < uniform)}.")
    return out


def main(argv=None) -> int:
    p = study_parser(NAME, __doc__.splitlines()[0], epochs=15)
    p.add_argument("--batch-size", type=int, default=32, help="N per architecture of the search")
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--width", type=int, default=784)
    p.add_argument("--penalties", nargs="+", default=list(PENALTIES), choices=list(PENALTIES))
    p.add_argument("--fixed-widths", type=int, nargs="+", default=[784, 392, 196, 98, 49])
    args = p.parse_args(argv)
    args.in_features = 784 if args.dataset != "digits" else 64
    if args.smoke:
        args.depth, args.width, args.epochs, args.batch_size = 2, 16, 1, 16
        args.penalties, args.fixed_widths = ["2^-6", "0"], [16, 8]
        args.dataset = "digits" if args.dataset == "mnist5k" else args.dataset
        args.in_features = 64 if args.dataset == "digits" else args.in_features
    usage = usage_vs_full(args)

    def tradeoff(groups, path):
        return tradeoff_figure(groups, path, usage=usage[1],
                               x_label="weight usage rate (of the full network)")

    run_and_summarise(
        NAME, args, arms(args), argv=argv,
        title="saito2018 §4.1: unit selection with a complexity penalty (fig. 1a, table 1)",
        figures=[("tradeoff.png", "Test error against weight usage, mean ± std over seeds (fig. 1a)",
                  tradeoff)],
        metrics=[usage, *[units_per_layer(k) for k in range(args.depth)]],
        notes=[f"Space: {args.depth} hidden layers × {args.width} units, one bit per unit "
               f"(d = {args.depth * args.width}), c = 1; search N = {args.batch_size}, λ = 2, "
               f"{args.epochs} epochs; baselines N = {2 * args.batch_size}, {2 * args.epochs} epochs."],
        paper=PAPER, findings=findings,
    )
    return 0


if __name__ == "__main__":
    from bayesnas.user_errors import report_user_errors

    raise SystemExit(report_user_errors(main))
