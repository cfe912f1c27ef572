"""Result records: one JSON line per (cell, seed, split) in RUN_DIR/results.jsonl.

Lines are appended with fsync as cells finish, so a killed run loses at most the line being
written; a truncated or unreadable line is reported and skipped on read (its cell is then
recomputed). At the end of a run the file is rewritten in grid order (atomically), so an
interrupted-then-resumed run and an uninterrupted one give identical files. NaN and infinite
metric values are stored as null with the reason beside them; values a plugin reports that JSON
cannot hold (arrays, paths, other objects) become lists or strings rather than stopping a run.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from harness import progress
from harness.cache import write_bytes_atomic

RESULTS = "results.jsonl"
PREDICTIONS = "predictions"
MANIFEST = "manifest.json"


def to_json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json_value(value.tolist())
    if isinstance(value, np.generic):
        return to_json_value(value.item())
    return value


def dumps(record: dict) -> str:
    return json.dumps(to_json_value(record), sort_keys=True, allow_nan=False, default=str)


def append(run_dir: Path, records: Iterable[dict]) -> None:
    path = Path(run_dir) / RESULTS
    lines = "".join(dumps(record) + "\n" for record in records)  # serialise first: a bad value appends nothing
    with open(path, "a+b") as f:
        if f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a line cut short by a killed run must not swallow the next one
                lines = "\n" + lines
        f.write(lines.encode())
        f.flush()
        os.fsync(f.fileno())


def load(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / RESULTS
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or "cell_key" not in record:
            # typically the last line of a killed run; that cell is not done, so it is recomputed
            progress.warn(f"{path}:{number} is not a complete record; ignoring it (its cell will be recomputed)")
            continue
        records.append(record)
    return records


def rewrite(run_dir: Path, records: list[dict]) -> None:
    write_bytes_atomic(Path(run_dir) / RESULTS, "".join(dumps(r) + "\n" for r in records).encode())


def metric(record: dict, name: str) -> float:
    value = record.get("metrics", {}).get(name)
    return math.nan if value is None else float(value)
