"""Multi-label support: multi-hot chest X-rays, replicate sampling at +100%..+1000%, per-label AUC metrics,
sigmoid classifiers, the scenarios that cut multi-hot data, the condition vector and a grid end to end."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.utils.class_weight import compute_class_weight

from harness import ConfigError, DataError, ImageSet
from harness.metrics import EvalInput, get_metric, group_report
from harness.sampling import SamplingSpec, plan_requests
from harness.scenarios import Cap, HoldoutKeys, MinorityFraction, MinorityPerClass, OneSitePerClass, Scenario
from plugins.classifiers import training
from plugins.classifiers.frozen import KNN, HistGradientBoosting, LinearProbe
from plugins.classifiers.timm_cnn import SmallCNN
from plugins.datasets.cxr import CLASSES, ChestXray


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def multi_hot():
    return ChestXray(multilabel=True, n_train=2000, n_val=20, n_test=40, resolution=16).load(0)


def toy_multilabel(seed: int = 0, n: int = 400):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 3)) < [0.3, 0.5, 0.2]).astype(int)
    groups = rng.integers(0, 2, n)
    proba = np.clip(0.35 * y + rng.random((n, 3)) * (0.6 + 0.3 * groups[:, None]), 0, 1)  # group 1 noisier
    return EvalInput(y, proba, groups, ["a", "b"], min_group_n=10)


# -- metrics -----------------------------------------------------------------------------------------
def test_label_auc_gap_is_the_mean_of_per_label_group_auc_ranges():
    inp = toy_multilabel()
    per_group = np.array([[roc_auc_score(inp.y_true[inp.groups == g, c], inp.proba[inp.groups == g, c])
                           for c in range(3)] for g in range(2)])
    expected = np.mean(per_group.max(0) - per_group.min(0))
    assert get_metric("label_auc_gap")(inp).value == pytest.approx(expected, rel=1e-9)
    assert get_metric("auc")(inp).value == pytest.approx(roc_auc_score(inp.y_true, inp.proba, average="macro"))
    macro_gap = abs(per_group[0].mean() - per_group[1].mean())  # auc_gap compares label-averaged AUCs
    assert get_metric("auc_gap")(inp).value == pytest.approx(macro_gap, rel=1e-9)
    report = group_report(inp)
    np.testing.assert_allclose(report["a"]["label_auc"], per_group[0])
    np.testing.assert_allclose(report["b"]["label_auc"], per_group[1])


def test_label_auc_gap_equals_auc_gap_when_binary_and_skips_undefined_labels():
    rng = np.random.default_rng(1)
    y, groups = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    p1 = np.clip(0.3 * y + rng.random(200), 0, 1)
    binary = EvalInput(y, np.stack([1 - p1, p1], 1), groups, ["a", "b"])
    assert get_metric("label_auc_gap")(binary).value == pytest.approx(get_metric("auc_gap")(binary).value)
    inp = toy_multilabel()
    inp.y_true[inp.groups == 1, 2] = 0  # label 2 has no positive in group b: its AUC gap is undefined
    result = get_metric("label_auc_gap")(EvalInput(inp.y_true, inp.proba, inp.groups, ["a", "b"]))
    assert "skipped class(es) [2]" in result.reason and np.isfinite(result.value)


# -- dataset -----------------------------------------------------------------------------------------
def test_cxr_multilabel_gives_multi_hot_findings_at_their_rates(multi_hot):
    train = multi_hot.train
    assert train.multilabel and train.labels.shape == (2000, len(CLASSES))
    findings = train.labels[:, 1:]
    np.testing.assert_array_equal(train.labels[:, 0], findings.sum(1) == 0)  # no_finding iff none
    np.testing.assert_allclose(findings.mean(0), [0.25, 0.25, 0.2, 0.15], atol=0.03)
    assert (findings.sum(1) >= 2).mean() > 0.1  # several findings on one film
    assert ChestXray(n_train=50, n_val=5, n_test=10).load(0).train.labels.ndim == 1  # the default stays single-label
    with pytest.raises(ConfigError, match="finding_rates"):
        ChestXray(multilabel=True, finding_rates=[0.5, 0.5]).load(0)


# -- sampling ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [1.0, 2.5, 10.0])
def test_replicate_repeats_multi_hot_training_rows(multi_hot, ratio):
    train = multi_hot.train
    labels, attributes = plan_requests(train, "sex", SamplingSpec("replicate", ratio), seed=0)
    n = int(round(ratio * len(train)))
    assert labels.shape == (n, len(CLASSES)) and len(attributes["sex"]) == n
    rows = np.arange(n) % len(train)
    np.testing.assert_array_equal(labels, train.labels[rows])
    np.testing.assert_array_equal(attributes["sex"], train.attributes["sex"][rows])


def test_class_drawing_strategies_refuse_multi_hot_labels(multi_hot):
    with pytest.raises(ConfigError, match="replicate"):
        plan_requests(multi_hot.train, "sex", SamplingSpec("fair", 1.0), seed=0)


# -- multi-hot conditioning of the pixel diffusion generators ------------------------------------------
TINY = dict(resolution=8, block_out_channels=[8, 16], norm_num_groups=4, layers_per_block=1, batch_size=8,
            train_steps=2, warmup_steps=1, sample_steps=2, sample_batch_size=3, device="cpu")


def test_multi_hot_condition_embedding_is_the_sum_of_the_present_labels_rows():
    from plugins.generators._diffusion import ConditionedUNet

    unet = {"sample_size": 8, "in_channels": 1, "out_channels": 1, "block_out_channels": [8, 16],
            "layers_per_block": 1, "down_block_types": ["DownBlock2D"] * 2, "up_block_types": ["UpBlock2D"] * 2,
            "norm_num_groups": 4}
    model = ConditionedUNet(unet, [3, 4], multi_hot=[True, False])
    cond = torch.tensor([[1, 0, 1, 2], [0, 0, 0, 3]])
    got = model.condition_embedding(cond, torch.tensor([False, True]))
    findings, sex = model.factors[0].weight, model.factors[1].weight
    torch.testing.assert_close(got[0], findings[0] + findings[2] + sex[2])
    torch.testing.assert_close(got[1], model.null)


@pytest.mark.parametrize("name", ["ddpm", "medi"])
def test_pixel_generators_condition_on_multi_hot_findings_and_demographics(multi_hot, name, tmp_path):
    from plugins.generators.ddpm import ClassConditionalDDPM
    from plugins.generators.medi import MeDi

    train = multi_hot.train.subset(np.arange(64))
    generator = {"ddpm": ClassConditionalDDPM, "medi": MeDi}[name](**TINY)
    generator.fit(train, seed=0)
    request = train.labels[:4], {"sex": np.array([0, 1, -1, 0])}
    encoded = generator.encode(*request)
    # Khosravi-style layout: 5 finding columns (0/1), then (medi) the sex index with "unknown" = 2
    expected = train.labels[:4] if name == "ddpm" else np.column_stack([train.labels[:4], [0, 1, 2, 0]])
    np.testing.assert_array_equal(encoded, expected)
    images = generator.sample(*request, seed=1)
    assert images.shape == (4,) + train.image_shape
    generator.save(tmp_path)
    loaded = type(generator)(**TINY)
    loaded.load(tmp_path)
    np.testing.assert_array_equal(loaded.sample(*request, seed=1), images)
    with pytest.raises(Exception, match="multi-hot"):
        generator.sample(np.array([0, 1]), {"sex": np.array([0, 1])}, seed=1)


# -- the condition vector: Khosravi et al.'s CheXpert layout ---------------------------------------------
#: CheXpert's 14 observations, in train.csv's column order
CHEXPERT_FINDINGS = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
                     "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
                     "Pleural Other", "Fracture", "Support Devices"]
CHEXPERT_VOCAB = {"sex": ["female", "male"], "age": ["<40", "40-59", "60-79", "80+"]}  # plugins/datasets/chest_real.py


def chexpert_like(n: int = 6) -> ImageSet:
    rng = np.random.default_rng(0)
    return ImageSet(images=np.zeros((n, 1, 8, 8), np.uint8), labels=(rng.random((n, 14)) < 0.3).astype(np.int64),
                    attributes={"sex": rng.integers(0, 2, n), "age": rng.integers(-1, 4, n)},
                    label_names=list(CHEXPERT_FINDINGS), attribute_vocab=CHEXPERT_VOCAB,
                    ids=np.array([f"c{i}" for i in range(n)])).validate()


def test_medi_condition_on_chexpert_is_the_22_column_findings_and_demographics_vector():
    from plugins.generators.medi import MeDi

    train = chexpert_like()
    medi = MeDi(**TINY)
    medi.set_condition(train)  # trains nothing
    expected = ([f"label:{f}" for f in CHEXPERT_FINDINGS] + ["sex=female", "sex=male", "sex=unknown"]
                + ["age=<40", "age=40-59", "age=60-79", "age=80+", "age=unknown"])
    assert medi.condition_columns() == expected and len(expected) == 22
    vector = medi.condition_vector(train.labels, train.attributes)
    np.testing.assert_array_equal(vector[:, :14], train.labels)
    np.testing.assert_array_equal(vector[:, 14:17].argmax(1), train.attributes["sex"])
    np.testing.assert_array_equal(vector[:, 17:].argmax(1), np.where(train.attributes["age"] < 0, 4, train.attributes["age"]))
    assert (vector[:, 14:17].sum(1) == 1).all() and (vector[:, 17:].sum(1) == 1).all()
    # the model's condition embedding is a linear map of exactly this vector, in this order
    from plugins.generators._diffusion import ConditionedUNet

    factors = medi.state["factors"]
    model = ConditionedUNet(medi.state["unet"], [f["size"] for f in factors], [f["multi_hot"] for f in factors])
    cond = torch.from_numpy(medi.encode(train.labels, train.attributes))
    with torch.no_grad():
        embedding = model.condition_embedding(cond, torch.zeros(len(cond), dtype=torch.bool))
        linear = torch.from_numpy(vector).float() @ torch.cat([table.weight for table in model.factors])
    torch.testing.assert_close(embedding, linear)


def test_class_only_ddpm_conditions_on_the_14_findings_alone():
    from plugins.generators.ddpm import ClassConditionalDDPM

    train = chexpert_like()
    ddpm = ClassConditionalDDPM(**TINY)
    ddpm.set_condition(train)
    assert ddpm.condition_columns() == [f"label:{f}" for f in CHEXPERT_FINDINGS]
    np.testing.assert_array_equal(ddpm.condition_vector(train.labels, train.attributes), train.labels)


# -- classifiers: one sigmoid per label --------------------------------------------------------------
def quadrant_set(n: int, seed: int, prefix: str, size: int = 16) -> ImageSet:
    """Multi-hot toy: each quadrant independently holds a bright square (p=0.4); label q = square in q."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 4)) < 0.4).astype(np.int64)
    tone = rng.integers(0, 2, n)
    images = (rng.integers(0, 60, (n, 3, size, size)) + 40 + 60 * tone[:, None, None, None]).astype(np.uint8)
    half = size // 2
    for i, quadrant in zip(*np.nonzero(labels)):
        row, col = divmod(int(quadrant), 2)
        y, x = row * half + rng.integers(0, half - 4), col * half + rng.integers(0, half - 4)
        images[i, :, y:y + 4, x:x + 4] = 250
    return ImageSet(images=images, labels=labels, attributes={"tone": tone}, label_names=["tl", "tr", "bl", "br"],
                    attribute_vocab={"tone": ["light", "dark"]}, ids=np.array([f"{prefix}{i}" for i in range(n)]))


@pytest.fixture(scope="module")
def quadrants():
    return quadrant_set(300, 0, "s"), quadrant_set(100, 1, "v"), quadrant_set(150, 2, "t")


def test_multilabel_loss_is_per_label_bce_with_balanced_label_weights():
    rng = np.random.default_rng(0)
    y = (rng.random((50, 3)) < [0.1, 0.5, 0.8]).astype(np.int64)
    weights = training.label_balance_weights(y)
    for c in range(3):  # sklearn's class_weight="balanced" of each one-vs-rest label
        np.testing.assert_allclose(weights[:, c], compute_class_weight("balanced", classes=np.array([0, 1]), y=y[:, c]))
    logits = torch.from_numpy(rng.standard_normal((50, 3))).float()
    target = torch.from_numpy(y)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target.float(), reduction="none")
    torch.testing.assert_close(training.classification_loss(logits, target, "ce", 2.0), bce.mean(1))
    torch.testing.assert_close(training.classification_loss(logits, target, "focal", 0.0), bce.mean(1))
    focal = training.classification_loss(logits, target, "focal", 2.0)
    assert (focal < bce.mean(1)).all()  # focal down-weights every label's easy part
    w = torch.from_numpy(weights).float()
    weighted = training.classification_loss(logits, target, "ce", 2.0, w)
    torch.testing.assert_close(weighted, (bce * torch.where(target > 0, w[1], w[0])).mean(1))
    assert training.label_balance_weights(np.zeros((4, 2), np.int64)).tolist() == [[1.0, 1.0], [1.0, 1.0]]


@pytest.mark.parametrize("make", [lambda: SmallCNN(epochs=3), lambda: LinearProbe(l2=[1e-3, 1e-1], feature_cache="none"),
                                  lambda: KNN(feature_cache="none")], ids=["small_cnn", "linear_probe", "knn"])
def test_classifiers_learn_multi_hot_labels_with_per_label_probabilities(make, quadrants):
    train, val, test = quadrants
    classifier = make()
    classifier.fit(train, val, seed=0)
    proba = classifier.predict_proba(test)
    assert proba.shape == (len(test), 4) and proba.min() >= 0 and proba.max() <= 1
    assert np.abs(proba.sum(1) - 1).max() > 0.5  # independent per-label probabilities, not a softmax
    assert roc_auc_score(test.labels, proba, average="macro") > 0.85  # chance 0.5
    assert 0.5 < classifier.stats["best_val_auc"] <= 1  # selected on val macro AUC


def test_multilabel_class_balance_weighs_the_loss_and_heads_without_a_multilabel_form_refuse(quadrants):
    train, val, _ = quadrants
    rare = train.subset(np.flatnonzero((train.labels[:, 0] == 0) | (np.arange(len(train)) % 6 == 0)))
    assert rare.labels[:, 0].mean() < 0.12  # label 0 made rare
    balanced = LinearProbe(l2=[1e-2], feature_cache="none", balance="class")
    plain = LinearProbe(l2=[1e-2], feature_cache="none", balance="none")
    for classifier in (balanced, plain):
        classifier.fit(rare, val, seed=0)
    # per-label balance weighs the rare label's positives up, so it is predicted more often
    assert balanced.predict_proba(val).mean(0)[0] > plain.predict_proba(val).mean(0)[0] + 0.05
    with pytest.raises(ConfigError, match="multi-label"):
        HistGradientBoosting(feature_cache="none").fit(train, val, seed=0)
    with pytest.raises(ConfigError, match="balance='none'"):
        KNN(feature_cache="none", balance="class").fit(train, val, seed=0)


# -- scenarios on multi-hot labels -------------------------------------------------------------------------
def test_attribute_only_scenarios_cut_multi_hot_data_and_class_cuts_name_them(multi_hot):
    train = multi_hot.train
    for scenario in (Scenario("sex"), Cap("sex", k=100), MinorityFraction("sex", p=0.05)):
        kept, report = scenario.apply(train, 0)
        assert kept.multilabel and kept.labels.shape[1] == len(CLASSES)
        removed = np.setdiff1d(train.ids, kept.ids)
        removed_labels = train.labels[np.isin(train.ids, removed)]
        assert report["removed_per_class"] == dict(zip(CLASSES, removed_labels.sum(0).tolist()))
    assert Cap("sex", k=100).apply(train, 0)[0].attributes["sex"].tolist().count(0) == 100
    for scenario in (MinorityPerClass("sex", k=8), HoldoutKeys("sex"), OneSitePerClass("sex")):
        with pytest.raises(DataError, match="multi-hot labels.*natural.*cap100.*minority5"):
            scenario.apply(train, 0)


# -- a grid end to end -------------------------------------------------------------------------------------
MULTILABEL_GRID = """
name = "multilabel"
seeds = 1
splits = ["test"]

[[dataset]]
name = "cxr"
scenarios = ["natural", "cap100"]
params = { multilabel = true, resolution = 16, n_train = 300, n_val = 60, n_test = 120 }

[[generator]]
name = "none"

[[generator]]
name = "oversample"

[[sampling]]
strategy = "replicate"
ratio = 2.0

[[classifier]]
name = "small_cnn"
params = { epochs = 1 }

[[classifier]]
name = "linear_probe"
params = { l2 = [1e-2] }
"""


def test_a_multilabel_grid_runs_and_records_per_label_auc(tmp_path, monkeypatch):
    from harness import records
    from harness.grid import load_grid
    from harness.runner import run_grid

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "features"))
    path = tmp_path / "multilabel.toml"
    path.write_text(MULTILABEL_GRID)
    summary = run_grid(load_grid(str(path)), tmp_path / "run", tmp_path / "cache")
    rows = records.load(summary.run_dir)
    assert summary.failed == [] and len(rows) == 2 * 2 * 2  # scenarios x generators x classifiers
    for row in rows:
        assert row["status"] == "ok", row
        metrics = row["metrics"]
        assert 0.5 < metrics["auc"] <= 1 and 0 <= metrics["label_auc_gap"] <= 1
        for group in ("female", "male"):  # per-label AUC of each group
            assert len(row["per_group"]["sex"][group]["label_auc"]) == len(CLASSES)
        frame = pd.read_parquet(summary.run_dir / row["predictions_file"])
        y_true = np.stack(frame["y_true"].to_numpy())
        proba = frame[[c for c in frame.columns if c.startswith("p_")]].to_numpy()
        assert y_true.shape == proba.shape == (120, len(CLASSES))
        per_label = roc_auc_score(y_true, proba, average=None)
        assert metrics["auc"] == pytest.approx(per_label.mean())  # macro AUC over the 5 labels
    augmented = [r for r in rows if r["spec"]["generator"]["name"] == "oversample"]
    assert all(r["n"]["train_synthetic"] == 2 * r["n"]["train_real"] for r in augmented)  # replicate +200%
