"""What a dataset holds: per-group / per-class counts, before and after a skew scenario.

`describe` backs `harness describe DATASET`; `dataset_overview` backs `harness ls --datasets`.
"""
from __future__ import annotations

import difflib

import numpy as np
from tabulate import tabulate

from harness.contracts import ConfigError, Dataset
from harness.data import ImageSet


def describe(dataset: Dataset, scenario: str | None = None, seed: int = 0) -> str:
    """A printable report: split sizes, then train counts per group x class before (and after) the scenario."""
    splits = dataset.load(seed)
    attribute = dataset.primary_attribute
    lines = [f"dataset {dataset.name} (version {dataset.version}); primary attribute '{attribute}'; "
             f"other attributes {list(dataset.sensitive_attributes[1:])}",
             f"classes {splits.train.label_names}; high-risk {list(dataset.high_risk_classes)}",
             f"images {splits.train.image_shape} (C, H, W)", ""]
    sizes = [[name, len(split), *group_counts(split, attribute)] for name, split in splits.items()]
    lines.append(tabulate(sizes, headers=["split", "n", *group_names(splits.train, attribute)]))
    lines += ["", f"train: {attribute} x class", count_table(splits.train, attribute)]
    if scenario is not None:
        scenarios = dataset.scenarios()
        if scenario not in scenarios:
            hint = difflib.get_close_matches(scenario, list(scenarios), n=1)
            raise ConfigError(f"dataset '{dataset.name}' has no scenario '{scenario}'"
                              f"{f'; did you mean {hint[0]!r}?' if hint else ''} Its scenarios: {sorted(scenarios)}")
        cut, report = scenarios[scenario].apply(splits.train, seed)
        lines += ["", f"train after scenario '{scenario}' (seed {seed}): {report['n_after']} of {report['n_before']} kept",
                  count_table(cut, attribute, before=splits.train)]
        details = {k: v for k, v in report.items() if k not in ("n_before", "n_after")}
        lines += [f"{key}: {value}" for key, value in details.items()]
    return "\n".join(lines)


def group_names(images: ImageSet, attribute: str) -> list[str]:
    names = list(images.attribute_vocab[attribute])
    return names + (["unknown"] if (images.group_codes(attribute) < 0).any() else [])


def group_counts(images: ImageSet, attribute: str) -> list[int]:
    codes = images.group_codes(attribute)
    counts = np.bincount(codes[codes >= 0], minlength=len(images.attribute_vocab[attribute])).tolist()
    return counts + ([int((codes < 0).sum())] if (codes < 0).any() else [])


def count_table(images: ImageSet, attribute: str, before: ImageSet | None = None) -> str:
    """Rows = groups (+ unknown), columns = classes + total; with `before`, cells read 'after/before'."""
    reference = before if before is not None else images
    names = group_names(reference, attribute)
    codes = list(range(len(reference.attribute_vocab[attribute]))) + ([-1] if "unknown" in names[-1:] else [])

    def cell(group: int, label: int | None) -> str:
        def count(s: ImageSet) -> int:
            in_group = s.group_codes(attribute) == group
            in_label = in_group if label is None or s.multilabel else in_group & (s.labels == label)
            return int(in_label.sum())
        return f"{count(images)}/{count(before)}" if before is not None else str(count(images))

    labels = [None] if images.multilabel else list(range(len(reference.label_names)))
    rows = [[name, *(cell(code, label) for label in labels if label is not None), cell(code, None)]
            for name, code in zip(names, codes)]
    classes = [] if images.multilabel else list(reference.label_names)
    return tabulate(rows, headers=[attribute, *classes, "total"])


def dataset_overview(datasets: list[type[Dataset]]) -> str:
    """One row per dataset class: attributes, classes, default sizes, options and scenario names (nothing is loaded)."""
    rows = []
    for cls in datasets:
        instance = cls()
        sizes = {k: v for k, v in cls.defaults.items() if k.startswith("n_") or k == "resolution"}
        # parameters with a fixed set of values (subset, split_scheme) and second data folders (covid_root)
        options = [f"{k}={cls.defaults[k]} ({'|'.join(map(str, v))})" for k, v in getattr(cls, "choices", {}).items()]
        options += [f"{k} (a second data folder)" for k in cls.defaults if k.endswith("_root")]
        rows.append([cls.name, ", ".join(instance.sensitive_attributes), ", ".join(instance.label_names) or "(from data)",
                     ", ".join([*(f"{k}={v}" for k, v in sizes.items()), *options]) or "(from data)",
                     ", ".join(instance.scenarios())])
    return tabulate(rows, headers=["dataset", "attributes", "classes", "sizes, options", "scenarios"],
                    maxcolwidths=[None, 24, 40, 30, 40])
