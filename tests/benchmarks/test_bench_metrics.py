"""Benchmarks of the metrics engine against the reference libraries on the same inputs.

Run: .venv/bin/pytest tests/benchmarks -m slow --benchmark-enable -s
Each test times our route with pytest-benchmark, times the reference route once in the same
run, checks both give the same values and prints the ratio (numbers go into docs/metrics.md).
"""
import time

import numpy as np
import pytest
import torch
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
from sklearn.metrics import accuracy_score, roc_auc_score
from torchmetrics.image.fid import FrechetInceptionDistance

from harness.metrics import EvalInput, get_metric, group_report
from harness.metrics.fidelity import frechet_distance

N, K, G = 10**6, 10, 8
FAIRNESS = ["dp", "eo", "eodds", "essp", "essp_pct", "es_auc", "nar", "gap_acc", "worst_acc", "auc_gap", "worst_auc"]


def predictions() -> EvalInput:
    rng = np.random.default_rng(0)
    y, groups = rng.integers(0, K, N), rng.integers(0, G, N)
    logits = rng.normal(size=(N, K)).astype(np.float32)
    logits[np.arange(N), y] += 1.0 + 0.1 * groups  # accuracy differs by group
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return EvalInput(y, proba, groups, [f"g{i}" for i in range(G)])


def ours(data: EvalInput) -> dict:
    inp = EvalInput(data.y_true, data.proba, data.groups, data.group_names)  # fresh: nothing memoised
    values = {name: get_metric(name)(inp).value for name in FAIRNESS}
    values["report"] = group_report(inp)
    return values


def fairlearn_by_group(data: EvalInput) -> dict:
    """The same by-group tables through fairlearn's MetricFrame, one-vs-rest per class."""
    y, pred, proba, groups = data.y_true, np.argmax(data.proba, 1), data.proba, data.groups
    accuracy = MetricFrame(metrics=accuracy_score, y_true=y, y_pred=pred, sensitive_features=groups).by_group
    rates, aucs = [], []
    for c in range(K):
        rates.append(MetricFrame(metrics={"sel": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
                                 y_true=y == c, y_pred=pred == c, sensitive_features=groups).by_group)
        aucs.append(MetricFrame(metrics=roc_auc_score, y_true=y == c, y_pred=proba[:, c], sensitive_features=groups).by_group)
    return {"acc": accuracy, "rates": rates, "aucs": aucs}


def timed(fn, *args) -> tuple[object, float, float]:
    """(result, wall seconds, CPU seconds of this process): CPU time is the fairer figure on a
    machine shared with other jobs, wall time the one a user waits."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


@pytest.mark.slow
def test_fairness_metrics_on_a_million_predictions_vs_metricframe(benchmark):
    data = predictions()
    result = benchmark.pedantic(ours, args=(data,), rounds=3, iterations=1, warmup_rounds=1)
    _, ours_wall, ours_cpu = timed(ours, data)
    reference, ref_wall, ref_cpu = timed(fairlearn_by_group, data)
    report = result["report"]
    for code in range(G):
        assert report[f"g{code}"]["acc"] == pytest.approx(reference["acc"][code], abs=1e-12)
        assert report[f"g{code}"]["tpr"] == pytest.approx([r.loc[code, "tpr"] for r in reference["rates"]], abs=1e-12)
        assert report[f"g{code}"]["fpr"] == pytest.approx([r.loc[code, "fpr"] for r in reference["rates"]], abs=1e-12)
        assert report[f"g{code}"]["auc"] == pytest.approx(np.mean([a[code] for a in reference["aucs"]]), abs=1e-9)
    dp_reference = np.mean([r["sel"].max() - r["sel"].min() for r in reference["rates"]])
    assert result["dp"] == pytest.approx(dp_reference, abs=1e-12)
    print(f"\nfairness metrics + group report on {N} predictions x {K} classes x {G} groups: "
          f"ours {ours_wall:.2f} s wall / {ours_cpu:.2f} s CPU; fairlearn MetricFrame {ref_wall:.1f} s wall / "
          f"{ref_cpu:.1f} s CPU; ratio {ref_wall / ours_wall:.0f}x wall, {ref_cpu / ours_cpu:.0f}x CPU")


class Identity(torch.nn.Module):
    num_features = 2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def torchmetrics_fid(real: np.ndarray, synthetic: np.ndarray) -> float:
    metric = FrechetInceptionDistance(feature=Identity(), normalize=True)
    metric.set_dtype(torch.float64)
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(synthetic), real=False)
    return float(metric.compute())


@pytest.mark.slow
def test_fid_from_cached_features_vs_torchmetrics(benchmark):
    torch.set_num_threads(2)
    rng = np.random.default_rng(1)
    real = np.abs(rng.normal(size=(3000, 2048)))  # post-ReLU-like Inception pool features
    synthetic = np.abs(rng.normal(size=(3000, 2048)) + 0.05)
    ours_value = benchmark.pedantic(frechet_distance, args=(real, synthetic), rounds=2, iterations=1)
    _, ours_wall, ours_cpu = timed(frechet_distance, real, synthetic)
    reference, ref_wall, ref_cpu = timed(torchmetrics_fid, real, synthetic)
    assert ours_value == pytest.approx(reference, rel=1e-3)
    print(f"\nFID on 3000 + 3000 cached 2048-d features: ours {ours_wall:.1f} s wall / {ours_cpu:.1f} s CPU; "
          f"torchmetrics update+compute {ref_wall:.1f} s wall / {ref_cpu:.1f} s CPU; ratio {ref_wall / ours_wall:.1f}x wall")


@pytest.mark.slow
@pytest.mark.parametrize("name,count", [("effnet-lite0@64", 256), ("inception-v3", 16)])
def test_feature_extractor_throughput(name, count):
    from harness.metrics.features import get_extractor

    torch.set_num_threads(2)
    extractor = get_extractor(name)
    images = np.random.default_rng(2).integers(0, 256, size=(count, 3, 32, 32), dtype=np.uint8)
    extractor(images[:4])  # warm-up (TorchScript optimisation, allocations)
    _, wall, cpu = timed(extractor, images)
    device = "GPU" if torch.cuda.is_available() else f"{torch.get_num_threads()} CPU threads"
    print(f"\n{name}: {wall / count * 1000:.1f} ms/image wall ({cpu / count * 1000:.1f} ms CPU) on {device}, 32 px inputs")
