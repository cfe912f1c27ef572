"""`harness report RUN_DIR`: a self-contained HTML report that leads with the findings; `--merge`
puts the records of published runs beside the run's own."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness import coverage
from harness.cache import write_bytes_atomic
from harness.leaderboard import TESTS
from harness.stats import BOOTSTRAP_B


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("report", help="write a static HTML report (findings, forest plot, plots, tables)",
                              description="Write a static HTML report: the findings on the primary endpoints, a "
                                          "forest plot of every difference from the real-only baseline with its 95% "
                                          "CI, per-table plots and sample grids, and the full tables (collapsed). "
                                          "Failed and missing cells are listed in it and on stderr; the exit status "
                                          "is then 1, with the report still written. How to read it: "
                                          "docs/leaderboards.md.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--merge", action="extend", nargs="+", type=Path, default=[], metavar="PATH",
                   help="also show the rows of these published run folders or results.jsonl files that RUN_DIR "
                        "lacks (e.g. leaderboards/standard), as `harness leaderboard --merge`")
    p.add_argument("--output", type=Path, help="default: RUN_DIR/report.html")
    p.add_argument("--cache", type=Path, help="artifact cache for the sample grids (default: the run's)")
    p.add_argument("--significance", choices=TESTS, default="bootstrap",
                   help="test behind the Δ, CIs and markers, as `harness leaderboard` (default bootstrap)")
    p.add_argument("--bootstrap-b", type=int, default=BOOTSTRAP_B, metavar="B",
                   help=f"test-sample resamples of the two-level bootstrap (default {BOOTSTRAP_B})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.report import build_report  # matplotlib: loaded for this command only

    target = args.output or args.run_dir / "report.html"
    page = build_report(args.run_dir, args.cache, args.merge, args.significance, args.bootstrap_b)
    write_bytes_atomic(target, page.encode())
    print(f"wrote {target}", file=sys.stderr)
    gaps = coverage.gaps(args.run_dir)
    for line in coverage.report_lines(gaps, args.run_dir):
        print(line, file=sys.stderr)
    return 1 if gaps else 0
