"""Plugin contracts: the three small base classes a method author subclasses.

A plugin produces data (Dataset), images (Generator) or predictions (Classifier); it never
computes metrics. Every plugin declares `name`, `version` and `defaults` (its parameters and
their default values, DomainBed-style) and receives its parameters as keyword arguments.
Unknown parameters are an error, so a typo in a grid file never goes unnoticed.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.data import DataError, ImageSet, Splits
from harness.scenarios import Scenario, default_scenarios


class ConfigError(ValueError):
    """Bad configuration: the message names the offending key and what to do."""


class PluginBase:
    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    kind: ClassVar[str] = ""
    #: every parameter with its default; configs may only set these keys
    defaults: ClassVar[dict[str, Any]] = {}
    #: named parameter sets, e.g. {"cpu": {...}, "paper": {...}}; selected with config="name"
    configs: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, **params: Any) -> None:
        self.params = self.resolve_params(params)

    @classmethod
    def resolve_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Defaults <- named config <- explicit params, with unknown keys and wrong types refused."""
        params = dict(params)
        resolved = dict(cls.defaults)
        config = params.pop("config", None)
        if config is not None:
            if config not in cls.configs:
                raise ConfigError(f"{cls.kind} '{cls.name}': unknown config '{config}'; choose one of {sorted(cls.configs)}")
            resolved.update(cls.configs[config])
        for key, value in params.items():
            if key not in cls.defaults:
                hint = difflib.get_close_matches(key, list(cls.defaults), n=1)
                suggestion = f"; did you mean '{hint[0]}'?" if hint else f"; known parameters: {sorted(cls.defaults)}"
                raise ConfigError(f"{cls.kind} '{cls.name}': unknown parameter '{key}'{suggestion}")
            default = cls.defaults[key]
            if default is not None and value is not None and not _same_type(default, value):
                raise ConfigError(
                    f"{cls.kind} '{cls.name}': parameter '{key}' expects {type(default).__name__}, "
                    f"got {type(value).__name__} {value!r}"
                )
            resolved[key] = value
        if config is not None:
            resolved["config"] = config
        return resolved


def _same_type(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


class Dataset(PluginBase):
    """Returns real splits and declares how they are judged.

    Subclasses set `label_names`, `sensitive_attributes` (the first is the primary one that
    fairness metrics use), optionally `high_risk_classes`, and implement `load`. Skew scenarios
    come from `scenarios()`; the default is the shared library applied to the primary attribute.
    """

    kind = "dataset"
    label_names: ClassVar[list[str]] = []
    sensitive_attributes: ClassVar[list[str]] = []
    high_risk_classes: ClassVar[list[str]] = []
    #: the utility metric whose best-minus-worst group gap is `gap_<metric>`
    primary_metric: ClassVar[str] = "acc"

    @property
    def primary_attribute(self) -> str:
        return self.sensitive_attributes[0]

    def load(self, seed: int) -> Splits:
        """Build or read the splits. Must be deterministic in (params, seed)."""
        raise NotImplementedError

    def data_digest(self) -> str:
        """A digest of the data files `load` reads ("" when the splits depend on the parameters
        alone, as for procedural datasets); part of the split cache key, so edited data gives
        new splits."""
        return ""

    def scenarios(self) -> dict[str, Scenario]:
        return default_scenarios(self.primary_attribute)


class Generator(PluginBase):
    """Learns from the (skewed) training split and synthesises images on request.

    `sample(labels, attributes, seed)` gets one requested row per image: class codes and a
    dict of attribute codes (same vocabularies as the training set) and returns uint8 images
    (N, C, H, W) of the training image shape. The core tags them as synthetic.
    Set `produces_images = False` for a real-only baseline; it may reweight the real training
    set through `sample_weight`.
    """

    kind = "generator"
    produces_images: ClassVar[bool] = True
    #: parameters this method asks of the cell's classifier (e.g. {"balance": "class"});
    #: applied where the classifier has the key and the grid left it unset. Built-in methods ask
    #: nothing: a classifier option belongs in the grid's classifier entry, where it is its own row
    classifier_params: ClassVar[dict[str, Any]] = {}

    def fit(self, train: ImageSet, seed: int, unlabeled: ImageSet | None = None) -> None:
        raise NotImplementedError

    def sample(self, labels: np.ndarray, attributes: dict[str, np.ndarray], seed: int) -> np.ndarray:
        raise NotImplementedError

    def sample_weight(self, train: ImageSet, seed: int) -> np.ndarray | None:
        """Per-sample weights (N,) over the real training set for the cell's classifier to honour
        (a generator-free debiasing baseline); None trains unweighted. Asked only of a generator
        with `produces_images = False`."""
        return None

    def save(self, directory: Path) -> None:
        """Write the state (safetensors + JSON, never pickle) into an existing directory."""
        raise NotImplementedError

    def load(self, directory: Path) -> None:
        raise NotImplementedError

    #: set by fit/sample to report throughput etc.; copied into the run records
    stats: dict[str, float]


class Classifier(PluginBase):
    """Trains on real (+ synthetic) images and predicts class probabilities.

    `fit` may use `val` for model selection (never test). `sample_weight` (N,) are per-sample
    weights that a classifier must honour (weighted sampling or weighted loss).
    `predict_proba` returns float (N, K) rows that sum to 1 (K = number of classes); for multi-hot
    (multi-label) training labels, one independent probability per label instead.
    """

    kind = "classifier"

    def fit(self, train: ImageSet, val: ImageSet, seed: int, sample_weight: np.ndarray | None = None) -> None:
        raise NotImplementedError

    def predict_proba(self, images: ImageSet) -> np.ndarray:
        raise NotImplementedError

    #: set by fit to report the training budget spent (`steps`, ...); copied into the run records
    stats: dict[str, float]



def check_sample_weight(weights: object, n: int, who: str) -> np.ndarray:
    """`weights` as float64 (n,) finite, non-negative, with a positive sum; else a DataError naming `who`."""
    array = np.asarray(weights, dtype=np.float64)
    if array.shape != (n,) or not np.all(np.isfinite(array)) or array.min(initial=0) < 0 or array.sum() <= 0:
        raise DataError(f"{who}: sample_weight must be {n} finite non-negative numbers with a positive sum, "
                        f"got shape {array.shape}")
    return array
