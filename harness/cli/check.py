"""`harness check RUN_DIR --baseline FILE.csv`: fail when a metric regresses past tolerance."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.check import NOISE, REGRESSION, CheckResult, check


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("check", help="regression gate against a baseline leaderboard CSV")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--baseline", type=Path, required=True, help="CSV from `harness baseline RUN`")
    p.add_argument("--tolerance", action="append", default=[], metavar="METRIC=VALUE",
                   help="override a metric's tolerance for every cell (in the metric's units)")
    p.add_argument("--complete", action="store_true",
                   help="also fail when the run lacks cells of the baseline (default: compare the cells it has)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = {}
    for item in args.tolerance:
        name, _, value = item.partition("=")
        overrides[name] = float(value)
    result = check(args.run_dir, args.baseline, overrides, complete=args.complete)
    for v in result.violations:
        print(f"{'NOISE' if v.kind == NOISE else 'REGRESSION'} {v}")
    if result.missing and args.complete:
        print(f"MISSING {len(result.missing)} baseline cell(s) not in the run: {', '.join(result.missing)}")
    print(summary_line(result, args.baseline), file=sys.stderr)
    return 1 if result.failed else 0


def summary_line(result: CheckResult, baseline: Path) -> str:
    noise = sum(v.kind == NOISE for v in result.violations)
    regressions = sum(v.kind == REGRESSION for v in result.violations)
    undefined = len(result.violations) - noise - regressions
    text = (f"{'FAIL' if result.failed else 'OK'}: {len(result.violations)} metric(s) past tolerance in "
            f"{result.compared} comparisons against {baseline}")
    if result.violations:
        text += (f" ({regressions} beyond the replicate spread, {noise} inside it"
                 + (f", {undefined} undefined" if undefined else "") + ")")
    if result.missing:
        text += (f"; {len(result.missing)} baseline cell(s) missing from the run"
                 + (" (--complete)" if result.complete else ", not compared (--complete makes them fail)"))
    return text
