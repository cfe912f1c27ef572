"""Conditioning check: does each generator make the requested class and group?

Trains each generator (its cpu config by default) on a dataset's real training split ("derm",
cpu config, 16 px by default), asks for the same number of images of every (class × group) cell,
and lets the harness's fixed judges (harness.metrics.judge: logistic heads on frozen features,
trained on the real training split) read class and group back: raw and corrected fidelity per
requested group with Wilson intervals, the worst group, the chi-square test of judged vs requested
group, and any disagreement between the judges. The same probe is the leaderboard's attribute
fidelity and `validate-plugin`'s behavioural check (docs/metrics.md, "Attribute fidelity").

    python scripts/check_conditioning.py ddpm medi cbdm --out results.json
    python scripts/check_conditioning.py 'cbdm:{"tau": 0.5}' --vary '{"guidance_scale": 2.6}' '{"guidance_scale": 4}'
    python scripts/check_conditioning.py --table results.json

`--vary` samples the one fitted generator again with each parameter override (a guidance sweep,
skindiff's strength); every setting is a row of its own.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from harness.data import ImageSet, Splits
from harness.metrics.attribute_fidelity import attribute_fidelity_report
from harness.metrics.judge import DEFAULT_FAMILIES, Judge, fit_judges, requested_set
from harness.records import to_json_value
from harness.registry import Registry


def every_cell(train: ImageSet, attribute: str, per_cell: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """per_cell requests of every (class, group) pair, class-major."""
    groups = len(train.attribute_vocab[attribute])
    cells = np.array([(y, g) for y in range(train.num_classes) for g in range(groups)])
    rows = np.repeat(cells, per_cell, axis=0)
    return rows[:, 0], {attribute: rows[:, 1]}


def parse_generator(text: str) -> tuple[str, dict]:
    """'name' or 'name:{"param": value}'."""
    name, _, params = text.partition(":")
    return name, json.loads(params) if params else {}


def check_generator(registry: Registry, text: str, splits: Splits, judges: list[Judge], per_cell: int, seed: int,
                    config: str = "cpu", vary: list[dict] = (), cache_dir: Path | None = None) -> list[dict]:
    """Fit one generator and judge its samples, once per `vary` setting (or once as configured)."""
    name, params = parse_generator(text)
    configs = registry.get("generator", name).cls.configs
    generator = registry.create("generator", name, {"config": config, **params} if config in configs else params)
    train, attribute = splits.train, judges[0].attribute
    started = time.perf_counter()
    generator.fit(train, seed, splits.unlabeled)
    fit_s = time.perf_counter() - started
    labels, attributes = every_cell(train, attribute, per_cell)
    out = []
    for setting in vary or [{}]:
        generator.params.update(setting)
        started = time.perf_counter()
        images = generator.sample(labels, attributes, seed + 1)
        sample_s = time.perf_counter() - started
        report = attribute_fidelity_report(judges, requested_set(images, labels, attributes, train), cache_dir)
        out.append({"generator": name, "params": {**params, **setting}, "fit_s": round(fit_s, 1),
                    "sample_s": round(sample_s, 1), "n": len(images), "stats": dict(getattr(generator, "stats", {})),
                    **report})
    return out


def markdown_table(results: list[dict]) -> str:
    """One row per (generator, setting): the primary judge's fidelities, corrected in brackets."""
    rows = ["| generator | params | class fidelity (adj.) | attr. fidelity (adj.) | worst group attr. (adj.) | "
            "independence p | judges disagree on |", "|---" * 7 + "|"]
    for r in results:
        m, primary = r["metrics"], r["judges"][r["primary"]]
        pct = lambda v: "n/a" if v is None or v != v else f"{v:.0%}"  # noqa: E731
        rows.append(f"| `{r['generator']}` | {json.dumps(r['params']) if r['params'] else ''} | "
                    f"{pct(m['class_fidelity'])} ({pct(m['class_fidelity_adj'])}) | "
                    f"{pct(m['attr_fidelity'])} ({pct(m['attr_fidelity_adj'])}) | "
                    f"{pct(m['worst_attr_fidelity'])} ({pct(m['worst_attr_fidelity_adj'])}) | "
                    f"{primary['independence']['p']:.2g} | {', '.join(d['metric'] for d in r['disagreements']) or '—'} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generators", nargs="*", default=["ddpm", "medi", "cbdm"],
                        help='names, or name:{"param": value} (JSON)')
    parser.add_argument("--dataset", default="derm")
    parser.add_argument("--dataset-params", default='{"config": "cpu"}', help="JSON")
    parser.add_argument("--config", default="cpu", help="generator config, where the plugin has it")
    parser.add_argument("--per-cell", type=int, default=20, help="requests per (class, group) pair")
    parser.add_argument("--vary", nargs="*", default=[], type=json.loads, help="parameter overrides (JSON), one row each")
    parser.add_argument("--judges", nargs="+", default=list(DEFAULT_FAMILIES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache/harness")))
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    parser.add_argument("--table", type=Path, help="only print the markdown table of a results JSON")
    args = parser.parse_args()
    if args.table:
        print(markdown_table(json.loads(args.table.read_text())))
        return
    import torch

    torch.set_num_threads(args.threads)
    registry = Registry()
    dataset = registry.create("dataset", args.dataset, json.loads(args.dataset_params))
    splits = dataset.load(args.seed)
    judges = fit_judges(splits.train, splits.test, dataset.primary_attribute, tuple(args.judges), args.seed, args.cache)
    for judge in judges:
        print(json.dumps({"judge": judge.family, "real_test": {t: v["accuracy"] for t, v in judge.real.items()
                                                               if isinstance(v, dict)}}), flush=True)
    results = []
    for text in args.generators:
        for result in check_generator(registry, text, splits, judges, args.per_cell, args.seed, args.config, args.vary,
                                      args.cache):
            results.append(to_json_value(result))
            print(json.dumps({k: results[-1][k] for k in ("generator", "params", "metrics", "disagreements")}), flush=True)
            if args.out:  # after every generator, so a long check that is stopped keeps what it measured
                args.out.write_text(json.dumps(results, indent=1))
    print(markdown_table(results))


if __name__ == "__main__":
    main()
