"""Hand-written run folders for leaderboard tests: records plus per-sample prediction files whose
accuracy per method is chosen, so the expected significance markers are known."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from harness import records
from harness.metrics import EvalInput, compute_metrics

CLASSES = ["a", "b", "c"]
GROUPS = ["g0", "g1"]
FIDELITY = {"extractor": "small-cnn@16", "n": {"real": 300, "synthetic": 300}, "draws": 3,
            "per_group": {"g0": {"n": 140}, "g1": {"n": 150}}}


def predictions(n: int, accuracy: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y_true, proba, groups): one shared test set; each sample is right with probability `accuracy`."""
    test = np.random.default_rng(1234)
    y, groups = test.integers(0, len(CLASSES), n), test.integers(0, len(GROUPS), n)
    rng = np.random.default_rng(seed)
    right = rng.random(n) < accuracy
    predicted = np.where(right, y, (y + rng.integers(1, len(CLASSES), n)) % len(CLASSES))
    proba = rng.random((n, len(CLASSES)))
    proba[np.arange(n), predicted] += 2.0
    return y, proba / proba.sum(1, keepdims=True), groups


def write_run(run_dir: Path, methods: dict[str, float], seeds: int = 3, n: int = 300, tables: int = 1,
              fid: dict[str, float] | None = None, label_params: dict | None = None, generator_fits: int = 0,
              deterministic: bool = False) -> Path:
    """A run folder with `tables` scenarios x methods (generator label -> accuracy) x seeds.
    `fid` gives generator -> FID value (records of those generators carry FIDELITY). Every seed is
    a full replicate (own cut, generator fit, classifier seed) unless generator_fits = g (seed i
    reuses the cut and fit of i mod g, as the grid's generator_seeds) or deterministic (every
    seed predicts the same, like a linear probe on fixed features)."""
    run_dir = Path(run_dir)
    (run_dir / records.PREDICTIONS).mkdir(parents=True, exist_ok=True)
    rows = []
    for table in range(tables):
        for generator, accuracy in methods.items():
            for seed in range(seeds):
                rows.append(_record(run_dir, f"s{table}", generator, accuracy, seed, n, (fid or {}).get(generator),
                                    (label_params or {}).get(generator, {}), generator_fits, deterministic))
    records.append(run_dir, rows)
    return run_dir


def _record(run_dir: Path, scenario: str, generator: str, accuracy: float, seed: int, n: int,
            fid: float | None, params: dict, generator_fits: int = 0, deterministic: bool = False) -> dict:
    spec = {"dataset": {"name": "toy", "label": "toy", "params": {}}, "scenario": scenario,
            "generator": {"name": generator, "label": generator, "params": params},
            "sampling": None if generator == "none" else {"strategy": "fair", "ratio": 1.0, "label": "fair-1"},
            "classifier": {"name": "clf", "label": "clf", "params": {}}, "seed_index": seed}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    method_seed = int(hashlib.sha256(f"{scenario}{generator}{0 if deterministic else seed}".encode()).hexdigest()[:8], 16)
    fit = seed % generator_fits if generator_fits else seed
    y, proba, groups = predictions(n, accuracy, method_seed)
    frame = pd.DataFrame({"sample_id": [f"t{i}" for i in range(n)], "y_true": y,
                          **{f"p_{k}": proba[:, k] for k in range(len(CLASSES))},
                          "group": [GROUPS[g] for g in groups]})
    relative = f"{records.PREDICTIONS}/{key}-s{seed}-test-augmented.parquet"
    frame.to_parquet(run_dir / relative)
    metrics = {name: v.value for name, v in compute_metrics(EvalInput(y, proba, groups, GROUPS)).items()}
    record = {"cell_id": f"toy/{scenario}/{generator}", "cell_key": key, "seed_index": seed, "split": "test",
              "status": "ok", "spec": spec, "plugins": {"attribute": "group", "label_names": CLASSES},
              "metrics": metrics, "per_group": {"group": {g: {} for g in GROUPS}},
              "eval": {"min_group_n": 10, "high_risk": [], "attribute": "group"}, "predictions_file": relative,
              "seeds": {"scenario": 100 + fit, "generator": 200 + fit, "sampling": 300 + fit, "classifier": 400 + seed}}
    if fid is not None:
        record["metrics"]["fid"] = fid + seed
        record["fidelity"] = FIDELITY
    return record
