"""Rebuild metric inputs from a run's stored per-sample predictions (RUN_DIR/predictions/*.parquet).

A result record names its predictions file, which harness.records reads and verifies against
the record's checksum; the file holds sample_id, y_true, p_0..p_{K-1} and one column per
sensitive attribute with group names ("unknown" when missing). The record gives the primary
attribute and its group order (per_group keys follow the vocabulary).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.metrics.registry import EvalInput
from harness.records import read_predictions

DEFAULT_MIN_GROUP_N = 10


def eval_input_from_predictions(frame: pd.DataFrame, attribute: str, group_names: list[str],
                                min_group_n: int = DEFAULT_MIN_GROUP_N, high_risk: tuple[int, ...] = ()) -> EvalInput:
    proba_columns = sorted((c for c in frame.columns if c.startswith("p_") and c[2:].isdigit()), key=lambda c: int(c[2:]))
    y_true = frame["y_true"].to_numpy()
    if y_true.dtype == object:  # multilabel rows are stored as lists
        y_true = np.stack(y_true).astype(np.int64)
    code = {name: i for i, name in enumerate(group_names)}
    groups = frame[attribute].map(lambda name: code.get(name, -1)).to_numpy(dtype=np.int64)
    return EvalInput(y_true, frame[proba_columns].to_numpy(dtype=np.float64), groups, list(group_names),
                     min_group_n, tuple(high_risk), attribute)


def eval_input_from_record(run_dir: Path, record: dict, mode: str = "augmented") -> EvalInput:
    """The EvalInput a record's metrics were computed from, read back from its predictions file.

    Uses record["eval"] ({"min_group_n", "high_risk"}) when the runner stored it, else the
    defaults (min_group_n 10, no high-risk classes).
    """
    attribute = record["plugins"]["attribute"]
    group_names = list(record["per_group"][attribute])
    settings = record.get("eval") or {}
    return eval_input_from_predictions(read_predictions(run_dir, record, mode), attribute, group_names,
                                       settings.get("min_group_n", DEFAULT_MIN_GROUP_N),
                                       tuple(settings.get("high_risk", ())))
