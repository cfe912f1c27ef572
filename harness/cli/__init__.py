"""The `harness` command: a thin face over the runner, the leaderboard and the registry.

One module per verb; each defines `add_parser(subparsers)` and sets `func` on its parser.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from harness.contracts import ConfigError
from harness.data import DataError
from harness.registry import PluginError

VERBS = ("run", "ls", "leaderboard", "curves", "check", "validate_plugin", "describe", "report", "compare",
         "baseline")
USER_ERRORS = (ConfigError, PluginError, DataError, FileNotFoundError, ValueError, KeyError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in VERBS:
        importlib.import_module(f"harness.cli.{verb}").add_parser(subparsers)
    return parser


def add_plugin_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugins", action="append", default=[], metavar="FILE",
                        help="a Python file with plugins to load (repeatable)")
    parser.add_argument("--block", action="append", default=[], metavar="NAME",
                        help="skip a plugin or an entry point by name (repeatable)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        message = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
        lines = message.splitlines() or [""]
        for line in lines:  # a config check reports every mistake it found, one line each
            print(f"error: {line}", file=sys.stderr)
        if isinstance(exc, ConfigError) and len(lines) > 1:
            print(f"{len(lines)} errors; fix them and rerun", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
