"""`harness baseline RUN_DIR --output FILE.csv`: write a regression baseline for `harness check`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.cache import write_bytes_atomic
from harness.check import baseline_table


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("baseline", help="write a baseline CSV (means, sds, tolerances) for `harness check`")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--spread-factor", type=float, default=3.0,
                   help="tolerance = max(metric default, FACTOR x sd x sqrt(2/n_seeds)) (default 3)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    table = baseline_table(args.run_dir, args.spread_factor)
    write_bytes_atomic(args.output, table.to_csv(index=False, float_format="%.6g").encode())
    print(f"wrote {args.output}: {len(table)} rows", file=sys.stderr)
    return 0
