"""`harness run [GRID]`: run a grid (a TOML file or a built-in name; default: smoke)."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from harness import coverage, progress, records
from harness.cache import write_bytes_atomic
from harness.cli import add_plugin_options
from harness.cli.leaderboard import add_table_options, summary_of, tables
from harness.devices import check_device_name
from harness.grid import Cell, ConfigErrors, Grid, add_entries, apply_overrides, load_grid, parse_only
from harness.leaderboard import run_markdown
from harness.registry import Registry
from harness.runner import plan_cells, run_grid

LEADERBOARD = "leaderboard.md"  # written into the run folder
DEFAULT_CACHE = Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "harness"))


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("run", help="run a grid and print its leaderboard",
                              description="Run every cell of a grid; cached stages are reused, so a rerun only "
                                          "computes what is missing and an interrupted run resumes. Prints the "
                                          "headline leaderboard and writes OUT/leaderboard.md (headline, then "
                                          "every metric).")
    p.add_argument("grid", nargs="?", default="smoke", help="grid file, or a built-in grid name (default: smoke)")
    p.add_argument("--out", type=Path, help="run folder (default: runs/<grid name>)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"artifact cache (default: {DEFAULT_CACHE}; env HARNESS_CACHE)")
    p.add_argument("--executor", choices=("serial", "process", "ray"),
                   help="serial, process (local pool) or ray (pip install 'fairgen-harness[ray]'); "
                        "default: the grid's `executor` key, else serial")
    p.add_argument("--workers", type=int,
                   help="worker processes for --executor process; CPUs of the local Ray instance for ray "
                        "(default: the grid's `workers` key, else 2)")
    p.add_argument("--address", help="with --executor ray: join this Ray cluster (e.g. auto, or HOST:6379) "
                                     "instead of starting a local instance; cache and --out must be on a "
                                     "filesystem that every node shares")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="device for plugins that take a `device` parameter (default: auto = cuda if present)")
    p.add_argument("--retries", type=int, default=0,
                   help="rerun a failed cell (or, with ray, a cell whose worker died) up to this many times")
    p.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                   help="run a part of the grid, e.g. --only dataset=derm --only generator=none,oversample")
    p.add_argument("--add-generator", action="append", default=[], metavar="NAME",
                   help="add a generator (e.g. your plugin) to the grid, on every dataset and scenario; "
                        "combine with --only generator=none,NAME to run just it and the real-only baseline")
    p.add_argument("--add-classifier", action="append", default=[], metavar="NAME",
                   help="add a classifier (e.g. your plugin) to the grid, on every dataset and scenario")
    p.add_argument("--limit", type=int, default=0, metavar="N",
                   help="a quick end-to-end check of new plugins: N images per split, plugins' `limit_params` "
                        "(few steps); the run is marked limited and cannot be published or used as a baseline")
    p.add_argument("--param", action="append", default=[], metavar="LABEL.KEY=VALUE",
                   help="set a plugin parameter of a grid entry, e.g. --param covid.root=/data/covid-chestxray")
    p.add_argument("--dry-run", action="store_true",
                   help="make every check a run makes (plugins, parameters, scenarios, --param, --only), "
                        "report all config errors (exit 2), else print the cells and exit")
    p.add_argument("--exit-on-error", action="store_true", help="stop at the first failing cell")
    p.add_argument("--quiet", action="store_true", help="no progress bar or printed leaderboard")
    add_table_options(p)
    add_plugin_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    grid, only, cells = plan(args)
    if args.dry_run:
        for cell in cells:
            print(f"{cell.id} #s{cell.seed_index}")
        print(f"{len(cells)} cells", file=sys.stderr)
        return 0
    progress.QUIET = args.quiet
    out = args.out or Path("runs") / (grid.name + (f"-limit{args.limit}" if args.limit else ""))
    executor = args.executor or grid.executor
    workers = args.workers or grid.workers
    try:
        summary = run_grid(grid, out, args.cache, executor, workers, args.plugins, args.block, only,
                           args.exit_on_error, device=args.device, retries=args.retries,
                           address=args.address, limit=args.limit)
    except KeyboardInterrupt:
        done = len({r["cell_key"] for r in records.load(out) if r.get("status") == "ok"})
        print(f"interrupted: the cells in flight were stopped; {done} of {len(cells)} cells are done in {out}. "
              f"To resume, run the same command again: {shlex.join(['harness', *sys.argv[1:]])}", file=sys.stderr)
        return 130
    written = leaderboard(args, grid, out)
    print(f"{summary.cells} cells: {summary.computed} computed, {summary.reused} reused from {out}, "
          f"{len(summary.failed)} failed; {summary.wall_s:.1f} s"
          + (f"; leaderboard: {out / LEADERBOARD}" if written else ""), file=sys.stderr)
    if args.limit:
        print(f"LIMITED RUN (--limit {args.limit}): a check that every stage runs, not a result", file=sys.stderr)
    for failure in summary.failed:
        print(f"  FAILED {failure['cell_id']} #s{failure['seed_index']}: {failure['error']}", file=sys.stderr)
    return 1 if summary.failed else 0


def leaderboard(args: argparse.Namespace, grid: Grid, out: Path) -> bool:
    """Write OUT/leaderboard.md (headline, every metric, failed and missing cells) and print the
    tables unless --quiet; False when no cell succeeded (the failures printed after say why)."""
    try:
        board = summary_of(args, out)
    except FileNotFoundError:
        return False
    gaps = coverage.gaps(out)
    text = run_markdown(board, f"Leaderboard: {grid.name}", args.scale)
    write_bytes_atomic(out / LEADERBOARD, (text + ("\n" + coverage.markdown(gaps, out) if gaps else "")).encode())
    if not args.quiet:
        print(tables(board, args), end="")
    return True


def plan(args: argparse.Namespace) -> tuple[Grid, dict, list[Cell]]:
    """Every check a run makes, before it makes a folder: the grid, --add-generator, --param,
    --only, --device, plugins, parameters and scenarios. All config errors are raised together."""
    grid = load_grid(args.grid)
    errors, only = ConfigErrors(), {}
    with errors.collect():
        add_entries(grid, "generator", args.add_generator)
        add_entries(grid, "classifier", args.add_classifier)
    with errors.collect():
        apply_overrides(grid, args.param)
    with errors.collect():
        only = parse_only(args.only)
    with errors.collect():
        check_device_name(args.device)
    cells: list[Cell] = []
    with errors.collect():
        cells = plan_cells(grid, Registry(args.plugins, args.block), only)
    errors.raise_if_any()
    return grid, only, cells
