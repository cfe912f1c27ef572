"""`harness ls`: list plugins with kind, version and origin, from plugin manifests where packages ship
one (harness.registry), so listing imports no plugin module."""
from __future__ import annotations

import argparse

from tabulate import tabulate

from harness.cli import add_plugin_options
from harness.registry import Registry


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("ls", help="list plugins (kind, version, configs, origin)")
    p.add_argument("--kind", choices=["dataset", "generator", "classifier"], help="only this kind")
    p.add_argument("--datasets", action="store_true",
                   help="datasets with their attributes, classes, default sizes and scenarios")
    add_plugin_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    registry = Registry(args.plugins, args.block)
    if args.datasets:
        from harness.describe import dataset_overview  # imports the dataset plugins

        print(dataset_overview([info.cls for info in registry.all() if info.kind == "dataset"]))
        return 0
    rows = [[p.kind, p.name, p.version, ", ".join(sorted(p.configs)), p.origin]
            for p in registry.all() if not args.kind or p.kind == args.kind]
    print(tabulate(rows, headers=["kind", "name", "version", "configs", "origin"]))
    return 0
