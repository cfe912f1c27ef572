"""`harness publish RUN_DIR [--out DIR] [--hub REPO]`: a run's published leaderboard folder with
records.parquet and a dataset card, pushed to a Hugging Face dataset repository with --hub."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("publish", help="write a run's leaderboard folder for the Hub; --hub pushes it",
                              description="Write the published leaderboard folder of RUN_DIR (the tables, ranking, "
                                          "manifest and records of `harness leaderboard --publish`, plus "
                                          "records.parquet and a dataset card) and, with --hub, upload it. Pushing "
                                          "needs a Hub token with write access: HF_TOKEN, or `huggingface-cli login`.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, help="folder to write (default: RUN_DIR-hub beside the run folder)")
    p.add_argument("--hub", metavar="REPO", help="push the folder to this dataset repository, e.g. user/my-leaderboard")
    p.add_argument("--title", help="the card's title (default: Leaderboard: RUN_DIR's name)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness import records
    from harness.hub import hub_folder, push
    from harness.leaderboard import load_summary

    records.refuse_limited(args.run_dir, "published")  # before the bootstrap, which takes a while
    out = args.out or args.run_dir.parent / f"{args.run_dir.name}-hub"
    written = hub_folder(args.run_dir, out, load_summary(args.run_dir), args.title or f"Leaderboard: {args.run_dir.name}")
    print(f"wrote {len(written)} files to {out}")
    if args.hub:
        print(f"pushed to https://huggingface.co/datasets/{args.hub}: {push(out, args.hub)}")
    return 0
