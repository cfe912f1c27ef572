"""Result records: one JSON line per (cell, seed, split) in RUN_DIR/results.jsonl.

Lines are appended with fsync as cells finish, so a killed run loses at most the line being
written; a truncated last line is ignored on read. At the end of a run the file is rewritten
in grid order (atomically), so an interrupted-then-resumed run and an uninterrupted one give
identical files. NaN metric values are stored as null with the reason beside them.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

from harness.cache import write_bytes_atomic

RESULTS = "results.jsonl"
PREDICTIONS = "predictions"
MANIFEST = "manifest.json"


def to_json_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return to_json_value(value.item())
    return value


def dumps(record: dict) -> str:
    return json.dumps(to_json_value(record), sort_keys=True, allow_nan=False)


def append(run_dir: Path, records: Iterable[dict]) -> None:
    with open(Path(run_dir) / RESULTS, "a") as f:
        for record in records:
            f.write(dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def load(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / RESULTS
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a killed run; that cell is recomputed
    return records


def rewrite(run_dir: Path, records: list[dict]) -> None:
    write_bytes_atomic(Path(run_dir) / RESULTS, "".join(dumps(r) + "\n" for r in records).encode())


def metric(record: dict, name: str) -> float:
    value = record.get("metrics", {}).get(name)
    return math.nan if value is None else float(value)
