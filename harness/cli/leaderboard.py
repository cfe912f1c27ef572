"""`harness leaderboard RUN_DIR`: tables of methods x metrics, mean ± sd over replicates, with the
difference from the real-only baseline and significance markers; `--merge` adds other runs' records.
By default the headline (primary endpoints, utility, CAS, fidelity summary) in tables that fit 100
columns; `--metrics all` or a list gives the rest. `add_table_options` and `tables` serve `run` too."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.leaderboard import FORMATS, TESTS, WIDTH, load_summary, render
from harness.stats import BOOTSTRAP_B, CORRECTIONS


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("leaderboard", help="print the leaderboard of a run",
                              description="Methods x metrics per (dataset, scenario, classifier, split): mean ± sd "
                                          "over replicates, Δ from the real-only baseline and ▲/▼ where a two-level "
                                          "bootstrap (replicates, then test samples) finds it significant. How to "
                                          "read it: docs/leaderboards.md. Cells of RUN_DIR that failed or are "
                                          "missing are listed (stderr, and in md output); the exit status is then 1, "
                                          "with the output still written.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--merge", action="append", type=Path, default=[], metavar="PATH",
                   help="also include the rows of this published run folder or results.jsonl (repeatable) that "
                        "RUN_DIR lacks; a method both have (e.g. 'none') keeps the published rows, with a "
                        "warning where RUN_DIR's recomputed means differ beyond the metric's tolerance")
    p.add_argument("--prefer-run", action="store_true",
                   help="with --merge: for a method both have, keep RUN_DIR's rows instead of the published ones")
    add_table_options(p)
    p.add_argument("--output", type=Path, help="write to this file instead of stdout")
    p.add_argument("--publish", type=Path, metavar="DIR",
                   help="write a leaderboard folder instead: a .md and .csv per table, forest.csv (every Δ with "
                        "its CI and p), ranking.md/.csv (Friedman/Nemenyi across dataset x scenario blocks), "
                        "README.md, and the run's manifest and records")
    p.set_defaults(func=run)


def add_table_options(p: argparse.ArgumentParser) -> None:
    """The options of a printed leaderboard: columns, format, scale and the significance test."""
    p.add_argument("--metrics", metavar="headline|all|LIST",
                   help="columns: headline (the grid's primary endpoints, acc, auc, CAS and the fidelity summary, "
                        "cells mean (Δ marker); the default for md, html and latex), all (every metric, mean ± sd "
                        "(Δ marker); the default for csv and json, which `harness check` and scripts read), or a "
                        "comma-separated list of metric names")
    p.add_argument("--format", choices=FORMATS, default="md",
                   help=f"md (default; tables split into blocks that fit {WIDTH} columns), csv (the numeric summary "
                        "with a marker column per metric), html, json, latex (booktabs)")
    p.add_argument("--scale", choices=["fraction", "pct"], default="fraction",
                   help="pct shows scale-dependent metrics x100 (FairGen's tables)")
    p.add_argument("--significance", choices=TESTS, default="bootstrap",
                   help="paired test against the 'none' generator of each table from the stored predictions: "
                        "bootstrap = two-level bootstrap over replicates and test samples (default), paired-t or "
                        "wilcoxon over replicates, none (fastest: no Δ, no markers)")
    p.add_argument("--correction", choices=sorted(CORRECTIONS), default="holm",
                   help="multiplicity correction (default holm): primary endpoints over the whole run, other "
                        "metrics within their table")
    p.add_argument("--bootstrap-b", type=int, default=BOOTSTRAP_B, metavar="B",
                   help=f"test-sample resamples of the two-level bootstrap (default {BOOTSTRAP_B}; cost grows "
                        "linearly)")


def summary_of(args: argparse.Namespace, run_dir: Path, merge=(), prefer_run: bool = False):
    return load_summary(run_dir, merge, args.significance, args.correction, args.bootstrap_b, prefer_run=prefer_run)


def tables(summary, args: argparse.Namespace, gaps_markdown: str = "") -> str:
    """The leaderboard in the chosen format and columns; md fits WIDTH columns."""
    metrics = args.metrics or ("all" if args.format in ("csv", "json") else "headline")
    text = render(summary, args.format, args.scale, metrics, WIDTH if args.format == "md" else None)
    return text + ("\n" + gaps_markdown if args.format == "md" and gaps_markdown else "")


def run(args: argparse.Namespace) -> int:
    from harness import coverage

    summary = summary_of(args, args.run_dir, args.merge, args.prefer_run)
    gaps = coverage.gaps(args.run_dir)
    if args.publish:
        from harness.publish import publish
        written = publish(args.run_dir, args.publish, summary, f"Leaderboard: {args.run_dir.name}", args.scale)
        print(f"wrote {len(written)} files to {args.publish}")
    else:
        text = tables(summary, args, coverage.markdown(gaps, args.run_dir) if gaps else "")
        if args.output:
            args.output.write_text(text)
        else:
            print(text, end="")
    for line in coverage.report_lines(gaps, args.run_dir):
        print(line, file=sys.stderr)
    return 1 if gaps else 0
