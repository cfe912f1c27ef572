"""Sharing on the Hub, offline: `harness export RUN --synthetic OUT` writes a folder that
`datasets.load_dataset` reads back image for image, with cards that huggingface_hub parses and the
generator weights as safetensors; `harness publish RUN --hub REPO` writes the leaderboard folder
(records.parquet, tables, dataset card) and hands it to huggingface_hub's upload (patched here)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import ImageSet, records
from harness.cache import Cache
from harness.cli import main

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

WEIGHTED_PLUGINS = '''
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from harness import Generator, ImageSet, hookimpl


class MeanPlusCopy(Generator):
    """Copies a training image of the requested class; its 'weights' are the class mean images."""
    name = "meancopy"
    version = "1"
    defaults = {}

    def fit(self, train, seed, unlabeled=None):
        self.train = train
        self.means = np.stack([train.images[train.labels == k].mean(0) for k in range(train.num_classes)])

    def sample(self, labels, attributes, seed):
        rows = [int(np.flatnonzero(self.train.labels == y)[-1]) for y in labels]
        return self.train.images[rows]

    def save(self, directory):
        save_file({"class_means": self.means.astype(np.float32)}, str(Path(directory) / "model.safetensors"))
        self.train.save(Path(directory) / "train.npz")

    def load(self, directory):
        self.means = load_file(str(Path(directory) / "model.safetensors"))["class_means"]
        self.train = ImageSet.load(Path(directory) / "train.npz")


@hookimpl
def harness_generators():
    return [MeanPlusCopy]
'''


@pytest.fixture
def finished_run(tiny_grid, toy_plugins, tmp_path):
    author = tmp_path / "weighted.py"
    author.write_text(WEIGHTED_PLUGINS)
    out, cache = tmp_path / "run", tmp_path / "cache"
    assert main(["run", str(tiny_grid), "--out", str(out), "--cache", str(cache), "--plugins", toy_plugins,
                 "--plugins", str(author), "--add-generator", "meancopy", "--only", "scenario=natural",
                 "--only", "generator=none,noisy_copy,meancopy", "--quiet"]) == 0
    return out, cache


def test_exported_synthetic_sets_load_with_datasets_image_for_image(finished_run, tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    from huggingface_hub import DatasetCard, ModelCard
    from safetensors.numpy import load_file

    run, cache = finished_run
    out = tmp_path / "export"
    assert main(["export", str(run), "--synthetic", str(out)]) == 0  # the cache comes from the manifest
    assert "4 synthetic sets" in capsys.readouterr().out  # 2 generators x 2 seeds

    loaded = datasets.load_dataset(str(out), "toy", split="train", cache_dir=str(tmp_path / "hf"))
    sets = {r["artifacts"]["synthetic"] for r in records.load(run) if r["artifacts"].get("synthetic")}
    originals = {key: ImageSet.load(Cache(cache).path("synthetic", key) / "synthetic.npz") for key in sets}
    assert len(loaded) == sum(len(s) for s in originals.values())
    assert loaded.features["label"].names == ["class0", "class1", "class2"]
    assert {row["name"] for row in loaded["generator"]} == {"noisy_copy", "meancopy"}
    for row in loaded.select(range(0, len(loaded), 17)):
        original = originals[row["synthetic_key"]]
        i = list(original.ids).index(row["id"])
        assert np.array_equal(np.asarray(row["image"]), np.moveaxis(original.images[i], 0, -1).squeeze())
        assert row["label"] == original.labels[i] and row["provenance"] == original.provenance[i]
        assert row["attributes"]["group"] == original.attribute_vocab["group"][original.attributes["group"][i]]

    card = DatasetCard.load(out / "README.md")
    assert card.data.configs[0]["config_name"] == "toy" and "synthetic" in card.data.tags
    models = sorted((out / "models").iterdir())
    assert [m.name.split("-")[0] for m in models] == ["meancopy", "meancopy", "noisy_copy", "noisy_copy"]
    model_card = ModelCard.load(models[0] / "README.md")
    assert model_card.data.library_name == "fairgen-harness" and "model.safetensors" in model_card.text
    assert load_file(str(models[0] / "model.safetensors"))["class_means"].shape == (3, 3, 8, 8)


def test_publish_hub_writes_parquet_records_and_a_card_and_uploads_the_folder(finished_run, tmp_path, monkeypatch,
                                                                              capsys):
    import huggingface_hub
    from huggingface_hub import DatasetCard

    calls = []
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda repo_id, **kw: calls.append(("create", repo_id, kw)))

    def upload_folder(**kw):
        calls.append(("upload", kw["repo_id"], kw))
        names = {p.name for p in Path(kw["folder_path"]).iterdir()}
        assert names >= {"records.parquet", "README.md", "results.jsonl", "manifest.json"}
        return "https://huggingface.co/datasets/me/board/commit/abc"

    monkeypatch.setattr(huggingface_hub, "upload_folder", upload_folder)
    run, _ = finished_run
    out = tmp_path / "board"
    assert main(["publish", str(run), "--out", str(out), "--hub", "me/board"]) == 0
    assert [c[0] for c in calls] == ["create", "upload"]
    assert calls[1][2]["repo_type"] == "dataset" and calls[1][2]["folder_path"] == str(out)
    assert "commit/abc" in capsys.readouterr().out

    table = pd.read_parquet(out / "records.parquet")
    rows = records.load(run)
    assert len(table) == len(rows) and set(table["generator"]) == {"none", "noisy_copy", "meancopy"}
    assert np.allclose(table["metric.acc"], [r["metrics"]["acc"] for r in rows])
    card = DatasetCard.load(out / "README.md")
    assert card.data.configs == [{"config_name": "records", "data_files": "records.parquet"}]
    assert "## Tables" in card.text


def test_export_refuses_a_folder_with_files_in_it(finished_run, tmp_path, capsys):
    run, _ = finished_run
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["export", str(run), "--synthetic", str(tmp_path / "busy")]) == 2
    assert "not empty" in capsys.readouterr().err


def test_grayscale_multilabel_sets_keep_pixels_label_names_and_unknown_attributes(tmp_path):
    datasets = pytest.importorskip("datasets")
    from harness.hub import synthetic_table, write_parquet

    rng = np.random.default_rng(0)
    synthetic = ImageSet(images=rng.integers(0, 256, (6, 1, 5, 7), dtype=np.uint8),
                         labels=np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0], [0, 1]]),
                         attributes={"sex": np.array([0, 1, -1, 0, 1, 0])}, label_names=["effusion", "edema"],
                         attribute_vocab={"sex": ["female", "male"]}, ids=[f"s{i}" for i in range(6)],
                         provenance=["synthetic:mine"] * 6)
    record = {"spec": {"dataset": {"label": "cxr", "name": "cxr"}, "scenario": "natural",
                       "generator": {"label": "mine", "name": "mine", "params": {}}, "sampling": None},
              "plugins": {"generator": {"name": "mine", "version": "2", "params": {"steps": 3}}}}
    table, features = synthetic_table(synthetic, record, "k" * 20)
    (tmp_path / "data").mkdir()
    write_parquet(table, tmp_path / "data" / "set.parquet", features)
    loaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "data" / "set.parquet"), split="train",
                                   cache_dir=str(tmp_path / "hf"))
    assert loaded.features["label"].feature.names == ["effusion", "edema"]
    assert [row["label"] for row in loaded] == [[0], [1], [0, 1], [], [0], [1]]  # the positive classes
    assert [row["attributes"]["sex"] for row in loaded] == ["female", "male", "unknown", "female", "male", "female"]
    assert all(np.array_equal(np.asarray(row["image"]), synthetic.images[i, 0]) for i, row in enumerate(loaded))
    assert loaded[0]["generator"]["version"] == "2" and '"steps": 3' in loaded[0]["generator"]["params"]
