"""Fault injection: every broken plugin fails only its own cell, with a message naming the
plugin, the stage and what was wrong, and the rest of the grid gives the records a clean run
gives. The faulty plugins are in fixtures/fault_plugins.py."""
from __future__ import annotations

from pathlib import Path

from harness import records
from harness.grid import load_grid
from harness.runner import run_grid

from fixtures.fault_plugins import CLASSIFIER_FAULTS, DATASET_FAULTS, GENERATOR_FAULTS
from reliability_support import PLUGIN_FILES, builtin_entry_points, comparable

#: the built-in real-only baseline `none` is used; other built-ins are not loaded (faster workers)
BLOCKED = [name for name in builtin_entry_points() if name != "real_only"]

#: fault -> (stage, what the message must say)
GENERATOR_EXPECTED = {
    "raise_fit": ("generator fit", "InjectedFault: injected fault: training diverged"),
    "raise_sample": ("generator sample", "out of memory while sampling"),
    "raise_load": ("generator sample", "cannot read"),
    "float_images": ("generator sample", "must return uint8 images, got dtype float32"),
    "too_few": ("generator sample", "(119, 3, 8, 8); expected (120, 3, 8, 8)"),
    "wrong_size": ("generator sample", "(120, 3, 10, 10); expected (120, 3, 8, 8)"),
    "wrong_channels": ("generator sample", "(120, 1, 8, 8); expected (120, 3, 8, 8)"),
    "not_array": ("generator sample", "must return a numpy array, got list"),
    "exit": ("generator fit", "SystemExit: 3"),
}
CLASSIFIER_EXPECTED = {
    "raise_fit": ("classifier", "device-side assert triggered"),
    "nan_proba": ("classifier", "returned 1 NaN/inf values"),
    "wrong_classes": ("classifier", "returned shape (90, 4); expected (90, 3)"),
    "too_few_rows": ("classifier", "returned shape (89, 3); expected (90, 3)"),
    "not_normalised": ("classifier", "rows must sum to 1"),
    "not_array": ("classifier", "must return a numpy array, got list"),
}
DATASET_EXPECTED = {
    "raise_load": ("dataset", "the dataset files are gone"),
    "not_splits": ("dataset", "load() must return harness.Splits, got dict"),
    "label_outside_vocab": ("dataset", "'faulty_data'.train: labels must be codes in 0..2"),
    "negative_label": ("dataset", "got range -2..2"),
    "attribute_outside_vocab": ("dataset", "attribute 'group' codes must be -1 (unknown) or 0..1"),
    "float_images": ("dataset", "images must be uint8 (N, C, H, W), got float32"),
    "mixed_sizes": ("dataset", "all splits need one image shape"),
    "duplicate_ids": ("dataset", "'faulty_data'.train: sample ids must be unique"),
    "ids_mismatch": ("dataset", "120 images but 120 labels, 119 ids"),
}


def test_every_declared_fault_has_an_expectation():
    assert set(GENERATOR_EXPECTED) == set(GENERATOR_FAULTS)
    assert set(CLASSIFIER_EXPECTED) == set(CLASSIFIER_FAULTS)
    assert set(DATASET_EXPECTED) == set(DATASET_FAULTS)


def _entry(section: str, name: str, label: str, params: dict | None = None, extra: str = "") -> str:
    text = f'\n[[{section}]]\nname = "{name}"\nlabel = "{label}"\n{extra}'
    if params:
        text += "params = { " + ", ".join(f'{k} = "{v}"' for k, v in params.items()) + " }\n"
    return text


def _grid(datasets: list[str], generators: list[str], classifiers: list[str]) -> str:
    return 'name = "faults"\nseeds = 1\n' + "".join(datasets + generators + classifiers)


def _run(tmp_path: Path, text: str, name: str, executor: str = "serial"):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return run_grid(load_grid(str(path)), tmp_path / name, tmp_path / f"cache-{name}", executor=executor,
                    plugin_files=PLUGIN_FILES, blocked=BLOCKED)


def _check(summary, expected: dict, kind: str, plugin: str, label_of) -> None:
    """Exactly the faulty cells failed, each with plugin, stage and the problem in its message."""
    failed = {label_of(f): f for f in summary.failed}
    assert set(failed) == set(expected), {k: f["error"] for k, f in failed.items()}
    for fault, (stage, what) in expected.items():
        error = failed[fault]["error"]
        assert f"{kind} '{plugin}' failed in stage '{stage}'" in error, error
        assert what in error, error
        assert "\n" not in error
        assert failed[fault]["status"] == "failed" and failed[fault]["traceback"]


def _healthy_records_match_a_clean_run(tmp_path: Path, summary, clean_text: str) -> None:
    clean = _run(tmp_path, clean_text, "clean")
    assert clean.failed == []
    ok = [r for r in records.load(summary.run_dir) if r["status"] == "ok"]
    assert len(ok) == clean.cells
    assert comparable(ok) == comparable(records.load(clean.run_dir))


DATASET_TOY = _entry("dataset", "toy", "toy", extra='scenarios = ["natural"]\n')
REAL_ONLY = _entry("generator", "none", "none")
CENTROID = _entry("classifier", "centroid", "centroid")


def test_generator_faults_fail_only_their_own_cells(tmp_path):
    healthy = [REAL_ONLY, _entry("generator", "faulty_gen", "healthy")]
    broken = [_entry("generator", "faulty_gen", f, {"fault": f}) for f in GENERATOR_EXPECTED]
    summary = _run(tmp_path, _grid([DATASET_TOY], healthy + broken, [CENTROID]), "generators")
    _check(summary, GENERATOR_EXPECTED, "generator", "faulty_gen", lambda f: f["spec"]["generator"]["label"])
    _healthy_records_match_a_clean_run(tmp_path, summary, _grid([DATASET_TOY], healthy, [CENTROID]))


def test_classifier_faults_fail_only_their_own_cells(tmp_path):
    healthy = [CENTROID, _entry("classifier", "faulty_clf", "healthy")]
    broken = [_entry("classifier", "faulty_clf", f, {"fault": f}) for f in CLASSIFIER_EXPECTED]
    summary = _run(tmp_path, _grid([DATASET_TOY], [REAL_ONLY], healthy + broken), "classifiers")
    _check(summary, CLASSIFIER_EXPECTED, "classifier", "faulty_clf", lambda f: f["spec"]["classifier"]["label"])
    _healthy_records_match_a_clean_run(tmp_path, summary, _grid([DATASET_TOY], [REAL_ONLY], healthy))


def test_dataset_faults_fail_only_their_own_cells(tmp_path):
    healthy = [DATASET_TOY, _entry("dataset", "faulty_data", "healthy", extra='scenarios = ["natural"]\n')]
    broken = [_entry("dataset", "faulty_data", f, {"fault": f}, 'scenarios = ["natural"]\n') for f in DATASET_EXPECTED]
    summary = _run(tmp_path, _grid(healthy + broken, [REAL_ONLY], [CENTROID]), "datasets")
    _check(summary, DATASET_EXPECTED, "dataset", "faulty_data", lambda f: f["spec"]["dataset"]["label"])
    _healthy_records_match_a_clean_run(tmp_path, summary, _grid(healthy, [REAL_ONLY], [CENTROID]))


def test_statistics_json_cannot_hold_are_recorded_not_fatal(tmp_path):
    """faulty_gen reports an infinite loss and a numpy array in its stats; the cell still succeeds."""
    summary = _run(tmp_path, _grid([DATASET_TOY], [_entry("generator", "faulty_gen", "healthy")], [CENTROID]), "stats")
    assert summary.failed == []
    (row,) = records.load(summary.run_dir)
    assert row["generator_stats"]["loss"] is None and row["generator_stats"]["curve"] == [0.5, 0.25]


def test_process_workers_isolate_faults_too(tmp_path):
    broken = {f: GENERATOR_EXPECTED[f] for f in ("raise_fit", "wrong_size", "exit")}
    generators = [REAL_ONLY] + [_entry("generator", "faulty_gen", f, {"fault": f}) for f in broken]
    summary = _run(tmp_path, _grid([DATASET_TOY], generators, [CENTROID]), "process", executor="process")
    _check(summary, broken, "generator", "faulty_gen", lambda f: f["spec"]["generator"]["label"])
