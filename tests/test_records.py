"""Result integrity: the record type, keys that cover everything that changes a result, done-ness
of a cell, checksummed predictions, plugin-side caches under --cache, and reading old records."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness import records
from harness.cache import Cache
from harness.data import ImageSet
from harness.grid import load_grid
from harness.leaderboard import load_summary, records_frame
from harness.publish import table_sizes
from harness.registry import Registry, plugin_source_files
from harness.runner import run_grid

from conftest import TOY_PLUGINS

GRID = """
name = "records"
seeds = 1

[[dataset]]
name = "toy"
scenarios = ["natural"]
params = { n_train = 60 }

[[generator]]
name = "none"

[[generator]]
name = "noisy_copy"

[[sampling]]
strategy = "fair"
ratio = 1.0

[[classifier]]
name = "centroid"
"""

TWO_TESTS = '''
from harness import Dataset, Splits, hookimpl
from harness.toydata import toy_imageset


class TwoTests(Dataset):
    name = "two_tests"
    version = "1"
    label_names = ["class0", "class1", "class2"]
    sensitive_attributes = ["group"]

    def load(self, seed):
        return Splits(train=toy_imageset(60, 8, seed=seed, prefix="train"),
                      val=toy_imageset(30, 8, seed=seed + 1, prefix="val"),
                      test=toy_imageset(45, 8, seed=seed + 2, prefix="test"),
                      test_ood=toy_imageset(45, 8, seed=seed + 3, prefix="ood"))


@hookimpl
def harness_datasets():
    return [TwoTests]
'''


def _run(tmp_path: Path, grid_text: str = GRID, plugins: tuple = (), out: str = "run", cache: str = "cache"):
    path = tmp_path / "grid.toml"
    path.write_text(grid_text)
    files = [str(p) for p in plugins] or [str(TOY_PLUGINS)]
    return run_grid(load_grid(str(path)), tmp_path / out, tmp_path / cache, plugin_files=files)


def _by_generator(run_dir: Path) -> dict[str, dict]:
    return {r["spec"]["generator"]["label"]: r for r in records.load(run_dir)}


# -- keys ------------------------------------------------------------------------------------
def test_an_edited_plugin_is_recomputed_without_a_version_bump(tmp_path):
    plugin = tmp_path / "my_plugins.py"
    shutil.copy(TOY_PLUGINS, plugin)
    _run(tmp_path, plugins=(plugin,))
    before = _by_generator(tmp_path / "run")
    source = plugin.read_text()
    black = source.replace("        return np.clip(self.train.images[picks].astype(int) + noise, 0, 255).astype(np.uint8)",
                           "        return np.zeros_like(self.train.images[picks])")
    reversed_proba = black.replace("        return p / p.sum(1, keepdims=True)", "        return (p / p.sum(1, keepdims=True))[:, ::-1]")
    assert reversed_proba.count("np.zeros_like") == 1 and reversed_proba.count("[:, ::-1]") == 1
    plugin.write_text(reversed_proba)  # same versions ("1"), same names and parameters

    again = _run(tmp_path, plugins=(plugin,))
    assert again.reused == 0 and again.computed == again.cells
    after = _by_generator(tmp_path / "run")
    synthetic = ImageSet.load(tmp_path / "cache" / "synthetic" / after["noisy_copy"]["artifacts"]["synthetic"] / "synthetic.npz")
    assert not synthetic.images.any()  # the edited generator's black images, not the cached noisy copies
    assert after["none"]["metrics"]["acc"] != before["none"]["metrics"]["acc"]  # the reversed classifier
    for kind in ("dataset", "generator", "classifier"):
        assert len(after["none"]["plugins"][kind]["source_digest"]) == 20
    assert after["none"]["plugins"]["classifier"]["source_digest"] != before["none"]["plugins"]["classifier"]["source_digest"]


def test_the_source_digest_covers_base_classes_and_helpers_of_the_plugin_package():
    registry = Registry()
    files = {Path(p).name for p in plugin_source_files(registry.get("generator", "fairgen").cls)}
    assert {"fairgen.py", "sd.py", "_preferences.py", "contracts.py"} <= files
    assert not any("site-packages" in p for p in plugin_source_files(registry.get("generator", "fairgen").cls))
    assert {Path(p).name for p in plugin_source_files(registry.get("generator", "ddpm").cls)} >= {"ddpm.py", "_diffusion.py"}


@pytest.mark.parametrize("change", ["min_group_n = 5\n", "cas = true\n"])
def test_changing_evaluation_settings_recomputes_the_records(tmp_path, change):
    _run(tmp_path)
    first = records.load(tmp_path / "run")
    again = _run(tmp_path, change + GRID)
    assert again.reused == 0
    rows = records.load(tmp_path / "run")
    assert {r["cell_key"] for r in rows}.isdisjoint({r["cell_key"] for r in first})
    if change.startswith("min_group_n"):
        assert {r["eval"]["min_group_n"] for r in rows} == {5}
    else:
        assert rows[-1]["metrics"].get("cas") is not None


def test_a_cell_is_done_only_when_every_split_has_its_record(tmp_path):
    extra = tmp_path / "two_tests.py"
    extra.write_text(TWO_TESTS)
    grid = GRID.replace('name = "toy"', 'name = "two_tests"').replace("params = { n_train = 60 }", "")
    grid = 'splits = ["test", "test_ood"]\n' + grid
    _run(tmp_path, grid, plugins=(TOY_PLUGINS, extra))
    results = tmp_path / "run" / records.RESULTS
    full = results.read_text().splitlines()
    assert len(full) == 4
    results.write_text("".join(line + "\n" for line in full if '"test_ood"' not in line or '"none"' not in line))
    again = _run(tmp_path, grid, plugins=(TOY_PLUGINS, extra))
    assert again.computed == 1
    assert sorted(results.read_text().splitlines()) == sorted(full)


# -- predictions -----------------------------------------------------------------------------
def test_a_damaged_predictions_file_is_refused_on_read_and_restored_on_resume(tmp_path, capsys):
    _run(tmp_path)
    row = _by_generator(tmp_path / "run")["none"]
    path = tmp_path / "run" / row["predictions_file"]
    good = path.read_bytes()
    data = bytearray(good)
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(records.RecordError, match="does not match the checksum"):
        records.read_predictions(tmp_path / "run", row)
    with pytest.raises(records.RecordError, match="does not match the checksum"):
        load_summary(tmp_path / "run", significance="bootstrap")
    again = _run(tmp_path)
    assert again.computed == 1 and path.read_bytes() == good
    assert "does not match the checksum" in capsys.readouterr().err
    path.unlink()
    assert _run(tmp_path).computed == 1 and path.read_bytes() == good


def test_a_damaged_meta_json_info_is_detected(tmp_path):
    cache = Cache(tmp_path)
    path, _ = cache.get_or_compute("train", "k1", lambda tmp: (tmp / "a.bin").write_bytes(b"x") and {"sizes": {"test": 90}})
    meta = json.loads((path / "meta.json").read_text())
    meta["info"]["sizes"]["test"] = 9
    (path / "meta.json").write_text(json.dumps(meta))
    assert Cache.verify(path) == (None, "meta.json does not match its checksum")
    _, meta = cache.get_or_compute("train", "k1", lambda tmp: (tmp / "a.bin").write_bytes(b"x") and {"sizes": {"test": 90}})
    assert meta["info"]["sizes"]["test"] == 90 and cache.misses == 2


# -- plugin-side caches ------------------------------------------------------------------------
def test_real_image_cache_lives_under_the_run_cache_and_is_rebuilt_when_damaged(tmp_path, monkeypatch, capsys):
    from test_reliability_data import Listed, _png

    root = tmp_path / "root"
    Listed.rows = [{"path": _png(root / f"{i}.png", 10 * i), "label": "ab"[i % 2], "patient": str(i),
                    "sex": ["female", "male"][i % 2]} for i in range(8)]
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "run-cache"))
    first = Listed(root=str(root), resolution=8).load(0)
    [cached] = (tmp_path / "run-cache" / "datasets").glob("listed-8px-*.npz")
    data = bytearray(cached.read_bytes())
    data[250] ^= 0xFF  # inside the stored images
    cached.write_bytes(bytes(data))
    second = Listed(root=str(root), resolution=8).load(0)
    assert f"image cache {cached} is damaged" in capsys.readouterr().err
    assert np.array_equal(first.train.images, second.train.images)
    Listed(root=str(root), resolution=8).load(0)
    assert "damaged" not in capsys.readouterr().err  # the rebuilt file verifies


def test_plugins_see_the_run_cache_while_a_cell_runs(tmp_path, monkeypatch):
    probe = tmp_path / "probe.py"
    probe.write_text(TOY_PLUGINS.read_text().replace(
        '        self.stats = {"fits": 1}', '        self.stats = {"fits": 1, "cache": os.environ.get("HARNESS_CACHE")}'))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "elsewhere"))
    _run(tmp_path, plugins=(probe,), cache="the-cache")
    row = _by_generator(tmp_path / "run")["noisy_copy"]
    assert row["generator_stats"]["cache"] == str((tmp_path / "the-cache").resolve())


# -- the record --------------------------------------------------------------------------------
def test_records_carry_schema_identity_replicates_and_the_manifest_the_machine(tmp_path):
    _run(tmp_path, GRID.replace("seeds = 1", "seeds = 2\ngenerator_seeds = 1"))
    rows = records.load(tmp_path / "run")
    assert {r["schema_version"] for r in rows} == {records.SCHEMA_VERSION}
    noisy = [r for r in rows if r["spec"]["generator"]["label"] == "noisy_copy"]
    assert [r["replicate"] for r in noisy] == [{"cut": 0, "generator": 0, "classifier": 0},
                                                {"cut": 0, "generator": 0, "classifier": 1}]
    assert noisy[0]["plugins"]["generator"]["params"] == {"noise": 10}
    assert [r["replicate"]["generator"] for r in rows if r["spec"]["generator"]["label"] == "none"] == [None, None]
    manifest = json.loads((tmp_path / "run" / records.MANIFEST).read_text())
    machine = manifest["platform"]
    assert machine["cpu"]["model"] and machine["cpu"]["flags"] and machine["torch"]["threads"] >= 1
    assert "BLAS" in machine["torch"]["build"] or "CPU capability" in machine["torch"]["build"]
    for line in (tmp_path / "run" / records.RESULTS).read_text().splitlines():
        assert set(json.loads(line)) <= set(records.FIELDS)


def test_schema_1_records_load_as_not_recorded_and_newer_ones_are_refused(tmp_path):
    board = Path(__file__).parent / "fixtures" / "schema1_records.jsonl"  # two records of an earlier smoke run
    old = records.load(board)
    assert old and {r["schema_version"] for r in old} == {1}
    assert all(r["predictions_sha256"] is None and r["replicate"] is None for r in old)
    assert all("generator" not in r["plugins"] for r in old)
    (tmp_path / records.RESULTS).write_text(json.dumps({**json.loads(board.read_text().splitlines()[0]),
                                                        "schema_version": records.SCHEMA_VERSION + 1}) + "\n")
    with pytest.raises(records.RecordError, match=f"schema version {records.SCHEMA_VERSION + 1}; this harness reads versions up to "
                       f"{records.SCHEMA_VERSION}"):
        records.load(tmp_path)


def test_table_sizes_come_from_the_records_never_the_registry():
    spec = {"dataset": {"label": "d", "name": "d", "params": {}}, "scenario": "s",
            "classifier": {"label": "c", "name": "c", "params": {}},
            "generator": {"label": "mine", "name": "not_installed_here", "params": {}}, "sampling": None}
    row = {"status": "ok", "spec": spec, "split": "test", "generator_stats": {"train_steps": 300},
           "plugins": {"dataset": {"params": {"resolution": 32}}, "generator": {"params": {"resolution": 24}}}}
    assert table_sizes([row]) == {("d", "s", "c", "test"): "images 32 px; mine: 24 px, 300 training steps"}
    old = {**row, "plugins": {"dataset": {"params": {"resolution": 32}}}}  # schema 1: no generator identity
    assert table_sizes([old]) == {("d", "s", "c", "test"): "images 32 px; mine: 300 training steps"}


def test_two_proportions_samplings_of_one_ratio_are_two_methods(tmp_path):
    grid = GRID.replace('strategy = "fair"\nratio = 1.0', 'strategy = "proportions"\nratio = 1.0\nproportions = [0.5, 0.5]')
    grid += '\n[[sampling]]\nstrategy = "proportions"\nratio = 1.0\nproportions = [0.9, 0.1]\n'
    summary = _run(tmp_path, grid)
    assert summary.failed == []
    frame = records_frame(records.load(tmp_path / "run"))
    assert sorted(frame["method"]) == ["noisy_copy [proportions-1 (0.5/0.5)]", "noisy_copy [proportions-1 (0.9/0.1)]",
                                       "none"]
    assert len(load_summary(tmp_path / "run")) == 3


def test_a_damaged_feature_cache_is_reported_by_path_and_recomputed(tmp_path, capsys):
    import torch

    from harness.metrics import features
    from harness.toydata import toy_imageset

    if "flat@4" not in features.EXTRACTORS:
        features.register_extractor("flat@4", lambda: features.FeatureExtractor(
            "flat@4", 48, torch.nn.Flatten(), 4, lambda x: x))
    images = toy_imageset(10, 8, seed=0)
    first = features.image_features(images, "flat@4", tmp_path)
    [stored] = (tmp_path / "features").glob("*/features.npz")
    data = bytearray(stored.read_bytes())
    data[200] ^= 0xFF
    stored.write_bytes(bytes(data))
    again = features.image_features(images, "flat@4", tmp_path)
    assert f"cache artifact {stored.parent} is corrupted (checksum mismatch in features.npz)" in capsys.readouterr().err
    assert np.array_equal(first, again)
