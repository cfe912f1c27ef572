"""Multi-label support: multi-hot chest X-rays, replicate sampling at +100%..+1000%, per-label AUC metrics."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from harness import ConfigError
from harness.metrics import EvalInput, get_metric, group_report
from harness.sampling import SamplingSpec, plan_requests
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
