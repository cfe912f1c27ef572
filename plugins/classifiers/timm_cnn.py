"""timm classifiers: any timm architecture by name, trained end to end on real + synthetic images.

`timm` takes any architecture (resnet18/50, vit_base_patch16_224, vgg16, convnext_base, ...)
from scratch or from a local weights file (safetensors, or torch.load with weights_only=True);
nothing is downloaded. Images are turned to RGB, resized to `image_size` (0 keeps their size)
and normalised with the model's mean/std.

Training budget: a fixed number of optimiser steps that does not grow with the synthetic images
added, so an augmented classifier takes as many steps as the real-only one (training.py,
`step_budget`): `steps`, or `epochs` passes over the real training rows. Val is scored every
`eval_every` steps (0 = once per real-data epoch) and the best evaluation is kept (the earliest
on ties); test is never seen. `small_cnn` is the same code with CPU-sized defaults (timm's
test_resnet at native size). Multi-hot labels train one sigmoid output per label (binary
cross-entropy, training.py) and keep the evaluation with the best val macro AUC; predict_proba
then gives per-label probabilities.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from harness import Classifier, ConfigError, ImageSet, hookimpl
from plugins.classifiers import training

PREDICT_BATCH = 256
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BASE_DEFAULTS: dict[str, Any] = {
    "arch": "resnet18",
    "weights": "",  # local .safetensors / .pt / .pth file; "" = train from scratch
    "image_size": 0,  # 0 = keep the images' size
    "epochs": 10,  # the budget in passes over the *real* training rows (synthetic rows add no steps)
    "steps": 0,  # the budget in optimiser steps; 0 = from `epochs`
    "eval_every": 0,  # optimiser steps between val evaluations; 0 = one real-data epoch
    "batch_size": 64,
    "optimizer": "adam",  # "adam" | "adamw" | "sgd"
    "lr": 1e-3,
    "weight_decay": 0.0,
    "scheduler": "none",  # "none" | "cosine" | "step"
    "step_size": 7,  # StepLR real-data epochs per decay
    "step_gamma": 0.1,
    "head_dropout": 0.0,  # timm drop_rate: dropout before the classifier head
    "sample_weight_mode": "sampler",  # "sampler" (WeightedRandomSampler) | "loss" (weighted loss)
    "threads": 1,  # CPU threads; 2 threads on a shared, loaded CPU were 5-10x slower here
    "device": "auto",  # "auto" = cuda if available, else cpu
    **training.TRAINING_OPTIONS,
}

PAPER_CONFIGS: dict[str, dict[str, Any]] = {
    # FairGen's downstream classifier, with its inverse-performance group reweighting (step 4)
    "paper_fairgen": {"arch": "vit_base_patch16_224", "image_size": 224, "optimizer": "adamw", "lr": 1e-4,
                      "weight_decay": 1e-5, "scheduler": "cosine", "epochs": 10, "batch_size": 64,
                      "head_dropout": 0.3, "group_reweighting": "inverse_performance"},
    # skin-diff's classifier: Adam 1e-3, StepLR, class-weighted sampler
    "paper_skindiff": {"arch": "resnet18", "image_size": 224, "optimizer": "adam", "lr": 1e-3,
                       "scheduler": "step", "step_size": 7, "step_gamma": 0.1, "epochs": 20,
                       "batch_size": 32, "balance": "class"},
}

CPU_CONFIG: dict[str, Any] = {"arch": "test_resnet", "image_size": 0, "epochs": 5, "batch_size": 32,
                              "optimizer": "adam", "lr": 5e-3, "scheduler": "cosine", "threads": 1}


class TimmClassifier(Classifier):
    name = "timm"
    version = "1"
    defaults = BASE_DEFAULTS
    configs = {"cpu": CPU_CONFIG, "paper": PAPER_CONFIGS["paper_fairgen"], **PAPER_CONFIGS}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        training.check_training_options(self.name, self.params)
        training.check_choice(self.name, "optimizer", self.params["optimizer"], ("adam", "adamw", "sgd"))
        training.check_choice(self.name, "scheduler", self.params["scheduler"], ("none", "cosine", "step"))
        training.check_choice(self.name, "sample_weight_mode", self.params["sample_weight_mode"], ("sampler", "loss"))
        if self.params["batch_size"] < 2:
            raise ConfigError(f"classifier '{self.name}': batch_size must be >= 2 (BatchNorm cannot train on one sample)")
        self.model: torch.nn.Module | None = None
        self.history: list[dict[str, float]] = []  # per evaluation: val accuracy (multi-hot: AUC), group weights
        self.stats: dict[str, float] = {}
        self.multilabel = False  # multi-hot targets: sigmoid outputs instead of a softmax

    # -- model -----------------------------------------------------------------------------
    def build_model(self, num_classes: int) -> torch.nn.Module:
        """The timm model with a `num_classes` head, from scratch or the local weights file."""
        import timm

        try:
            model = timm.create_model(self.params["arch"], pretrained=False, num_classes=num_classes,
                                      in_chans=3, drop_rate=self.params["head_dropout"])
        except RuntimeError as exc:  # timm raises RuntimeError for unknown names
            raise ConfigError(f"classifier '{self.name}': {exc}; list names with timm.list_models()") from exc
        if self.params["weights"]:
            load_backbone_weights(model, Path(self.params["weights"]))
        return model

    def _set_input_transform(self, model: torch.nn.Module, device: torch.device) -> None:
        """Resize to `image_size` and normalise with the architecture's own mean/std."""
        config = model.pretrained_cfg
        self._device = device
        self._mean = torch.tensor(config.get("mean", IMAGENET_MEAN), device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(config.get("std", IMAGENET_STD), device=device).view(1, 3, 1, 1)

    def _to_input(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 RGB (N, 3, H, W) -> resized, normalised float input on the model's device."""
        x = images_uint8.to(self._device, dtype=torch.float32) / 255.0
        size = self.params["image_size"]
        if size and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return (x - self._mean) / self._std

    # -- training --------------------------------------------------------------------------
    def fit(self, train: ImageSet, val: ImageSet, seed: int, sample_weight: np.ndarray | None = None) -> None:
        base_weights = training.check_training_data(self.name, train, val, sample_weight)
        self.multilabel = train.multilabel

        def fit_once(weights: np.ndarray) -> None:
            torch.manual_seed(seed)
            self._fit(train, val, seed, weights)

        with training.limited_threads(self.params["threads"]):
            training.fit_selecting_share(self, "model", train, base_weights, fit_once)

    def _fit(self, train: ImageSet, val: ImageSet, seed: int, base_weights: np.ndarray) -> None:
        p = self.params
        device = resolve_device(p["device"])
        model = self.build_model(train.num_classes).to(device)
        self._set_input_transform(model, device)
        budget = training.step_budget(train, p["batch_size"], p["epochs"], p["steps"], p["eval_every"])
        optimizer = make_optimizer(model, p)
        scheduler = make_scheduler(optimizer, p, budget)
        augmentation = training.build_augmentation(p["augment"])
        train_images = training.as_rgb(torch.from_numpy(train.images))
        train_labels = torch.from_numpy(train.labels)
        label_weights = (torch.from_numpy(training.label_balance_weights(train.labels)).float()
                         if self.multilabel and p["balance"] == "class" else None)
        score_name = training.score_name(train.labels)
        groups, num_groups = self._groups(train, val)
        group_weights = (training.inverse_performance_weights(None, num_groups)
                         if p["group_reweighting"] == "inverse_performance" else None)
        mass = training.sampling_mass(base_weights, train.labels, train.num_classes, p["balance"], groups, group_weights)
        batches = training.BatchStream(len(train), p["batch_size"], torch.Generator().manual_seed(seed),
                                       p["sample_weight_mode"] == "sampler")
        best_score, best_step, best_state = -1.0, 0, None
        self.history = []
        model.train()
        for step in range(1, budget.steps + 1):
            index = batches.next(mass)
            batch = training.augment_batch(train_images[index], augmentation)
            logits = model(self._to_input(batch))
            per_sample = training.classification_loss(logits, train_labels[index].to(self._device),
                                                      p["loss"], p["focal_gamma"], label_weights)
            weights = batches.loss_weights(mass, index).to(self._device)
            loss = (per_sample * weights).sum() / weights.sum().clamp_min(1e-12)  # a batch of weight 0 adds nothing
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if step % budget.eval_every and step != budget.steps:
                continue
            score, correct = training.val_score(self._predict_with(model, val.images), val.labels)
            model.train()
            if groups is not None:  # FairGen: the next period's group weights from this val accuracy
                group_accuracy = training.group_accuracy(correct, self._val_groups, num_groups)
                self.history.append({"step": step, f"val_{score_name}": score, "group_weights": group_weights.tolist(),
                                     "group_val_acc": group_accuracy.tolist()})
                group_weights = training.inverse_performance_weights(group_accuracy, num_groups)
                mass = training.sampling_mass(base_weights, train.labels, train.num_classes, p["balance"], groups,
                                              group_weights)
            else:
                self.history.append({"step": step, f"val_{score_name}": score})
            if score > best_score:  # the earliest evaluation wins ties
                best_score, best_step, best_state = score, step, copy.deepcopy(model.state_dict())
        model.load_state_dict(best_state)
        self.model = model.eval()
        self.stats = {f"best_val_{score_name}": best_score, "best_step": float(best_step),
                      "steps": float(budget.steps), "examples_seen": float(budget.steps * p["batch_size"]),
                      "evaluations": float(len(self.history))}

    def _groups(self, train: ImageSet, val: ImageSet) -> tuple[np.ndarray | None, int]:
        if self.params["group_reweighting"] == "none":
            return None, 0
        attribute = training.group_attribute_name(train, self.params["group_attribute"])
        self._val_groups = val.group_codes(attribute)
        return train.group_codes(attribute), len(train.attribute_vocab[attribute])

    # -- prediction ------------------------------------------------------------------------
    @torch.no_grad()
    def _predict_with(self, model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
        model.eval()
        rgb = training.as_rgb(torch.from_numpy(images))
        activation = torch.sigmoid if self.multilabel else (lambda logits: F.softmax(logits, dim=1))
        chunks = [activation(model(self._to_input(rgb[start:start + PREDICT_BATCH])).float()).cpu()
                  for start in range(0, len(rgb), PREDICT_BATCH)]
        return torch.cat(chunks).double().numpy()

    def predict_proba(self, images: ImageSet) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"classifier '{self.name}': call fit() before predict_proba()")
        with training.limited_threads(self.params["threads"]):
            proba = self._predict_with(self.model, images.images)
        if self.multilabel:  # one probability per label; rows need not sum to 1
            return proba
        return proba / proba.sum(axis=1, keepdims=True)

    def parameter_count(self, num_classes: int = 2) -> int:
        """Parameters of the configured model (builds it; downloads nothing)."""
        return sum(p.numel() for p in self.build_model(num_classes).parameters())


class SmallCNN(TimmClassifier):
    """The default CPU classifier: timm's test_resnet at the images' own size, seconds per run."""

    name = "small_cnn"
    version = "1"
    defaults = {**BASE_DEFAULTS, **CPU_CONFIG}
    configs = {"cpu": CPU_CONFIG, "paper": {"arch": "resnet18", "image_size": 224, "epochs": 20, "lr": 1e-3,
                                            "scheduler": "step", "step_size": 7, "batch_size": 64}}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def make_optimizer(model: torch.nn.Module, params: dict) -> torch.optim.Optimizer:
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    extra = {"momentum": 0.9} if params["optimizer"] == "sgd" else {}
    return kinds[params["optimizer"]](model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"], **extra)


def make_scheduler(optimizer: torch.optim.Optimizer, params: dict, budget: "training.StepBudget"):
    """A learning-rate schedule stepped once per optimiser step: cosine over the whole budget, or
    StepLR decaying every `step_size` real-data epochs."""
    if params["scheduler"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(budget.steps, 1))
    if params["scheduler"] == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(params["step_size"] * budget.epoch_steps, 1),
                                               gamma=params["step_gamma"])
    return None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file or a torch file read with weights_only=True (never unpickled)."""
    if not path.is_file():
        raise ConfigError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return {k.removeprefix("module."): v for k, v in state.items() if torch.is_tensor(v)}


def load_backbone_weights(model: torch.nn.Module, path: Path) -> None:
    """Load every backbone tensor from `path`; the class head is kept fresh when its shape differs."""
    state = read_state_dict(path)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    head = model.pretrained_cfg.get("classifier", "")
    heads = head if isinstance(head, (list, tuple)) else [head]
    missing = [k for k in own if k not in usable and not any(h and k.startswith(h) for h in heads)]
    if missing:
        raise ConfigError(
            f"weights file {path} does not fit this architecture: {len(missing)} tensors missing or "
            f"mis-shaped, e.g. {missing[:3]}; pass weights saved from the same timm architecture"
        )
    model.load_state_dict(usable, strict=False)


@hookimpl
def harness_classifiers() -> list[type]:
    return [TimmClassifier, SmallCNN]
