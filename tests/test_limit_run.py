"""`harness run --limit N` (a quick end-to-end check of new plugins) and `--add-classifier`: every
stage runs on N images per split with the plugins' `limit_params`, the run is marked limited in
its records and manifest, and publishing, baselines and the regression gate refuse it."""
from __future__ import annotations

import json

import numpy as np

from harness import Splits, records
from harness.cli import main
from harness.runner import limit_splits
from harness.toydata import toy_imageset

AUTHOR_PLUGINS = '''
import numpy as np
from harness import Classifier, Generator, ImageSet, hookimpl


class Stepper(Generator):
    """A new method under test: copies training images, and reports how many steps it trained."""
    name = "stepper"
    version = "1"
    defaults = {"steps": 1000}
    limit_params = {"steps": 2}

    def fit(self, train, seed, unlabeled=None):
        self.train = train
        self.stats = {"steps": float(self.params["steps"])}

    def sample(self, labels, attributes, seed):
        rows = [int(np.flatnonzero(self.train.labels == y)[0]) for y in labels]
        return self.train.images[rows]

    def save(self, directory):
        self.train.save(directory / "train.npz")

    def load(self, directory):
        self.train = ImageSet.load(directory / "train.npz")


class Prior(Classifier):
    """A new classifier under test: predicts the training class frequencies."""
    name = "prior"
    version = "1"
    defaults = {}

    def fit(self, train, val, seed, sample_weight=None):
        counts = np.bincount(train.labels, minlength=train.num_classes) + 1.0
        self.prior = counts / counts.sum()

    def predict_proba(self, images):
        return np.tile(self.prior, (len(images), 1))


@hookimpl
def harness_generators():
    return [Stepper]


@hookimpl
def harness_classifiers():
    return [Prior]
'''


def _run(tiny_grid, toy_plugins, author_plugins, out, cache, *extra):
    return main(["run", str(tiny_grid), "--out", str(out), "--cache", str(cache), "--plugins", toy_plugins,
                 "--plugins", str(author_plugins), "--quiet", *extra])


def test_a_limited_run_checks_new_plugins_end_to_end_and_is_marked(tiny_grid, toy_plugins, tmp_path, capsys):
    author = tmp_path / "mine.py"
    author.write_text(AUTHOR_PLUGINS)
    out, cache = tmp_path / "limited", tmp_path / "cache"
    assert _run(tiny_grid, toy_plugins, author, out, cache, "--add-generator", "stepper",
                "--add-classifier", "prior", "--limit", "12") == 0
    assert "LIMITED RUN (--limit 12)" in capsys.readouterr().err
    rows = records.load(out)
    assert rows and all(r["status"] == "ok" for r in rows)
    assert {r["spec"]["classifier"]["label"] for r in rows} == {"centroid", "prior"}
    assert {r["spec"]["generator"]["label"] for r in rows} == {"none", "noisy_copy", "oversample", "stepper"}
    assert all(r["eval"]["limit"] == 12 and r["n"]["eval"] == 12 and r["n"]["train_real"] <= 12 for r in rows)
    stepper = [r for r in rows if r["spec"]["generator"]["label"] == "stepper"]
    assert stepper and all(r["generator_stats"]["steps"] == 2 for r in stepper)  # its limit_params applied
    assert json.loads((out / records.MANIFEST).read_text())["options"]["limit"] == 12

    # the same cells without --limit share no key with the limited ones
    full = tmp_path / "full"
    assert _run(tiny_grid, toy_plugins, author, full, cache, "--add-generator", "stepper",
                "--only", "generator=stepper", "--only", "scenario=natural") == 0
    full_rows = records.load(full)
    assert all("limit" not in r["eval"] and r["generator_stats"]["steps"] == 1000 for r in full_rows)
    assert not {r["cell_key"] for r in full_rows} & {r["cell_key"] for r in rows}


def test_a_limited_run_cannot_be_published_baselined_gated_or_exported(tiny_grid, toy_plugins, tmp_path, capsys):
    author = tmp_path / "mine.py"
    author.write_text(AUTHOR_PLUGINS)
    out = tmp_path / "limited"
    assert _run(tiny_grid, toy_plugins, author, out, tmp_path / "cache", "--only", "generator=none",
                "--limit", "9") == 0
    capsys.readouterr()
    for argv, use in ((["leaderboard", str(out), "--publish", str(tmp_path / "pub")], "published"),
                      (["baseline", str(out), "--output", str(tmp_path / "b.csv")], "used as a baseline"),
                      (["check", str(out), "--baseline", str(tmp_path / "b.csv")], "checked against a baseline"),
                      (["publish", str(out), "--out", str(tmp_path / "hub")], "published"),
                      (["export", str(out), "--synthetic", str(tmp_path / "export")], "exported")):
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert "limited run (--limit 9" in error and use in error and "rerun without --limit" in error
    assert not any((tmp_path / name).exists() for name in ("pub", "b.csv", "hub", "export"))


def test_add_classifier_refuses_a_label_the_grid_has(tiny_grid, toy_plugins, capsys):
    assert main(["run", str(tiny_grid), "--plugins", toy_plugins, "--add-classifier", "centroid", "--dry-run"]) == 2
    assert "--add-classifier centroid" in capsys.readouterr().err


def test_limit_keeps_every_class_and_group_while_n_allows():
    split = toy_imageset(90, 8, seed=0, prefix="test")
    limited = limit_splits(Splits(train=split, val=split, test=split), 6, "group").test
    assert len(limited) == 6
    classes = len(np.unique(split.labels))
    assert len(np.unique(limited.labels)) == classes
    pairs = {(int(y), int(g)) for y, g in zip(split.labels, split.attributes["group"])}
    if len(pairs) <= 6:
        assert {(int(y), int(g)) for y, g in zip(limited.labels, limited.attributes["group"])} == pairs
    assert set(limited.ids) <= set(split.ids)


def test_a_negative_limit_is_refused_before_anything_runs(tiny_grid, toy_plugins, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(tiny_grid), "--plugins", toy_plugins, "--out", str(out), "--cache", str(tmp_path / "c"),
                 "--limit", "-3"]) == 2
    assert "--limit must be a number of images per split (>= 1), got -3" in capsys.readouterr().err
    assert not out.exists()


def test_limit_params_that_name_no_parameter_are_reported_as_the_plugins_mistake(tiny_grid, toy_plugins, tmp_path,
                                                                                capsys):
    author = tmp_path / "mine.py"
    author.write_text(AUTHOR_PLUGINS.replace('limit_params = {"steps": 2}', 'limit_params = {"stepz": 2}'))
    assert _run(tiny_grid, toy_plugins, author, tmp_path / "run", tmp_path / "cache", "--add-generator", "stepper",
                "--limit", "8") == 2
    assert "generator 'stepper': limit_params ['stepz'] are not among its parameters" in capsys.readouterr().err
