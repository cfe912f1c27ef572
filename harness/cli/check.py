"""`harness check RUN_DIR --baseline FILE.csv`: fail when a metric regresses past tolerance."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.check import check


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("check", help="regression gate against a baseline leaderboard CSV")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--baseline", type=Path, required=True, help="CSV from `harness leaderboard --format csv`")
    p.add_argument("--tolerance", action="append", default=[], metavar="METRIC=VALUE",
                   help="override a metric's absolute tolerance")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = {}
    for item in args.tolerance:
        name, _, value = item.partition("=")
        overrides[name] = float(value)
    violations, compared = check(args.run_dir, args.baseline, overrides)
    for v in violations:
        print(f"REGRESSION {v}")
    status = "FAIL" if violations else "OK"
    print(f"{status}: {len(violations)} regression(s) in {compared} comparisons against {args.baseline}",
          file=sys.stderr)
    return 1 if violations else 0
