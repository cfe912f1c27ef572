"""`harness report RUN_DIR`: a self-contained HTML report with tables and plots."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness import coverage
from harness.cache import write_bytes_atomic
from harness.report import build_report


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("report", help="write a static HTML report (tables, plots, sample grids)",
                              description="Write a static HTML report. Failed and missing cells are listed in it "
                                          "and on stderr; the exit status is then 1, with the report still written.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--output", type=Path, help="default: RUN_DIR/report.html")
    p.add_argument("--cache", type=Path, help="artifact cache for the sample grids (default: the run's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    target = args.output or args.run_dir / "report.html"
    write_bytes_atomic(target, build_report(args.run_dir, args.cache).encode())
    print(f"wrote {target}", file=sys.stderr)
    gaps = coverage.gaps(args.run_dir)
    for line in coverage.report_lines(gaps, args.run_dir):
        print(line, file=sys.stderr)
    return 1 if gaps else 0
