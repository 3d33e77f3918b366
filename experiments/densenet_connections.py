"""shirakawa2018 (IV) / saito2018 §4.2: connection selection in DenseNet, with a complexity penalty.

One bit per connection inside each dense block (d = 273 for DenseNet-40, k = 12), cost cᵢ = the
weights the connection feeds; the penalty ε0 trades accuracy for weights. Against the normal
DenseNet (every connection). Writes ``results.md`` (selected connections per block, weight usage
rate, test errors; mean ± std over the seeds) and the usage / error trade-off (saito2018 fig. 1b).

    python experiments/densenet_connections.py              # CPU default: narrow DenseNet, mnist5k
    python experiments/densenet_connections.py --dataset cifar10 --growth 12 --layers-per-block 12 \\
        --stem-channels 16 --epochs 300 --batch-size 64 --device cuda --seeds 5   # the papers' scale
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ERR, monotone_usage, run_and_summarise, tradeoff_figure, verdict  # noqa: E402

from bayesnas.methods.study import Arm, arm_options, base_config, study_parser  # noqa: E402

NAME = "densenet_connections"
PENALTIES = {"2^-2": 2**-2, "2^-3": 2**-3, "2^-4": 2**-4, "2^-5": 2**-5, "2^-6": 2**-6, "0": 0.0,
             "-2^0": -1.0}

PAPER = """shirakawa2018 table 4 (DenseNet-40, k = 12, test error %): AdaptiveConnection 5.427
(0.167) deterministic / 5.399 (0.153) stochastic on CIFAR-10, 25.461 / 25.315 on CIFAR-100;
normal DenseNet 5.050 (0.147) and 25.518 (0.380). About 70 of 273 connections removed.

saito2018 table 2 (CIFAR-10; weight usage rate and connections kept in the 1st block, of 91;
the other blocks' columns are not legible in our text copy of the paper): 15.8 % / 36 (ε0 = 2⁻²),
24.1 % / 45 (2⁻³), 42.3 % / 57 (2⁻⁴), 67.5 % / 59 (2⁻⁵), 80.3 % / 65 (2⁻⁶), 100 % / 91 (−2⁰)."""


def arms(args) -> list[Arm]:
    options = {"growth": args.growth, "layers_per_block": args.layers_per_block,
               "stem_channels": args.stem_channels}
    base = base_config(args, space="densenet-connections", batch_size=args.batch_size, lr=args.lr,
                       space_options=options)
    twice = dict(batch_size=2 * args.batch_size, epochs=2 * args.epochs, num_samples=1)
    out = [Arm(f"proposed ε0={k}", arm_options(base, num_samples=2, penalty=v))
           for k, v in PENALTIES.items() if k in args.penalties]
    out.append(Arm("normal DenseNet", arm_options(base, method="fixed", fixed_value=1, **twice)))
    return out


def kept(block: int):
    def get(run):
        if run.architecture is None:
            return None
        return float(sum(run.architecture[f"block{block}.connections"]))

    return (f"connections kept, block {block}", get)


def tradeoff(groups, path):
    return tradeoff_figure(groups, path, usage=lambda r: r.results["weight_usage_rate"])


def findings(stats) -> list[str]:
    normal = stats["normal DenseNet"][ERR][0]
    out = [monotone_usage(stats, list(PENALTIES), "weight usage rate")]
    if "proposed ε0=0" in stats:
        e = stats["proposed ε0=0"][ERR][0]
        out.append(f"Without penalty the searched DenseNet is close to the normal one (shirakawa2018: "
                   f"5.43 % vs 5.05 % on CIFAR-10): {e:.4f} vs {normal:.4f}, "
                   f"{verdict(e <= 1.1 * normal)} (within 10 %).")
    return out


def main(argv=None) -> int:
    p = study_parser(NAME, __doc__.splitlines()[0], epochs=8)
    p.add_argument("--batch-size", type=int, default=32, help="N per architecture of the search")
    p.add_argument("--growth", type=int, default=6, help="k (DenseNet-40: 12)")
    p.add_argument("--layers-per-block", type=int, default=4, help="DenseNet-40: 12")
    p.add_argument("--stem-channels", type=int, default=12, help="DenseNet-40: 16")
    p.add_argument("--lr", type=float, default=0.1, help="initial weight learning rate (the papers: 0.1)")
    p.add_argument("--penalties", nargs="+", default=["2^-2", "0"], choices=list(PENALTIES))
    # The model average costs one pass per sampled architecture: 20 keep the CPU default in 15 min.
    p.set_defaults(stochastic_samples=20)
    args = p.parse_args(argv)
    if args.smoke:
        args.growth, args.layers_per_block, args.stem_channels, args.epochs, args.batch_size = 2, 2, 4, 1, 16
        args.penalties = ["2^-2", "0"]
        args.dataset = "digits" if args.dataset == "mnist5k" else args.dataset
    per_block = (args.layers_per_block + 1) * (args.layers_per_block + 2) // 2
    run_and_summarise(
        NAME, args, arms(args), argv=argv,
        title="DenseNet connection selection (shirakawa2018 table 4, saito2018 fig. 1b / table 2)",
        figures=[("tradeoff.png",
                  "Test error against weight usage, mean ± std over seeds (saito2018 fig. 1b)", tradeoff)],
        metrics=[kept(b) for b in range(1, 4)],
        notes=[f"Space: DenseNet with 3 blocks of {args.layers_per_block} layers, growth k = {args.growth}, "
               f"{per_block} connection bits per block (d = {3 * per_block}); search N = {args.batch_size}, "
               f"λ = 2, {args.epochs} epochs; normal DenseNet N = {2 * args.batch_size}, "
               f"{2 * args.epochs} epochs."],
        paper=PAPER, findings=findings,
    )
    return 0


if __name__ == "__main__":
    from bayesnas.user_errors import report_user_errors

    raise SystemExit(report_user_errors(main))
