"""`harness leaderboard RUN_DIR`: tables of methods x metrics, mean ± sd over seeds."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.leaderboard import load_summary, render


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("leaderboard", help="print the leaderboard of a run")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--format", choices=["md", "csv", "html"], default="md")
    p.add_argument("--scale", choices=["fraction", "pct"], default="fraction",
                   help="pct shows scale-dependent metrics x100 (FairGen's tables)")
    p.add_argument("--output", type=Path, help="write to this file instead of stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    text = render(load_summary(args.run_dir), args.format, args.scale)
    if args.output:
        args.output.write_text(text)
    else:
        print(text, end="")
    return 0
