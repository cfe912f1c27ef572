"""Measure how hard an embedded dataset is for the small CNN (cpu config), as docs/datasets.md reports:
accuracy when trained on the natural split, and worst-group accuracy when trained on a group-balanced
split vs on the skew scenario the standard grid uses, each over seeds. Runs through the harness runner
(real-only cells), so the numbers are the leaderboard's own.

    python scripts/calibrate_datasets.py derm --param noise=0.1 --param cue=0.5 --seeds 3

Prints one line per setting (mean ± sd over seeds) and the checks of the calibration targets:
natural accuracy in [0.75, 0.90], skew lowers worst-group accuracy by >= 0.08 against balanced training.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from harness.grid import parse_grid
from harness.leaderboard import load_summary
from harness.runner import run_grid

#: the skew scenario each dataset's paper setting uses in the standard grid
SKEW = {"derm": "cap100", "histo": "one_site_per_class", "cxr": "cap100"}
#: equal group shares, same training size: the balanced comparison for the skew scenario
BALANCED = {"derm": ("tone_fractions", [1 / 3] * 3), "histo": ("site_fractions", [1 / 3] * 3),
            "cxr": ("sex_fractions", [0.5, 0.5])}
TARGET_ACC, TARGET_DROP = (0.75, 0.90), 0.08


def calibration_grid(dataset: str, params: dict, seeds: int) -> str:
    """The grid: the natural split and the skew scenario, and a group-balanced training set of the same size."""
    key, equal = BALANCED[dataset]
    text = f'name = "calibration-{dataset}"\nseeds = {seeds}\n'
    for label, extra, scenarios in ((dataset, {}, ["natural", SKEW[dataset]]),
                                    (f"{dataset}-balanced", {key: equal}, ["natural"])):
        text += (f'\n[[dataset]]\nname = "{dataset}"\nlabel = "{label}"\nscenarios = {json.dumps(scenarios)}\n'
                 f"params = {inline_table({**params, **extra})}\n")
    return text + '\n[[generator]]\nname = "none"\n\n[[classifier]]\nname = "small_cnn"\n'


def inline_table(values: dict) -> str:
    """A TOML inline table; numbers, strings and lists of them are written as JSON writes them."""
    return "{ " + ", ".join(f"{key} = {json.dumps(value)}" for key, value in values.items()) + " }"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=sorted(SKEW))
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="dataset parameter (JSON value), e.g. noise=0.1; the cpu config's size is the default")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "harness-calibration-cache")
    parser.add_argument("--out", type=Path, help="run folder (default: a temporary one)")
    args = parser.parse_args(argv)
    params = {"resolution": 16, "n_train": 2000}  # the cpu config
    for item in args.param:
        key, _, value = item.partition("=")
        params[key] = json.loads(value)
    grid = parse_grid(calibration_grid(args.dataset, params, args.seeds), f"<calibration {args.dataset}>")
    out = args.out or Path(tempfile.mkdtemp(prefix=f"calibration-{args.dataset}-"))
    summary = run_grid(grid, out, args.cache)
    if summary.failed:
        print(f"{len(summary.failed)} cells failed: {summary.failed[0]['error']}", file=sys.stderr)
        return 1
    table = load_summary(out).set_index(["dataset", "scenario"])
    row = lambda scenario, label=args.dataset: table.loc[(label, scenario)]  # noqa: E731
    natural, skew, balanced = row("natural"), row(SKEW[args.dataset]), row("natural", f"{args.dataset}-balanced")
    print(f"{args.dataset} {json.dumps(params)} seeds={args.seeds}")
    for name, r in (("natural", natural), (SKEW[args.dataset], skew), ("balanced", balanced)):
        print(f"  {name:>9}: acc {r['acc_mean']:.3f} ± {r['acc_sd']:.3f}, worst_acc {r['worst_acc_mean']:.3f} ± "
              f"{r['worst_acc_sd']:.3f}, auc {r['auc_mean']:.3f}")
    drop = balanced["worst_acc_mean"] - skew["worst_acc_mean"]
    acc_ok = TARGET_ACC[0] <= natural["acc_mean"] <= TARGET_ACC[1]
    print(f"  natural accuracy {natural['acc_mean']:.3f} in {list(TARGET_ACC)}: {'yes' if acc_ok else 'no'}; "
          f"worst-group drop balanced -> {SKEW[args.dataset]} {drop:+.3f} >= {TARGET_DROP}: "
          f"{'yes' if drop >= TARGET_DROP else 'no'}")
    return 0 if acc_ok and drop >= TARGET_DROP else 3


if __name__ == "__main__":
    sys.exit(main())
