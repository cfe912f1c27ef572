"""Bad data: labels and attribute codes outside their vocabulary are refused with a message;
image rows that are missing, unreadable or point outside the dataset root are refused naming
the row; groups with one class or too few samples give NaN metrics with a reason, never -1."""
from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness import DataError, records
from harness.grid import load_grid
from harness.runner import run_grid
from harness.toydata import toy_imageset
from plugins.datasets._real import RealDataset

from reliability_support import PLUGIN_FILES, builtin_entry_points


# -- the data contract -----------------------------------------------------------------------
def _broken(change) -> None:
    images = toy_imageset(20, 8, seed=0)
    change(images)
    images.validate("train")


@pytest.mark.parametrize("change, message", [
    (lambda s: s.labels.__setitem__(3, 3), r"train: labels must be codes in 0..2 .*got range 0..3"),
    (lambda s: s.labels.__setitem__(3, -1), r"train: labels must be codes in 0..2 .*got range -1..2"),
    (lambda s: s.attributes["group"].__setitem__(2, 2), r"train: attribute 'group' codes must be -1 \(unknown\) or 0..1"),
    (lambda s: s.attributes["group"].__setitem__(2, -2), r"attribute 'group' codes must be -1 \(unknown\) or 0..1"),
    (lambda s: s.attribute_vocab.pop("group"), r"attribute 'group' has no vocabulary"),
    (lambda s: setattr(s, "images", s.images.astype(np.float32)), r"images must be uint8"),
    (lambda s: setattr(s, "images", s.images[:, :2]), r"1 or 3 channels"),
    (lambda s: setattr(s, "ids", s.ids[:-1]), r"20 images but 20 labels, 19 ids"),
])
def test_values_outside_the_contract_are_refused_with_a_message(change, message):
    with pytest.raises(DataError, match=message):
        _broken(change)


def test_multi_hot_labels_of_the_wrong_width_are_refused():
    def two_wide(images):
        images.labels = np.zeros((len(images), 2), dtype=np.int64)  # 3 classes declared

    with pytest.raises(DataError):
        _broken(two_wide)


# -- image rows in a real loader -------------------------------------------------------------
class Listed(RealDataset):
    """A real-data loader whose metadata table is given directly (one row per image)."""

    name = "listed"
    version = "1"
    label_names: ClassVar[list[str]] = ["a", "b"]
    sensitive_attributes: ClassVar[list[str]] = ["sex"]
    rows: ClassVar[list[dict]] = []

    def read_table(self, root: Path) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def _png(path: Path, value: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 12, 3), value, dtype=np.uint8)).save(path)
    return path.name


def _load(tmp_path: Path, bad_row: dict) -> None:
    root = tmp_path / "root"
    good = [{"path": _png(root / f"{i}.png", 10 * i), "label": "ab"[i % 2], "patient": str(i),
             "sex": ["female", "male"][i % 2]} for i in range(8)]
    Listed.rows = good + [{"label": "a", "patient": "x", "sex": "female", **bad_row}]
    Listed(root=str(root), cache_dir=str(tmp_path / "cache"), resolution=8).load(0)


def test_a_missing_image_row_is_refused_naming_it(tmp_path):
    with pytest.raises(DataError, match=r"image 'gone.png' listed in the metadata is missing"):
        _load(tmp_path, {"path": "gone.png"})


@pytest.mark.parametrize("escape", ["../outside.png", "sub/../../outside.png", "ABSOLUTE", "link.png"])
def test_paths_escaping_the_root_are_refused(tmp_path, escape):
    outside = tmp_path / "outside.png"
    _png(outside, 200)
    if escape == "ABSOLUTE":
        escape = str(outside)
    if escape == "link.png":
        (tmp_path / "root").mkdir()
        os.symlink(outside, tmp_path / "root" / "link.png")  # a link inside root to a file outside it
    with pytest.raises(DataError, match="outside the data root"):
        _load(tmp_path, {"path": escape})


def test_a_label_outside_the_vocabulary_is_refused(tmp_path):
    (tmp_path / "root").mkdir()
    _png(tmp_path / "root" / "odd.png", 5)
    with pytest.raises(DataError, match="labels must be codes in 0..1"):
        _load(tmp_path, {"path": "odd.png", "label": "not-a-class"})


@pytest.mark.parametrize("content", [b"not an image at all", b""], ids=["garbage", "empty"])
def test_an_unreadable_image_row_is_refused_naming_it(tmp_path, content):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "broken.png").write_bytes(content)
    with pytest.raises(DataError, match="broken.png"):
        _load(tmp_path, {"path": "broken.png"})


# -- groups too small or with one class ------------------------------------------------------
BAD_GROUPS = """
name = "bad-groups"
seeds = 1

[[dataset]]
name = "faulty_data"
label = "one-class"
scenarios = ["natural"]
params = { test_group_classes = [0] }

[[dataset]]
name = "faulty_data"
label = "tiny"
scenarios = ["natural"]
params = { test_group_n = 3 }

[[generator]]
name = "noisy_copy"

[[classifier]]
name = "faulty_clf"
"""


def _values(tree) -> list:
    if isinstance(tree, dict):
        return [v for value in tree.values() for v in _values(value)]
    if isinstance(tree, list):
        return [v for value in tree for v in _values(value)]
    return [tree]


@pytest.fixture(scope="module")
def bad_group_records(tmp_path_factory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("bad-groups")
    (tmp / "grid.toml").write_text(BAD_GROUPS)
    summary = run_grid(load_grid(str(tmp / "grid.toml")), tmp / "run", tmp / "cache", plugin_files=PLUGIN_FILES,
                       blocked=builtin_entry_points())
    assert summary.failed == []
    return {r["spec"]["dataset"]["label"]: r for r in records.load(summary.run_dir)}


def test_a_group_under_min_group_n_gets_nan_metrics_with_reasons(bad_group_records):
    row = bad_group_records["tiny"]
    g1 = row["per_group"]["group"]["g1"]
    assert g1["n"] == 3 and g1["acc"] is None and g1["reason"] == "n=3 < min_group_n=10"
    for gap in ("gap_acc", "dp", "eo"):
        assert row["metrics"][gap] is None and "g1" in row["nan_reasons"][gap]


def test_a_group_with_one_class_gets_nan_auc_with_a_reason(bad_group_records):
    row = bad_group_records["one-class"]
    assert row["per_group"]["group"]["g1"]["auc"] is None
    assert row["metrics"]["auc_gap"] is None and "needs at least 2 valid groups" in row["nan_reasons"]["auc_gap"]


def test_undefined_metrics_are_null_with_a_reason_never_minus_one(bad_group_records):
    for row in bad_group_records.values():
        for name, value in row["metrics"].items():
            assert value != -1, name
            assert value is not None or row["nan_reasons"].get(name), f"{name} is NaN without a reason"
        assert -1 not in _values(row["per_group"])


def test_every_undefined_group_metric_has_a_reason(bad_group_records):
    g1 = bad_group_records["one-class"]["per_group"]["group"]["g1"]
    assert g1["auc"] is None and g1["reason"]
