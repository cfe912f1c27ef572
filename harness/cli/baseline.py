"""`harness baseline RUN_DIR --output FILE.csv [--drift-run RUN2]`: write a regression baseline
for `harness check`; RUN2 is the same grid run under another oneDNN ISA and thread count."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.cache import write_bytes_atomic
from harness.check import SPREAD_FACTOR, baseline_table, drift_report


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("baseline", help="write a baseline CSV (means, sds, drift, tolerances) for `harness check`")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--spread-factor", type=float, default=SPREAD_FACTOR,
                   help="k in tolerance = max(metric floor, k x sd x sqrt(2/n_seeds), drift) (default 3)")
    p.add_argument("--drift-run", type=Path, metavar="RUN2",
                   help="the same grid run with another ISA and thread count and its own cache "
                        "(e.g. ONEDNN_MAX_CPU_ISA=SSE41 OMP_NUM_THREADS=1): sets the drift term")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    table = baseline_table(args.run_dir, args.spread_factor, args.drift_run)
    write_bytes_atomic(args.output, table.to_csv(index=False, float_format="%.6g").encode())
    print(f"wrote {args.output}: {len(table)} rows", file=sys.stderr)
    if args.drift_run is not None:
        print(f"drift against {args.drift_run} (largest change of one record; tolerance: largest over cells):", file=sys.stderr)
        print(drift_report(table).to_string(index=False, float_format="%.4g"), file=sys.stderr)
    return 0
