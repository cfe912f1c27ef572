"""Generator-side fidelity metrics on image features: FID, KID, per-group FID/KID with matched n,
their spread over groups (fid_var, fid_range, worst_fid) and the memorisation audit.

The distance functions take feature arrays (N, D); `fidelity_report` is the runner's entry point
that extracts (cached) features from image sets and returns every value with its n.
Definitions and sources: docs/metrics.md.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from harness.data import ImageSet
from harness.metrics.features import image_features
from harness.metrics.registry import LOWER, MetricValue, register_metric

COPY_RATIO = 1 / 3  # a synthetic image this much closer to a training image than its neighbours is a copy


def frechet_distance(real: np.ndarray, synthetic: np.ndarray) -> float:
    """||μ_r − μ_s||² + Tr(Σ_r + Σ_s − 2 (Σ_r Σ_s)^½), sample covariances (ddof=1).

    Tr((Σ_r Σ_s)^½) is the sum of square roots of the eigenvalues of Σ_r^½ Σ_s Σ_r^½, a symmetric
    PSD matrix, which avoids sqrtm's complex round-off on near-singular covariances.
    """
    if len(real) < 2 or len(synthetic) < 2:
        return math.nan
    mu_r, mu_s = real.mean(0), synthetic.mean(0)
    if max(len(real), len(synthetic)) < real.shape[1]:
        # Fewer images than dimensions (per-group FID at CPU sizes): with Σ = AᵀA, A = centred
        # features / √(n−1), the non-zero eigenvalues of Σ_r Σ_s are the squared singular values of
        # A_r A_sᵀ (n × m), so Tr((Σ_r Σ_s)^½) is its nuclear norm: no d × d decomposition needed.
        a_r = (real - mu_r) / math.sqrt(len(real) - 1)
        a_s = (synthetic - mu_s) / math.sqrt(len(synthetic) - 1)
        trace_sqrt = np.linalg.svd(a_r @ a_s.T, compute_uv=False).sum()
        return float(np.sum((mu_r - mu_s) ** 2) + np.sum(a_r ** 2) + np.sum(a_s ** 2) - 2 * trace_sqrt)
    cov_r, cov_s = np.atleast_2d(np.cov(real, rowvar=False)), np.atleast_2d(np.cov(synthetic, rowvar=False))
    eigval, eigvec = np.linalg.eigh(cov_r)
    sqrt_r = (eigvec * np.sqrt(np.clip(eigval, 0, None))) @ eigvec.T
    cross = np.linalg.eigvalsh(sqrt_r @ cov_s @ sqrt_r)
    trace_sqrt = np.sqrt(np.clip(cross, 0, None)).sum()
    return float(np.sum((mu_r - mu_s) ** 2) + np.trace(cov_r) + np.trace(cov_s) - 2 * trace_sqrt)


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with the cubic polynomial kernel k(a, b) = (a·b / d + 1)³."""
    d = x.shape[1]
    k_xx, k_yy, k_xy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
    m, n = len(x), len(y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def kernel_inception_distance(real: np.ndarray, synthetic: np.ndarray, subset_size: int = 1000, subsets: int = 10,
                              seed: int = 0) -> float:
    """KID: exact unbiased MMD² when both sets fit in one subset, else the mean over seeded subsets."""
    if len(real) < 2 or len(synthetic) < 2:
        return math.nan
    if len(real) <= subset_size and len(synthetic) <= subset_size:
        return _unbiased_mmd2(real, synthetic)
    rng = np.random.default_rng(seed)
    size = min(subset_size, len(real), len(synthetic))
    return float(np.mean([_unbiased_mmd2(real[rng.choice(len(real), size, replace=False)],
                                         synthetic[rng.choice(len(synthetic), size, replace=False)])
                          for _ in range(subsets)]))


def group_fidelity(real: np.ndarray, real_groups: np.ndarray, synthetic: np.ndarray, synthetic_groups: np.ndarray,
                   group_names: list[str], draws: int = 3, seed: int = 0, min_group_n: int = 10) -> dict[str, dict]:
    """fid_g and kid_g per group on n = min(n_real_g, n_syn_g) images per side, averaged over draws.

    Each draw subsamples both sides without replacement with a generator seeded by (seed, draw,
    group), so the same inputs give the same values. Groups under min_group_n are NaN with a reason.
    """
    out = {}
    for code, name in enumerate(group_names):
        real_idx, syn_idx = np.flatnonzero(real_groups == code), np.flatnonzero(synthetic_groups == code)
        n = min(len(real_idx), len(syn_idx))
        entry = {"n": n, "n_real": len(real_idx), "n_synthetic": len(syn_idx), "fid": math.nan, "kid": math.nan, "reason": ""}
        if n < max(min_group_n, 2):
            entry["reason"] = f"matched n={n} < min_group_n={min_group_n}"
        else:
            fids, kids = [], []
            for draw in range(draws):
                rng = np.random.default_rng([seed, draw, code])
                r, s = real[rng.choice(real_idx, n, replace=False)], synthetic[rng.choice(syn_idx, n, replace=False)]
                fids.append(frechet_distance(r, s))
                kids.append(kernel_inception_distance(r, s, seed=seed))
            entry.update(fid=float(np.mean(fids)), kid=float(np.mean(kids)))
        out[name] = entry
    return out


def fid_spread(per_group: dict[str, dict], ddof: int = 0) -> dict[str, MetricValue]:
    """fid_var (variance over groups, ddof 0 = population), fid_range and worst_fid over valid groups."""
    values = [g["fid"] for g in per_group.values() if not math.isnan(g["fid"])]
    skipped = [name for name, g in per_group.items() if math.isnan(g["fid"])]
    note = f"skipped {len(skipped)} group(s): {', '.join(skipped)}" if skipped else ""
    if len(values) < 2 or len(values) <= ddof:
        reason = f"needs at least 2 groups with a defined fid_g, got {len(values)}" + (f"; {note}" if note else "")
        worst = MetricValue(max(values), note) if values else MetricValue(math.nan, reason)
        return {"fid_var": MetricValue(math.nan, reason), "fid_range": MetricValue(math.nan, reason), "worst_fid": worst}
    return {"fid_var": MetricValue(float(np.var(values, ddof=ddof)), note),
            "fid_range": MetricValue(float(max(values) - min(values)), note),
            "worst_fid": MetricValue(float(max(values)), note)}


def _nearest(queries: np.ndarray, base: np.ndarray, exclude_self: bool = False, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(Euclidean distance, index) of each query's nearest base row, in chunks to bound memory."""
    base_sq = (base ** 2).sum(1)
    dist, index = np.empty(len(queries)), np.empty(len(queries), dtype=np.intp)
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk]
        d2 = (q ** 2).sum(1)[:, None] + base_sq[None, :] - 2 * q @ base.T
        if exclude_self:
            d2[np.arange(len(q)), np.arange(start, start + len(q))] = np.inf
        index[start:start + len(q)] = np.argmin(d2, axis=1)
        dist[start:start + len(q)] = np.sqrt(np.clip(d2[np.arange(len(q)), index[start:start + len(q)]], 0, None))
    return dist, index


def memorisation(train: np.ndarray, synthetic: np.ndarray, threshold: float = COPY_RATIO) -> MetricValue:
    """Fraction of synthetic images whose distance to the nearest training image is below
    `threshold` times that training image's distance to its own nearest training neighbour."""
    if len(train) < 2 or len(synthetic) == 0:
        return MetricValue(math.nan, f"needs >= 2 training and >= 1 synthetic images, got {len(train)} and {len(synthetic)}")
    to_train, nearest = _nearest(synthetic, train)
    train_spacing, _ = _nearest(train, train, exclude_self=True)
    spacing = train_spacing[nearest]
    # an exact copy (distance 0) counts even next to a duplicated training image (spacing 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(to_train == 0, 0.0, to_train / spacing)
    return MetricValue(float(np.mean(ratio < threshold)), "", {"median_ratio": float(np.median(ratio)), "n": len(synthetic)})


def fidelity_report(real: ImageSet, synthetic: ImageSet, attribute: str, extractor: str, cache_dir: Path | None,
                    draws: int = 3, seed: int = 0, train: ImageSet | None = None, min_group_n: int = 10,
                    fid_ddof: int = 0) -> dict:
    """Every fidelity value of one synthetic set against a real reference set (not the generator's
    training set: pass that as `train`, used only by the memorisation audit).

    Returns {"metrics": {name: value}, "reasons": {name: why NaN or what was skipped},
    "per_group": {group: {"n", "n_real", "n_synthetic", "fid", "kid", "reason"}},
    "extractor": name, "n": {"real": ..., "synthetic": ...}, "draws": draws}.
    """
    real_f = image_features(real, extractor, cache_dir)
    syn_f = image_features(synthetic, extractor, cache_dir)
    values = {"fid": MetricValue(frechet_distance(real_f, syn_f)),
              "kid": MetricValue(kernel_inception_distance(real_f, syn_f, seed=seed))}
    per_group = group_fidelity(real_f, real.group_codes(attribute), syn_f, synthetic.group_codes(attribute),
                               list(real.attribute_vocab[attribute]), draws, seed, min_group_n)
    values.update(fid_spread(per_group, fid_ddof))
    values["memorisation"] = (memorisation(image_features(train, extractor, cache_dir), syn_f) if train is not None
                              else MetricValue(math.nan, "no training set given"))
    for v in values.values():
        if math.isnan(v.value) and not v.reason:
            v.reason = "fewer than 2 images on a side"
    return {"metrics": {k: v.value for k, v in values.items()}, "reasons": {k: v.reason for k, v in values.items() if v.reason},
            "per_group": per_group, "extractor": extractor, "n": {"real": len(real), "synthetic": len(synthetic)},
            "draws": draws}


def _from_report(name: str):
    def read(report: dict) -> MetricValue:
        return MetricValue(report["metrics"][name], report.get("reasons", {}).get(name, ""))
    read.__name__ = name
    return read


# Registered so leaderboards know direction, scale and tolerance; the value is read from a
# fidelity_report (calling the metric on a report returns it). The distances are unbounded and
# their noise grows with them, so `harness check` allows a fraction of the baseline value, with
# an absolute floor for values near zero (docs/reliability.md).
for _name, _tolerance, _relative, _scaled, _text in [
    ("fid", 2.0, 0.05, False, "Fréchet distance between real reference and synthetic features"),
    ("kid", 0.005, 0.10, False, "kernel inception distance (unbiased MMD², cubic polynomial kernel)"),
    ("fid_var", 5.0, 0.10, False, "variance of per-group FID (matched n) over groups, ddof 0 by default"),
    ("fid_range", 3.0, 0.10, False, "max minus min per-group FID"),
    ("worst_fid", 3.0, 0.05, False, "largest per-group FID"),
    ("memorisation", 0.02, 0.0, True, "fraction of synthetic images closer than 1/3 of a training image's spacing"),
]:
    register_metric(_name, LOWER, scale_dependent=_scaled, tolerance=_tolerance, description=_text, source="fidelity",
                    relative_tolerance=_relative)(_from_report(_name))
