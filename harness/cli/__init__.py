"""The `harness` command: a thin face over the runner, the leaderboard and the registry.

One module per verb (harness/cli/<verb>.py, dashes as underscores); each defines
`add_parser(subparsers)` and sets `func` on its parser. Only the verb being run is imported, so
`harness --help` and light verbs start without torch, the plugins or matplotlib: a verb module
imports what only its `run` needs inside `run`. A new verb is one module and one line in VERBS.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: verb -> the one-line help `harness --help` lists (the verb's own parser says the same; tested)
VERBS = {
    "run": "run a grid and print its leaderboard",
    "ls": "list plugins (kind, version, configs, origin)",
    "leaderboard": "print the leaderboard of a run",
    "curves": "metric-vs-ratio curves of a ratio-sweep run, as CSV",
    "check": "regression gate against a baseline leaderboard CSV",
    "validate-plugin": "run a plugin against its contract on tiny data",
    "describe": "per-group / per-class counts of a dataset, before and after a scenario",
    "report": "write a static HTML report (findings, forest plot, plots, tables)",
    "compare": "diff two leaderboards (run folders or CSVs) cell by cell",
    "baseline": "write a baseline CSV (means, sds, drift, tolerances) for `harness check`",
    "publish": "write a run's leaderboard folder for the Hub; --hub pushes it",
    "export": "write a run's synthetic sets (and generator weights) as a Hub dataset",
}


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The full parser of `verb` (every verb when None); the other verbs are listed by name and
    help only, so their modules are not imported."""
    parser = argparse.ArgumentParser(prog="harness", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, summary in VERBS.items():
        if verb is None or name == verb:
            importlib.import_module(f"harness.cli.{name.replace('-', '_')}").add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=summary, add_help=False)
    return parser


def add_plugin_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugins", action="append", default=[], metavar="FILE",
                        help="a Python file with plugins to load (repeatable)")
    parser.add_argument("--block", action="append", default=[], metavar="NAME",
                        help="skip a plugin or an entry point by name (repeatable)")


def _verb(argv: list[str]) -> str:
    """The verb named on the command line ("" when none: then only the verb list is needed)."""
    first = next((arg for arg in argv if not arg.startswith("-")), "")
    return first if first in VERBS else ""


def _user_errors() -> tuple[type[BaseException], ...]:
    from harness.contracts import ConfigError
    from harness.data import DataError
    from harness.registry import PluginError

    return ConfigError, PluginError, DataError, FileNotFoundError, ValueError, KeyError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_verb(argv) or "-").parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _user_errors() as exc:
        from harness.contracts import ConfigError

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
