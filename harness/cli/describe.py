"""`harness describe DATASET`: per-group / per-class counts before and after a skew scenario."""
from __future__ import annotations

import argparse
import json

from harness.cli import add_plugin_options
from harness.describe import describe
from harness.registry import Registry


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("describe", help="per-group / per-class counts of a dataset, before and after a scenario")
    p.add_argument("dataset", help="dataset plugin name (see harness ls)")
    p.add_argument("--root", help="data folder, for the real-data loaders")
    p.add_argument("--scenario", help="a skew scenario of the dataset, e.g. cap100")
    p.add_argument("--seed", type=int, default=0, help="data and scenario seed (default 0)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a dataset parameter, VALUE read as JSON when it parses (repeatable), e.g. --param resolution=16")
    add_plugin_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    params = dict(parse_param(item) for item in args.param)
    if args.root:
        params["root"] = args.root
    dataset = Registry(args.plugins, args.block).create("dataset", args.dataset, params)
    print(describe(dataset, args.scenario, args.seed))
    return 0


def parse_param(item: str) -> tuple[str, object]:
    key, sep, value = item.partition("=")
    if not sep:
        raise ValueError(f"--param needs KEY=VALUE, got '{item}'")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
