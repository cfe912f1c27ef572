"""Training options shared by every classifier plugin.

Pure, small pieces: the training budget (optimiser steps fixed by the real data, so synthetic
images add no steps) and the stream of batches it draws, the per-sample sampling mass (given weights x class balance x FairGen's
adaptive group weights), FairGen's inverse-performance group reweighting (METHODS.md, FairGen
step 4), focal loss (Ktena et al. baseline), heuristic augmentation and per-group accuracy.
The parameters below are merged into each classifier's `defaults`, so every classifier takes
the same option names.

Multi-hot labels (N, L) train one sigmoid output per label with binary cross-entropy (focal:
per label). Class balance then weighs each label's positives and negatives inside the loss, as
one-vs-rest logistic regression with class_weight="balanced" (a multi-hot row has no single
class to sample by); model selection uses the val macro AUC instead of accuracy.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from harness import REAL, ConfigError, DataError, ImageSet
from harness.contracts import check_sample_weight

#: options every classifier honours; each plugin merges these into its `defaults`
TRAINING_OPTIONS: dict[str, object] = {
    "balance": "none",  # "none" | "class": class-balanced sampling (mass 1/n_class per sample)
    "group_reweighting": "none",  # "none" | "inverse_performance" (FairGen step 4)
    "group_attribute": "",  # attribute for group reweighting; "" = the first attribute in the set
    "loss": "ce",  # "ce" | "focal"
    "focal_gamma": 2.0,
    "augment": "none",  # "none" | "flip_rotate_colour" | "randaugment"
    # Ktena et al.'s alpha: the synthetic rows' share of the sampling mass (real rows: 1 - alpha);
    # [] = every row alike; several values = one fit each, the best on val kept
    "synthetic_share": [],
}

BALANCE_CHOICES = ("none", "class")
REWEIGHTING_CHOICES = ("none", "inverse_performance")
LOSS_CHOICES = ("ce", "focal")
AUGMENT_CHOICES = ("none", "flip_rotate_colour", "randaugment")
#: FairGen Eq. 10 as released: 1 / (acc + 1e-6)
INVERSE_PERFORMANCE_EPS = 1e-6


def check_choice(plugin: str, key: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"classifier '{plugin}': {key}={value!r} is not one of {list(choices)}")


def check_training_options(plugin: str, params: dict) -> None:
    shares = params["synthetic_share"]
    if not all(isinstance(a, (int, float)) and not isinstance(a, bool) and 0 <= a <= 1 for a in shares):
        raise ConfigError(f"classifier '{plugin}': synthetic_share must list numbers in [0, 1] (Ktena's alpha), "
                          f"got {shares!r}")
    check_choice(plugin, "balance", params["balance"], BALANCE_CHOICES)
    check_choice(plugin, "group_reweighting", params["group_reweighting"], REWEIGHTING_CHOICES)
    check_choice(plugin, "loss", params["loss"], LOSS_CHOICES)
    check_choice(plugin, "augment", params["augment"], AUGMENT_CHOICES)


def check_training_data(plugin: str, train: ImageSet, val: ImageSet, sample_weight: np.ndarray | None) -> np.ndarray:
    """Refuse data a classifier cannot learn from; return the per-sample weights (ones if None)."""
    if len(train) == 0:
        raise DataError(f"classifier '{plugin}': the training set is empty")
    if len(val) == 0:
        raise DataError(f"classifier '{plugin}': model selection needs a non-empty val split (test is never used)")
    if sample_weight is None:
        return np.ones(len(train))
    return check_sample_weight(sample_weight, len(train), f"classifier '{plugin}'")


def mixed_weights(base_weights: np.ndarray, provenance: np.ndarray, share: float | None) -> np.ndarray:
    """`base_weights` rescaled so the synthetic rows carry `share` of the total and the real rows
    the rest (each side keeping its own proportions); unchanged for None or a one-sided set."""
    synthetic = np.asarray(provenance) != REAL
    if share is None or synthetic.all() or not synthetic.any():
        return base_weights
    weights = np.asarray(base_weights, dtype=np.float64).copy()
    total = weights.sum()
    for rows, part in ((~synthetic, 1.0 - share), (synthetic, share)):
        side = weights[rows].sum()
        if side <= 0 and part > 0:
            raise DataError(f"synthetic_share={share}: the {'synthetic' if rows is synthetic else 'real'} rows "
                            f"have zero weight, so they cannot carry a share of the mass")
        weights[rows] *= part * total / side if side > 0 else 0.0
    return weights


def fit_selecting_share(classifier: Any, state: str, train: ImageSet, base_weights: np.ndarray,
                        fit_once: Callable[[np.ndarray], None]) -> None:
    """Fit once per value of the classifier's `synthetic_share` (Ktena's alpha; once when it is
    empty or the set has no synthetic rows) and keep the fit with the best val score: its
    `state` attribute (the model or head), stats and history. Each fit has the full budget."""
    shares = classifier.params["synthetic_share"]
    has_both = (train.provenance != REAL).any() and (train.provenance == REAL).any()
    best = None
    for share in (shares if shares and has_both else [None]):
        fit_once(mixed_weights(base_weights, train.provenance, share))
        score = classifier.stats[f"best_val_{score_name(train.labels)}"]
        if best is None or score > best[0]:  # the first value wins ties
            best = (score, share, getattr(classifier, state), classifier.stats, classifier.history)
    _, share, chosen, classifier.stats, classifier.history = best
    setattr(classifier, state, chosen)
    if share is not None:
        classifier.stats = {**classifier.stats, "synthetic_share": float(share), "share_fits": float(len(shares))}


@dataclass(frozen=True)
class StepBudget:
    steps: int  # optimiser steps in all
    eval_every: int  # steps between val evaluations (the last step is always evaluated)
    epoch_steps: int  # steps of one pass over the real training rows


def step_budget(train: ImageSet, batch_size: int, epochs: int, steps: int, eval_every: int) -> StepBudget:
    """The optimiser steps a fit takes: `steps`, else `epochs` passes over the real rows of
    `train` (all rows when none is real, as for the synthetic-only CAS classifier). Rows a
    generator added do not lengthen training, so real-only and augmented cells take equal steps."""
    real = int(np.sum(train.provenance == REAL)) or len(train)
    epoch_steps = math.ceil(real / batch_size)
    budget = StepBudget(steps or epochs * epoch_steps, eval_every or epoch_steps, epoch_steps)
    if budget.steps < 1 or budget.eval_every < 1:
        raise ConfigError(f"the training budget must be at least one step, got steps={steps}, epochs={epochs}, "
                          f"eval_every={eval_every}; set epochs >= 1 or steps >= 1")
    return budget


class BatchStream:
    """Batches of `batch_size` row indices, drawn pass after pass over the n rows: with
    `resample`, a pass is n draws with replacement from the sampling mass (a WeightedRandomSampler
    rebuilt whenever a pass starts, so a changed mass takes effect at the next pass); else a
    shuffle, with the mass applied as loss weights. A batch may span two passes."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, resample: bool) -> None:
        self.n, self.batch_size, self.generator, self.resample = n, batch_size, generator, resample
        self.buffer = torch.empty(0, dtype=torch.int64)

    def next(self, mass: np.ndarray) -> torch.Tensor:
        while len(self.buffer) < self.batch_size:
            self.buffer = torch.cat([self.buffer, self._pass(mass)])
        batch, self.buffer = self.buffer[:self.batch_size], self.buffer[self.batch_size:]
        return batch

    def _pass(self, mass: np.ndarray) -> torch.Tensor:
        if not self.resample or np.allclose(mass, 1.0 / self.n):  # uniform mass: ordinary shuffled SGD
            return torch.randperm(self.n, generator=self.generator)
        return torch.multinomial(torch.from_numpy(mass), self.n, replacement=True, generator=self.generator)

    def loss_weights(self, mass: np.ndarray, index: torch.Tensor) -> torch.Tensor:
        """Per-sample loss weights of a batch: the mass (mean 1) without resampling, else ones."""
        if self.resample:
            return torch.ones(len(index))
        return torch.from_numpy(mass[index.numpy()] * self.n).float()


def group_attribute_name(images: ImageSet, requested: str) -> str:
    """The attribute that defines groups: `requested`, or the set's first attribute."""
    if requested:
        images.group_codes(requested)  # raises with the known names if it is missing
        return requested
    if not images.attributes:
        raise DataError("group reweighting needs a sensitive attribute, but the image set has none")
    return next(iter(images.attributes))


def group_accuracy(correct: np.ndarray, groups: np.ndarray, num_groups: int) -> np.ndarray:
    """Accuracy per group code 0..num_groups-1; NaN for a group without samples (unknown -1 ignored)."""
    accuracy = np.full(num_groups, np.nan)
    for g in range(num_groups):
        members = groups == g
        if members.any():
            accuracy[g] = correct[members].mean()
    return accuracy


def inverse_performance_weights(previous_accuracy: np.ndarray | None, num_groups: int) -> np.ndarray:
    """FairGen's adaptive group weights (Eq. 10 as released).

    Epoch 0 (no previous accuracy): every w_g = 1. Epoch e: w_g = (1/(acc_g + 1e-6)) normalised
    to sum 1 over groups, acc_g the val accuracy of group g after epoch e-1. A group without val
    samples (NaN) gets the mean weight of the others, so it is neither starved nor flooded.
    """
    if previous_accuracy is None:
        return np.ones(num_groups)
    accuracy = np.asarray(previous_accuracy, dtype=np.float64)
    inverse = 1.0 / (accuracy + INVERSE_PERFORMANCE_EPS)
    known = np.isfinite(inverse)
    if not known.any():
        return np.ones(num_groups)
    inverse[~known] = inverse[known].mean()
    return inverse / inverse.sum()


def class_balance_weights(labels: np.ndarray, num_classes: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Per-sample 1 / (its class's total weight; the count without weights), so every present
    class gets the same sampling mass, also when the samples carry weights (a resampling or
    reweighting baseline's) that are multiplied in."""
    totals = np.bincount(labels, weights=weights, minlength=num_classes).astype(np.float64)
    return 1.0 / np.where(totals > 0, totals, 1.0)[labels]


def per_sample_group_weights(groups: np.ndarray, group_weights: np.ndarray) -> np.ndarray:
    """w_{g(i)} for each sample; samples with an unknown group (-1) get the mean group weight."""
    weights = np.full(len(groups), group_weights.mean())
    known = groups >= 0
    weights[known] = group_weights[groups[known]]
    return weights


def sampling_mass(base_weights: np.ndarray, labels: np.ndarray, num_classes: int, balance: str,
                  groups: np.ndarray | None = None, group_weights: np.ndarray | None = None) -> np.ndarray:
    """Per-sample sampling probability: given weights x class balance x group weights, summing to 1.

    Multi-hot labels get no class factor here: their balance is per label, in the loss
    (label_balance_weights)."""
    mass = np.asarray(base_weights, dtype=np.float64).copy()
    if balance == "class" and labels.ndim == 1:
        mass *= class_balance_weights(labels, num_classes, mass)
    if group_weights is not None:
        mass *= per_sample_group_weights(groups, group_weights)
    return mass / mass.sum()


def label_balance_weights(labels: np.ndarray) -> np.ndarray:
    """(2, L) loss weights of each label's negatives (row 0) and positives (row 1) for multi-hot
    labels: n / (2 n_value), sklearn's class_weight="balanced" per one-vs-rest label. A label
    with no positive or no negative in train keeps weight 1 for both."""
    labels = np.asarray(labels)
    n, positives = len(labels), labels.sum(axis=0).astype(np.float64)
    counts = np.stack([n - positives, positives])
    weights = n / (2.0 * np.maximum(counts, 1.0))
    weights[:, (counts == 0).any(axis=0)] = 1.0
    return weights


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, loss: str, focal_gamma: float,
                        label_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample loss (no reduction): cross-entropy, or focal loss -(1-p_t)^gamma log p_t.

    Multi-hot targets (N, L): binary cross-entropy with logits per label (focal per label),
    weighted by `label_weights` (2, L) for negatives/positives, averaged over labels."""
    if targets.ndim == 2:
        return multilabel_loss(logits, targets, loss, focal_gamma, label_weights)
    log_p = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    if loss == "focal":
        return -((1.0 - log_p.exp()) ** focal_gamma) * log_p
    return -log_p


def multilabel_loss(logits: torch.Tensor, targets: torch.Tensor, loss: str, focal_gamma: float,
                    label_weights: torch.Tensor | None = None) -> torch.Tensor:
    targets = targets.to(logits.dtype)
    per_label = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # -log p_t
    if loss == "focal":
        per_label = (1.0 - (-per_label).exp()) ** focal_gamma * per_label
    if label_weights is not None:
        weights = label_weights.to(logits.device, logits.dtype)
        per_label = per_label * torch.where(targets > 0.5, weights[1], weights[0])
    return per_label.mean(dim=1)


def val_score(proba: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """The model-selection score on val and each val sample's correctness (for group accuracy).

    Single-label: accuracy, and whether the argmax is right. Multi-hot: the macro ROC-AUC over
    labels with both values in val (mean label accuracy at 0.5 when none has), and the fraction
    of a sample's labels right at threshold 0.5.
    """
    if labels.ndim == 1:
        correct = (proba.argmax(1) == labels).astype(np.float64)
        return float(correct.mean()), correct
    correct = ((proba >= 0.5) == labels.astype(bool)).mean(axis=1)
    defined = [c for c in range(labels.shape[1]) if 0 < labels[:, c].sum() < len(labels)]
    if not defined:
        return float(correct.mean()), correct
    from sklearn.metrics import roc_auc_score

    return float(np.mean([roc_auc_score(labels[:, c], proba[:, c]) for c in defined])), correct


def score_name(labels: np.ndarray) -> str:
    """What val_score measures: "acc", or "auc" for multi-hot labels."""
    return "auc" if np.ndim(labels) == 2 else "acc"


def build_augmentation(kind: str):
    """A per-image transform on uint8 (C, H, W) tensors, or None. Draws from torch's global RNG."""
    if kind == "none":
        return None
    from torchvision.transforms import v2

    if kind == "randaugment":
        return v2.RandAugment()
    return v2.Compose([
        v2.RandomHorizontalFlip(),
        v2.RandomVerticalFlip(),  # medical images (lesions, histology) have no canonical up
        v2.RandomRotation(15),
        v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.1),
    ])


def augment_batch(images: torch.Tensor, transform) -> torch.Tensor:
    """Apply `transform` image by image (v2 transforms draw one set of parameters per call)."""
    if transform is None:
        return images
    return torch.stack([transform(image) for image in images])


@contextmanager
def limited_threads(threads: int) -> Iterator[None]:
    """Cap torch, BLAS and OpenMP threads: on a shared, loaded CPU, oversubscription was 5-10x slower."""
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            yield
    finally:
        torch.set_num_threads(previous)
