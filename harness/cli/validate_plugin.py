"""`harness validate-plugin NAME`: check a plugin against its contract and its behaviour on tiny data
(PASS / WARN / FAIL per check; exit 1 when any check fails)."""
from __future__ import annotations

import argparse
import json

from harness.cli import add_plugin_options
from harness.registry import Registry
from harness.validate import WARNING, validate_plugin


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("validate-plugin", help="run a plugin against its contract on tiny data")
    p.add_argument("name")
    p.add_argument("--kind", choices=["dataset", "generator", "classifier"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="plugin parameter (JSON value, else string), e.g. --set steps=20")
    add_plugin_options(p)
    p.set_defaults(func=run)


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def run(args: argparse.Namespace) -> int:
    params = {k: _value(v) for k, _, v in (item.partition("=") for item in args.set)}
    results = validate_plugin(Registry(args.plugins, args.block), args.name, params, args.kind)
    for check, outcome in results:
        if outcome == "ok":
            print(f"PASS  {check}")
        elif outcome.startswith(WARNING):
            print(f"WARN  {check}\n      {outcome.removeprefix(WARNING)}")
        else:
            print(f"FAIL  {check}\n      {outcome}")
    warned = sum(outcome.startswith(WARNING) for _, outcome in results)
    failed = sum(outcome != "ok" for _, outcome in results) - warned
    print(f"{len(results) - failed - warned} passed, {failed} failed" + (f", {warned} warning(s)" if warned else ""))
    return 1 if failed else 0
