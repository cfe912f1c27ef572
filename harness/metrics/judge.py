"""The fixed judge that reads a requested class and attribute back from an image.

A judge is frozen image features and one multinomial logistic-regression head per target (the
class label and the dataset's primary sensitive attribute), trained on the dataset's REAL
training split (never a scenario's skewed cut), seeded, and cached under a key that covers the
data (content fingerprints of the train and test splits), the judge settings and this code.
Its accuracy and confusion matrices on the real test split, per group, are part of it: they say
how far its verdicts can be trusted and are what attribute_fidelity corrects with.

Two families ship, so that a verdict is not one network's opinion:
- "effnet": the ImageNet efficientnet-lite0 features of harness.metrics.features (1280-d, 64 px);
- "pixels": the image box-filtered to 16×16 RGB plus each channel's mean and sd (774-d), a
  colour-and-layout view with no pretrained network at all.
The scripts/check_conditioning.py probe, `harness validate-plugin` and the runner all use this module.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from harness.cache import Cache, files_digest, stable_hash
from harness.data import ImageSet
from harness.metrics import features as feature_lib

DEFAULT_FAMILIES = ("effnet", "pixels")
#: L2 strength of the heads (sklearn's C on standardised features); fixed, so a judge has no
#: selection step that could see the images it will judge
HEAD_C = 0.5
HEAD_MAX_ITER = 2000
PIXEL_SIZE = 16
LABEL = "label"  # the target name of the class head
JUDGE_CODE = files_digest([__file__, feature_lib.__file__])


def _pixel_features(images: ImageSet, cache_dir: Path | None) -> np.ndarray:
    import torch

    x = feature_lib.to_rgb_square(torch.from_numpy(np.ascontiguousarray(images.images)), PIXEL_SIZE)
    stats = torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)
    return torch.cat([x.flatten(1), stats], dim=1).double().numpy()


def _effnet_features(images: ImageSet, cache_dir: Path | None) -> np.ndarray:
    return feature_lib.image_features(images, "effnet-lite0@64", cache_dir)


FAMILIES: dict[str, Callable[[ImageSet, Path | None], np.ndarray]] = {
    "effnet": _effnet_features,
    "pixels": _pixel_features,
}


class JudgeError(ValueError):
    """The real data cannot train a judge (a target with fewer than two values)."""


def check_families(families: tuple[str, ...] | list[str]) -> None:
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise ValueError(f"unknown judge famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; choose from {sorted(FAMILIES)}")


@dataclass
class Head:
    """A fitted logistic regression on standardised features, kept as plain arrays (no pickle)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (K, D), or (1, D) for two classes (sklearn's binary form)
    intercept: np.ndarray
    classes: np.ndarray  # the codes the head can answer

    def predict(self, features: np.ndarray) -> np.ndarray:
        logits = ((features - self.mean) / self.scale) @ self.coef.T + self.intercept
        if self.coef.shape[0] == 1:
            return self.classes[(logits[:, 0] > 0).astype(int)]
        return self.classes[np.argmax(logits, axis=1)]

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}__{k}": getattr(self, k) for k in ("mean", "scale", "coef", "intercept", "classes")}

    @classmethod
    def from_arrays(cls, npz, prefix: str) -> "Head":
        return cls(*(npz[f"{prefix}__{k}"] for k in ("mean", "scale", "coef", "intercept", "classes")))


def fit_head(features: np.ndarray, targets: np.ndarray, seed: int) -> Head:
    """Logistic regression of targets (codes; -1 rows are skipped) on standardised features."""
    from sklearn.linear_model import LogisticRegression

    known = targets >= 0
    x, y = features[known], targets[known]
    if len(np.unique(y)) < 2:
        raise JudgeError(f"the real training split has {len(np.unique(y))} distinct value(s) of this target; "
                         f"a judge needs at least 2")
    mean, scale = x.mean(0), x.std(0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    model = LogisticRegression(C=HEAD_C, max_iter=HEAD_MAX_ITER, random_state=seed)
    model.fit((x - mean) / scale, y)
    return Head(mean, scale, model.coef_, model.intercept_, model.classes_.astype(np.int64))


@dataclass
class Judge:
    """One family's heads and its record on the real test split."""

    family: str
    attribute: str
    heads: dict[str, Head]  # LABEL and the attribute (no LABEL head for multi-hot labels)
    real: dict = field(default_factory=dict)  # real_test_report()

    def read(self, images: ImageSet, cache_dir: Path | None = None) -> dict[str, np.ndarray]:
        """The judged codes of every target, (N,) each."""
        features = FAMILIES[self.family](images, cache_dir)
        return {target: head.predict(features) for target, head in self.heads.items()}


def confusion(true: np.ndarray, judged: np.ndarray, size: int) -> np.ndarray:
    """Counts (size, size): row = true (or requested) code, column = judged code; -1 rows skipped."""
    table = np.zeros((size, size), dtype=np.int64)
    keep = (true >= 0) & (judged >= 0)
    np.add.at(table, (true[keep], judged[keep]), 1)
    return table


def real_test_report(judge: Judge, test: ImageSet, cache_dir: Path | None) -> dict:
    """Accuracy of each head on the real test split, overall and per group of the attribute, with
    the confusion counts the correction inverts: class confusion per group, attribute confusion."""
    judged = judge.read(test, cache_dir)
    groups, vocab = test.group_codes(judge.attribute), test.attribute_vocab[judge.attribute]
    out: dict = {"n": len(test), "groups": list(vocab)}
    for target, codes in judged.items():
        true = test.labels if target == LABEL else test.group_codes(target)
        size = test.num_classes if target == LABEL else len(test.attribute_vocab[target])
        known = true >= 0
        entry = {"accuracy": float(np.mean(codes[known] == true[known])) if known.any() else None,
                 "per_group": {}, "confusion": confusion(true, codes, size).tolist()}
        for code, name in enumerate(vocab):
            rows = known & (groups == code)
            entry["per_group"][name] = {
                "n": int(rows.sum()), "accuracy": float(np.mean(codes[rows] == true[rows])) if rows.any() else None,
                "confusion": confusion(true[rows], codes[rows], size).tolist()}
        out[target] = entry
    return out


def fit_judge(train: ImageSet, test: ImageSet, attribute: str, family: str, seed: int = 0,
              cache_dir: Path | None = None) -> Judge:
    """Train one family's heads on the real `train` split and measure them on the real `test` split."""
    check_families([family])
    features = FAMILIES[family](train, cache_dir)
    heads = {}
    if not train.multilabel:
        heads[LABEL] = fit_head(features, train.labels, seed)
    heads[attribute] = fit_head(features, train.group_codes(attribute), seed)
    judge = Judge(family, attribute, heads)
    judge.real = real_test_report(judge, test, cache_dir)
    return judge


def judge_key(train: ImageSet, test: ImageSet, attribute: str, family: str, seed: int) -> str:
    """Everything a judge depends on: the data, the target, the family and head settings, this code."""
    return stable_hash("judge", train.fingerprint(), test.fingerprint(), attribute, family,
                       {"C": HEAD_C, "max_iter": HEAD_MAX_ITER, "pixel_size": PIXEL_SIZE}, seed, JUDGE_CODE)


def cached_judge(cache_root: Path | None, train: ImageSet, test: ImageSet, attribute: str, family: str,
                 seed: int = 0) -> Judge:
    """fit_judge through the artifact cache (heads as npz without pickle, the real-test report as JSON)."""
    if cache_root is None:
        return fit_judge(train, test, attribute, family, seed)
    cache = Cache(cache_root)

    def compute(tmp: Path) -> dict:
        judge = fit_judge(train, test, attribute, family, seed, Path(cache_root))
        buffer = io.BytesIO()
        np.savez(buffer, **{k: v for target, head in judge.heads.items() for k, v in head.arrays(target).items()})
        (tmp / "heads.npz").write_bytes(buffer.getvalue())
        (tmp / "real_test.json").write_text(json.dumps(judge.real))
        return {"family": family, "attribute": attribute, "targets": list(judge.heads)}

    path, meta = cache.get_or_compute("judge", judge_key(train, test, attribute, family, seed), compute)
    with np.load(path / "heads.npz", allow_pickle=False) as npz:
        heads = {target: Head.from_arrays(npz, target) for target in meta["info"]["targets"]}
    return Judge(family, attribute, heads, json.loads((path / "real_test.json").read_text()))


def fit_judges(train: ImageSet, test: ImageSet, attribute: str, families: tuple[str, ...] = DEFAULT_FAMILIES,
               seed: int = 0, cache_root: Path | None = None) -> list[Judge]:
    check_families(families)
    return [cached_judge(cache_root, train, test, attribute, family, seed) for family in families]


def requested_set(images: np.ndarray, labels: np.ndarray, attributes: dict[str, np.ndarray],
                  like: ImageSet) -> ImageSet:
    """Images with the class and attributes they were requested with, in `like`'s vocabularies."""
    return ImageSet(images, labels, attributes, list(like.label_names), {k: list(v) for k, v in like.attribute_vocab.items()},
                    np.array([f"request-{i}" for i in range(len(images))]), np.full(len(images), "synthetic"))
