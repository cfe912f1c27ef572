"""The run folder: result records, per-sample predictions, loading and merging (docs/records.md).

A run folder holds manifest.json, results.jsonl (one JSON record per (cell, replicate, split))
and predictions/*.parquet. `Record` declares every field of a record and its schema version; the
runner builds records from plain values through it, and everything else reads the loaded dicts.

Lines are appended with fsync as cells finish, so a killed run loses at most the line being
written; a truncated or unreadable line is reported and skipped on read (its cell is then
recomputed). At the end of a run the file is rewritten in grid order (atomically), so an
interrupted-then-resumed run and an uninterrupted one give identical files. NaN and infinite
metric values are stored as null with the reason beside them; values a plugin reports that JSON
cannot hold (arrays, paths, other objects) become lists or strings rather than stopping a run.

Loading fills every field of `Record`: a field a record does not carry (a schema-1 record has no
plugin source digests, no generator identity, no predictions checksums) is None, "not
recorded"; nothing is inferred. A record of a newer schema than this harness reads is an error.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from harness import progress
from harness.cache import file_sha256, to_json_value, write_bytes_atomic
from harness.metrics import METRICS

RESULTS = "results.jsonl"
PREDICTIONS = "predictions"
MANIFEST = "manifest.json"
#: 1: records without `schema_version` (before plugin identity and checksums); 2: this layout
SCHEMA_VERSION = 3


class RecordError(ValueError):
    """A results file or predictions file that this harness cannot use as it is."""


@dataclass(frozen=True)
class Record:
    """One result: a (cell, replicate, split) that succeeded, or a cell that failed (split None).

    Field meanings are documented in docs/records.md; plugin identities are
    {"name", "version", "params" (resolved), "source_digest"}.
    """

    cell_id: str  # dataset/scenario/generator/sampling/classifier labels
    cell_key: str  # hash of the cell spec and the evaluation settings
    seed_index: int
    split: str | None
    status: str  # "ok" | "failed"
    spec: dict  # the grid entries of the cell (labels, names, grid params, sampling spec)
    schema_version: int = SCHEMA_VERSION
    seeds: dict | None = None  # stage -> seed: scenario, generator, sampling, classifier
    replicate: dict | None = None  # variance source (cut, generator, classifier) -> replicate index
    plugins: dict | None = None  # dataset/generator/classifier identity, attribute, label_names
    eval: dict | None = None  # evaluation settings the metrics were computed with
    metrics: dict | None = None  # metric -> value (None where undefined)
    nan_reasons: dict | None = None  # metric -> why it is undefined
    per_group: dict | None = None  # attribute -> group -> per-group report
    n: dict | None = None  # eval, train_real, train_synthetic
    scenario_report: dict | None = None
    artifacts: dict | None = None  # stage -> cache key
    cost: dict | None = None  # wall-clock seconds and peak memory (differ between computations)
    generator_stats: dict | None = None  # what the generator reported (steps, timings)
    classifier_stats: dict | None = None  # what the augmented classifier reported (steps taken, best val score)
    predictions_file: str | None = None  # run-relative path of the augmented classifier's predictions
    predictions_sha256: dict | None = None  # mode ("augmented", "cas") -> SHA-256 of its file
    fidelity: dict | None = None  # extractor, n, draws, per_group of FID/KID
    stage: str | None = None  # failed records: the stage that failed
    error: str | None = None
    traceback: str | None = None
    attempts: int | None = None  # with --retries: the attempt that produced the record

    def to_dict(self) -> dict:
        """The JSON form: fields that are None ("not recorded") are left out."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


FIELDS = tuple(f.name for f in dataclasses.fields(Record))


def replicate(seed_index: int, generator_seeds: int, has_generator: bool) -> dict[str, int | None]:
    """Which replicate of each variance source a seed index uses: the scenario cut and the
    generator (fit and samples) repeat every `generator_seeds` seeds (0: never); the classifier
    varies with every seed. `generator` is None for a method without a generator."""
    shared = seed_index % generator_seeds if generator_seeds else seed_index
    return {"cut": shared, "generator": shared if has_generator else None, "classifier": seed_index}


# ---- JSON lines --------------------------------------------------------------------------

def dumps(record: dict) -> str:
    stored = {k: v for k, v in record.items() if v is not None}
    return json.dumps(to_json_value(stored), sort_keys=True, allow_nan=False, default=str)


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


def from_json(data: dict, where: str) -> dict:
    """A loaded record with every field of `Record` (None where not recorded)."""
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise RecordError(f"{where}: record of schema version {version!r}; this harness reads versions up to "
                          f"{SCHEMA_VERSION}. Upgrade fairgen-harness to read it.")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown and version == SCHEMA_VERSION:
        raise RecordError(f"{where}: record has fields {unknown} that schema version {version} does not declare")
    return {**{name: None for name in FIELDS}, **data, "schema_version": version}


def load(run_dir: Path) -> list[dict]:
    """The records of a run folder (or of a results JSON-lines file given as `run_dir`)."""
    path = Path(run_dir)
    path = path / RESULTS if path.is_dir() or not path.exists() else path
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
        records.append(from_json(record, f"{path}:{number}"))
    return records


def rewrite(run_dir: Path, records: list[dict]) -> None:
    write_bytes_atomic(Path(run_dir) / RESULTS, "".join(dumps(r) + "\n" for r in records).encode())


def metric(record: dict, name: str) -> float:
    value = (record.get("metrics") or {}).get(name)
    return math.nan if value is None else float(value)


# ---- methods -----------------------------------------------------------------------------

def sampling_label(sampling: dict | None) -> str:
    """The sampling part of a method's name, with the whole spec: 'fair-1',
    'proportions-1 (0.5/0.3/0.2)'; 'real' without synthetic data."""
    if not sampling:
        return "real"
    label = f"{sampling['strategy']}-{sampling['ratio']:g}"
    if sampling.get("proportions"):
        label += " (" + "/".join(f"{p:g}" for p in sampling["proportions"]) + ")"
    return label


def row_key(record: dict) -> tuple:
    """The leaderboard row a record belongs to: its table and its method (generator + sampling)."""
    spec = record["spec"]
    return (spec["dataset"]["label"], spec["scenario"], spec["classifier"]["label"], record["split"],
            spec["generator"]["label"], sampling_label(spec["sampling"]))


# ---- predictions -------------------------------------------------------------------------

def predictions_filename(cell_key: str, seed_index: int, split: str, mode: str) -> str:
    return f"{PREDICTIONS}/{cell_key}-s{seed_index}-{split}-{mode}.parquet"


def write_predictions(run_dir: Path, relative: str, sample_ids: np.ndarray, y_true: np.ndarray, proba: np.ndarray,
                      groups: dict[str, list[str]], provenance: np.ndarray) -> str:
    """Per-sample predictions (sample_id, y_true, p_0..p_{K-1}, one column per sensitive attribute
    with group names, provenance), written atomically; returns the file's SHA-256."""
    frame = pd.DataFrame({"sample_id": sample_ids, "y_true": y_true if y_true.ndim == 1 else list(y_true)})
    for k in range(proba.shape[1]):
        frame[f"p_{k}"] = proba[:, k]
    for attribute, names in groups.items():
        frame[attribute] = names
    frame["provenance"] = provenance
    target = Path(run_dir) / relative
    tmp = target.with_name(f".{target.name}.tmp")
    frame.to_parquet(tmp, index=False)
    digest = file_sha256(tmp)
    tmp.replace(target)
    return digest


def predictions_path(run_dir: Path, record: dict, mode: str = "augmented") -> Path:
    relative = record["predictions_file"]
    if mode != "augmented":
        relative = relative.replace("-augmented.parquet", f"-{mode}.parquet")
    return Path(run_dir) / relative


def predictions_problem(run_dir: Path, record: dict) -> str:
    """'' when every predictions file of the record exists and matches its checksum, else what is wrong."""
    for mode, digest in (record.get("predictions_sha256") or {}).items():
        path = predictions_path(run_dir, record, mode)
        if not path.is_file():
            return f"predictions file {path} is missing"
        if file_sha256(path) != digest:
            return f"predictions file {path} does not match the checksum in its record"
    return ""


def read_predictions(run_dir: Path, record: dict, mode: str = "augmented") -> pd.DataFrame:
    """The record's predictions table, verified against its checksum when the record has one;
    mode "cas" reads the synthetic-only classifier's file."""
    path = predictions_path(run_dir, record, mode)
    if not path.is_file():
        raise RecordError(f"predictions file {path} is missing; rerun the same `harness run` command (same grid "
                          f"and --out) to restore it")
    digest = (record.get("predictions_sha256") or {}).get(mode)
    if digest is not None and file_sha256(path) != digest:
        raise RecordError(f"predictions file {path} does not match the checksum in its record (damaged or edited); "
                          f"rerun the same `harness run` command (same grid and --out) to restore it")
    return pd.read_parquet(path)


# ---- loading and merging -----------------------------------------------------------------

def read_source(source: Path) -> tuple[Path, list[dict]]:
    """(folder its predictions paths are relative to, records) of a run folder or results file."""
    source = Path(source)
    if source.is_dir() and not (source / RESULTS).is_file():
        raise FileNotFoundError(f"--merge {source}: no {RESULTS} in that folder")
    if not source.exists():
        raise FileNotFoundError(f"--merge {source}: no such run folder or results file")
    return (source if source.is_dir() else source.parent), load(source)


def load_records(run_dir: Path, merge: Sequence[Path] = (), prefer_run: bool = False) -> list[dict]:
    """The run's records, with the rows of each merge source (a published run folder or results
    file) that the run lacks. A leaderboard row (table + method) present in both keeps the
    source's records, so the published numbers and markers stay as published; where the run's
    metric means differ from the source's beyond the metric's tolerance a warning names the row.
    `prefer_run` keeps the run's records instead. Merged records get absolute predictions paths."""
    rows = load(Path(run_dir))
    for source in merge:
        folder, source_rows = read_source(Path(source))
        source_rows = [_absolute(r, folder) for r in source_rows]
        check_labels_agree(rows + source_rows)  # before merging, which may drop one side's meaning
        rows = merge_rows(rows, source_rows, str(source), prefer_run)
    return rows


def merge_rows(own: list[dict], published: list[dict], name: str, prefer_run: bool = False) -> list[dict]:
    """`own` plus the rows of `published` for leaderboard rows `own` lacks; shared rows as in load_records."""
    mine = _ok_by_row(own)
    theirs = _ok_by_row(published)
    shared = [key for key in theirs if key in mine]
    for key in shared:
        differ = _differences(mine[key], theirs[key])
        if differ:
            kept = "the run's (--prefer-run)" if prefer_run else f"the published ones from {name}"
            progress.warn(f"{'/'.join(map(str, key[:4]))}/{key[4]} [{key[5]}]: recomputed "
                          f"{', '.join(differ)} beyond tolerance; keeping {kept}" +
                          ("" if prefer_run else " (pass --prefer-run to keep the run's)"))
    if prefer_run:
        return own + [r for r in published if r.get("status") != "ok" or row_key(r) not in mine]
    out, placed = [], set()
    for r in own:  # a replaced row takes the place of the run's, so tables keep the run's method order
        key = row_key(r) if r.get("status") == "ok" else None
        if key not in theirs:
            out.append(r)
        elif key not in placed:
            out += theirs[key]
            placed.add(key)
    return out + [r for r in published if r.get("status") != "ok" or row_key(r) not in placed]


def _absolute(record: dict, folder: Path) -> dict:
    if not record.get("predictions_file"):
        return record
    return {**record, "predictions_file": str((folder / record["predictions_file"]).resolve())}


def _ok_by_row(rows: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("status") == "ok":
            out.setdefault(row_key(r), []).append(r)
    return out


def _differences(own: list[dict], published: list[dict]) -> list[str]:
    """'acc 0.9390 vs published 0.9300' for each metric whose means differ beyond its registered
    tolerance (or that one side has and the other does not)."""
    out = []
    for name, spec in METRICS.items():
        a, b = _mean(own, name), _mean(published, name)
        if math.isnan(a) and math.isnan(b):
            continue
        if math.isnan(a) != math.isnan(b) or abs(a - b) > spec.tolerance:
            out.append(f"{name} {a:.4f} vs published {b:.4f}")
    return out


def _mean(rows: list[dict], name: str) -> float:
    values = [v for v in (metric(r, name) for r in rows) if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def check_labels_agree(rows: list[dict]) -> None:
    """A label must name the same plugin and parameters in every source, or rows of different
    methods (or tables on different test sets) would be pooled."""
    meaning: dict[tuple[str, str], str] = {}
    for r in rows:
        if r.get("status") != "ok":
            continue
        for kind in ("dataset", "generator", "classifier"):
            spec = r["spec"][kind]
            described = json.dumps({"name": spec["name"], "params": spec.get("params", {})}, sort_keys=True)
            previous = meaning.setdefault((kind, spec["label"]), described)
            if previous != described:
                raise RecordError(f"{kind} label '{spec['label']}' means {previous} in one source and {described} in "
                                  f"another; give one of them another label in its grid before merging")
