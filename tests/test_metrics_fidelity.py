"""Golden tests for fidelity: FID/KID by hand and against torchmetrics on identical features,
per-group matched n, spread over groups, memorisation audit, feature extractors and their cache."""
import math

import numpy as np
import pytest
import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from harness.data import ImageSet
from harness.metrics import get_metric
from harness.metrics.features import FeatureExtractor, get_extractor, image_features, register_extractor
from harness.metrics.fidelity import (fid_spread, fidelity_report, frechet_distance, group_fidelity,
                                      kernel_inception_distance, memorisation)


class Identity(torch.nn.Module):
    """Feeds precomputed features to torchmetrics unchanged."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_fid_and_kid_by_hand_in_one_dimension():
    # real mean 1 var 2, synthetic mean 3 var 4: (1-3)^2 + 2 + 4 - 2 sqrt(8)
    assert frechet_distance(np.array([[0.0], [2.0]]), np.array([[1.0], [3.0], [5.0]])) == pytest.approx(10 - 2 * math.sqrt(8))
    # k(a,b) = (ab+1)^3: within x 1, within y 27, across mean (1+1+8+27)/4
    assert kernel_inception_distance(np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]])) == pytest.approx(1 + 27 - 2 * 9.25)


@pytest.mark.parametrize("dim", [16, 128])
def test_fid_matches_torchmetrics_on_identical_features(dim):
    rng = np.random.default_rng(dim)
    real = rng.normal(size=(600, dim))
    synthetic = rng.normal(size=(500, dim)) @ (np.eye(dim) + 0.1 * rng.normal(size=(dim, dim))) + 0.2
    metric = FrechetInceptionDistance(feature=Identity(dim), normalize=True)
    metric.set_dtype(torch.float64)
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(synthetic), real=False)
    assert frechet_distance(real, synthetic) == pytest.approx(float(metric.compute()), rel=1e-3)


def test_kid_matches_torchmetrics_on_one_full_subset():
    rng = np.random.default_rng(1)
    real, synthetic = rng.normal(size=(200, 32)), rng.normal(size=(200, 32)) + 0.3
    metric = KernelInceptionDistance(feature=Identity(32), subsets=1, subset_size=200, normalize=True)
    metric.set_dtype(torch.float64)
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(synthetic), real=False)
    kid_mean, _ = metric.compute()
    assert kernel_inception_distance(real, synthetic) == pytest.approx(float(kid_mean), rel=1e-3)


def test_memorisation_counts_near_copies_by_hand():
    train = np.array([[0.0], [10.0], [30.0]])  # spacings 10, 10, 20
    synthetic = np.array([[1.0], [12.0], [27.0], [50.0], [5.0]])  # ratios .1, .2, .15, 1, .5
    result = memorisation(train, synthetic)
    assert result.value == pytest.approx(3 / 5)


def test_group_fidelity_uses_matched_n_and_is_seeded():
    rng = np.random.default_rng(2)
    real, synthetic = rng.normal(size=(80, 4)), rng.normal(size=(50, 4)) + 0.5
    real_groups, syn_groups = np.repeat([0, 1], [50, 30]), np.repeat([0, 1, 2], [12, 35, 3])
    groups = group_fidelity(real, real_groups, synthetic, syn_groups, ["a", "b", "c"], draws=3, seed=7)
    assert (groups["a"]["n"], groups["b"]["n"], groups["c"]["n"]) == (12, 30, 0)
    assert math.isnan(groups["c"]["fid"]) and "min_group_n" in groups["c"]["reason"]
    again = group_fidelity(real, real_groups, synthetic, syn_groups, ["a", "b", "c"], draws=3, seed=7)
    assert again["a"]["fid"] == groups["a"]["fid"]
    # group b: 30 real images, each draw picks 30 of the 35 synthetic ones
    real_b, syn_b = np.flatnonzero(real_groups == 1), np.flatnonzero(syn_groups == 1)
    draws = []
    for d in range(3):
        rng = np.random.default_rng([7, d, 1])
        draws.append(frechet_distance(real[rng.choice(real_b, 30, replace=False)], synthetic[rng.choice(syn_b, 30, replace=False)]))
    assert groups["b"]["fid"] == pytest.approx(np.mean(draws))
    assert np.std(draws) > 0  # the draws differ


def test_fid_spread_population_variance_by_default():
    per_group = {"a": {"fid": 2.0}, "b": {"fid": 4.0}, "c": {"fid": math.nan}}
    spread = fid_spread(per_group)
    assert spread["fid_var"].value == pytest.approx(1.0) and "c" in spread["fid_var"].reason
    assert fid_spread(per_group, ddof=1)["fid_var"].value == pytest.approx(2.0)
    assert spread["fid_range"].value == pytest.approx(2.0) and spread["worst_fid"].value == pytest.approx(4.0)


def toy_set(rng: np.random.Generator, n: int, shift: int, tone: np.ndarray, prefix: str) -> ImageSet:
    images = np.clip(rng.normal(100 + shift, 30, size=(n, 1, 8, 8)), 0, 255).astype(np.uint8)
    return ImageSet(images, np.zeros(n, dtype=int), {"tone": tone}, ["x"], {"tone": ["light", "dark"]},
                    np.array([f"{prefix}{i}" for i in range(n)]))


def pooled_pixels() -> FeatureExtractor:
    network = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
    return FeatureExtractor("test-pooled-pixels", 12, network, 8, lambda x: x)


register_extractor("test-pooled-pixels", pooled_pixels)


def test_fidelity_report_end_to_end_with_cache(tmp_path):
    rng = np.random.default_rng(3)
    real = toy_set(rng, 60, 0, np.repeat([0, 1], 30), "r")
    synthetic = toy_set(rng, 40, 20, np.repeat([0, 1], [25, 15]), "s")
    train = toy_set(rng, 50, 0, np.repeat([0, 1], 25), "t")
    report = fidelity_report(real, synthetic, "tone", "test-pooled-pixels", tmp_path, draws=2, train=train)
    assert report["extractor"] == "test-pooled-pixels" and report["n"] == {"real": 60, "synthetic": 40}
    assert report["per_group"]["light"]["n"] == 25 and report["per_group"]["dark"]["n"] == 15
    features = image_features(real, "test-pooled-pixels", tmp_path)
    assert report["metrics"]["fid"] == pytest.approx(frechet_distance(features, image_features(synthetic, "test-pooled-pixels", tmp_path)))
    fids = [g["fid"] for g in report["per_group"].values()]
    assert report["metrics"]["fid_var"] == pytest.approx(np.var(fids))
    assert 0 <= report["metrics"]["memorisation"] <= 1
    assert get_metric("fid")(report).value == report["metrics"]["fid"]
    cached = list(tmp_path.glob("features/*/features.npz"))
    assert len(cached) == 3
    with np.load(cached[0], allow_pickle=False) as npz:
        assert npz["features"].shape[1] == 12


def test_memorisation_is_nan_with_reason_without_training_set(tmp_path):
    rng = np.random.default_rng(4)
    real = toy_set(rng, 20, 0, np.repeat([0, 1], 10), "r")
    report = fidelity_report(real, toy_set(rng, 20, 0, np.repeat([0, 1], 10), "s"), "tone", "test-pooled-pixels", None)
    assert math.isnan(report["metrics"]["memorisation"]) and report["reasons"]["memorisation"]


def test_efficientnet_extractor_is_offline_and_deterministic():
    extractor = get_extractor("effnet-lite0@64")
    images = np.random.default_rng(5).integers(0, 256, size=(3, 1, 16, 16), dtype=np.uint8)
    features = extractor(images)
    assert features.shape == (3, 1280) and np.isfinite(features).all()
    assert np.allclose(features, extractor(images))
    assert not np.allclose(features[0], features[1])


@pytest.mark.slow
def test_inception_extractor_loads_offline_weights():
    extractor = get_extractor("inception-v3")
    images = np.random.default_rng(6).integers(0, 256, size=(2, 3, 32, 32), dtype=np.uint8)
    features = extractor(images)
    assert features.shape == (2, 2048) and np.isfinite(features).all() and (features >= 0).all()  # post-ReLU pool
