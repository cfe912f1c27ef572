"""The one place below the CLI that talks to the terminal: progress bars and warnings."""
from __future__ import annotations

import sys

from tqdm import tqdm

QUIET = False


def bar(total: int, desc: str = "") -> tqdm:
    return tqdm(total=total, desc=desc, unit="cell", file=sys.stderr, disable=QUIET, dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}] {postfix}")


def warn(message: str) -> None:
    tqdm.write(f"warning: {message}", file=sys.stderr)


def info(message: str) -> None:
    if not QUIET:
        tqdm.write(message, file=sys.stderr)
