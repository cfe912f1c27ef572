"""`harness curves RUN_DIR`: the curve data of a ratio sweep (metric vs synthetic:real ratio, with
the 95% CI of each point's difference from the real-only baseline) as CSV, optionally a PNG per metric."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.leaderboard import TESTS
from harness.stats import BOOTSTRAP_B


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("curves", help="metric-vs-ratio curves of a ratio-sweep run, as CSV",
                              description="One row per (dataset, scenario, classifier, split, generator, "
                                          "strategy, ratio, metric): mean and sd over replicates, and the "
                                          "difference from the real-only baseline (ratio 0) with its 95%% CI "
                                          "and adjusted p. Sweep the ratio in a grid with ratio = [0.25, 0.5, "
                                          "1, 2, 4, 8]; how to read the curves: docs/leaderboards.md.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--metric", action="append", default=[], metavar="NAME",
                   help="a metric to include (repeatable; default every metric of the records)")
    p.add_argument("--significance", choices=TESTS, default="bootstrap",
                   help="the test behind the CIs (as for `harness leaderboard`); none gives means only")
    p.add_argument("--bootstrap-b", type=int, default=BOOTSTRAP_B, metavar="B")
    p.add_argument("--output", type=Path, help="write the CSV here instead of stdout")
    p.add_argument("--figures", type=Path, metavar="DIR", help="also draw one PNG per --metric into DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.curves import curve_figure, ratio_curves

    curves = ratio_curves(args.run_dir, args.metric, args.significance, args.bootstrap_b)
    text = curves.to_csv(index=False)
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        import matplotlib.pyplot as plt

        for metric in args.metric or sorted(curves["metric"].unique()):
            figure = curve_figure(curves, metric, f"{args.run_dir.name}: {metric}")
            figure.savefig(args.figures / f"{metric}.png", dpi=110)
            plt.close(figure)
    return 0
