"""Benchmark: fitting the fixed judges on derm's cpu config (2,000 real training images at 16 px,
tested on its real test split), per family, without a cache; and judging 300 synthetic images.

Run: .venv/bin/pytest tests/benchmarks/test_bench_judge.py -m slow --benchmark-enable -s
The numbers go into docs/metrics.md ("Attribute fidelity").
"""
import time

import pytest

from harness.metrics.attribute_fidelity import attribute_fidelity_report
from harness.metrics.judge import fit_judge, requested_set
from harness.registry import Registry


@pytest.fixture(scope="module")
def derm():
    dataset = Registry().create("dataset", "derm", {"config": "cpu"})
    return dataset.load(0), dataset.primary_attribute


@pytest.mark.slow
@pytest.mark.parametrize("family", ["pixels", "effnet"])
def test_fit_and_use_a_judge_on_derm(benchmark, derm, family):
    splits, attribute = derm
    start = time.perf_counter()
    judge = benchmark.pedantic(fit_judge, args=(splits.train, splits.test, attribute, family), rounds=1, iterations=1)
    fit_s = time.perf_counter() - start
    synthetic = requested_set(splits.test.images[:300], splits.test.labels[:300],
                              {attribute: splits.test.attributes[attribute][:300]}, splits.test)
    start = time.perf_counter()
    report = attribute_fidelity_report([judge], synthetic, None)
    judge_s = time.perf_counter() - start
    assert report["metrics"]["attr_fidelity"] > 0.5
    print(f"\n{family}: fit on {len(splits.train)} + test on {len(splits.test)} real images {fit_s:.1f} s; "
          f"judging 300 images {judge_s:.2f} s; real test accuracy "
          f"{ {t: round(v['accuracy'], 3) for t, v in judge.real.items() if isinstance(v, dict)} }")
