"""`harness compare A B`: what changed between two leaderboards, and whether it is significant."""
from __future__ import annotations

import argparse
from pathlib import Path

from tabulate import tabulate

from harness.compare import ROW_KEYS, compare


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("compare", help="diff two leaderboards (run folders or CSVs) cell by cell")
    p.add_argument("a", type=Path, help="the reference: run folder or leaderboard CSV")
    p.add_argument("b", type=Path, help="the new one")
    p.add_argument("--all", action="store_true", help="also list unchanged metrics")
    p.add_argument("--format", choices=["md", "csv"], default="md")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    table = compare(args.a, args.b)
    if not args.all:
        table = table[table["change"] != "same"]
    if args.format == "csv":
        print(table.to_csv(index=False, float_format="%.6g"), end="")
        return 0
    shown = [[*(r[k] for k in ROW_KEYS), r["metric"], f"{r['a']:.4f}", f"{r['b']:.4f}", f"{r['delta']:+.4f}",
              r["change"], "n/a" if r["p_holm"] != r["p_holm"] else f"{r['p_holm']:.3g}" + (" *" if r["significant"] else "")]
             for _, r in table.iterrows()]
    print(tabulate(shown, headers=[*ROW_KEYS, "metric", "A", "B", "B − A", "change", "p (Holm)"], tablefmt="github"))
    worse = table[(table["change"] == "worse") & table["significant"]]
    print(f"\n{len(table)} changed values; {int(table['significant'].sum())} significant "
          f"({len(worse)} significantly worse) after Holm correction")
    return 0
