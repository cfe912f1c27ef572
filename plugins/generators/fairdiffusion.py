"""FairDiffusion (Luo et al., Sci. Adv. 2025): fair Bayesian perturbation on SD fine-tuning.

On the same fine-tuning code as "sd" (sd.py), the epsilon-MSE of each training row i is weighted
by 1 + sum_a sigma_{a, g_a(i)} xi_{i,a}, xi ~ N(0, 1) drawn per row and attribute, g_a(i) the
row's group in attribute a (unknown -1: no term). The k = sum_a |groups_a| perturbation scales
sigma are tuned online for fairness: each step records (sigma, objective) with the objective
-sum_a (max_g mean loss_g - min_g mean loss_g) over the batch's groups; every `window` steps a
Gaussian process (scikit-learn's GaussianProcessRegressor) is fitted to the recent records and
sigma is set to the maximiser of its upper confidence bound mean + sqrt(beta) std (BoTorch's
UCB convention, beta 0.1) over seeded uniform candidates in [0, 1]^k; between fits sigma
decays toward noise, sigma <- 0.95 sigma + 0.05 U(0, 1).
"""
from __future__ import annotations

import warnings
from collections import deque
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from harness import ConfigError, ImageSet, hookimpl
from plugins.generators.sd import PAPER, Batch, StableDiffusionFinetune, TrainingData


# -- the method as pure functions ------------------------------------------------------------------
def perturbation_weights(sigma: np.ndarray, offsets: np.ndarray, groups: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """Per-row loss weights 1 + sum_a sigma[offsets[a] + g_a(i)] xi[i, a]; groups (N, A) codes,
    -1 = unknown (that attribute adds nothing), xi (N, A) standard normal draws."""
    known = groups >= 0
    scale = np.where(known, sigma[offsets[None, :] + np.where(known, groups, 0)], 0.0)
    return 1.0 + (scale * xi).sum(axis=1)


def fairness_objective(per_row_loss: np.ndarray, groups: np.ndarray) -> float:
    """-sum_a (max_g mean loss_g - min_g mean loss_g) over the groups present (unknown rows skipped);
    an attribute with fewer than two groups present contributes 0."""
    total = 0.0
    for a in range(groups.shape[1]):
        present = [per_row_loss[groups[:, a] == g].mean() for g in np.unique(groups[:, a]) if g >= 0]
        if len(present) > 1:
            total += max(present) - min(present)
    return -total


def decay_sigma(sigma: np.ndarray, uniform: np.ndarray, keep: float = 0.95) -> np.ndarray:
    """sigma <- keep sigma + (1 - keep) U, U ~ U(0, 1) drawn per entry."""
    return keep * sigma + (1.0 - keep) * uniform


def ucb_maximiser(history_sigma: np.ndarray, history_objective: np.ndarray, candidates: np.ndarray, beta: float,
                  seed: int) -> np.ndarray:
    """Fit a GP to (sigma, objective) records and return the candidate with the highest
    mean + sqrt(beta) std."""
    kernel = (ConstantKernel(1.0) * Matern(np.full(history_sigma.shape[1], 0.5), (0.05, 20.0), nu=2.5)
              + WhiteKernel(0.1, (1e-6, 10.0)))
    gp = GaussianProcessRegressor(kernel=kernel, normalize_y=True, random_state=seed)
    with warnings.catch_warnings():  # a batch-noisy objective often drives a length scale to its bound: expected
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(history_sigma, history_objective)
    mean, std = gp.predict(candidates, return_std=True)
    return candidates[int(np.argmax(mean + np.sqrt(beta) * std))].copy()


# -- the generator ---------------------------------------------------------------------------------
class FairDiffusion(StableDiffusionFinetune):
    name = "fairdiffusion"
    version = "1"
    defaults = {
        **StableDiffusionFinetune.defaults,
        "fair_attributes": [],  # attributes whose groups get a sigma; [] = every attribute of the training set
        "window": 50,  # steps between GP fits
        "ucb_beta": 0.1,
        "sigma_keep": 0.95,  # sigma <- keep sigma + (1 - keep) U(0, 1) each step
        "gp_history": 200,  # (sigma, objective) records the GP sees: the most recent ones, bounding its cost
        "ucb_candidates": 2048,  # uniform candidates in [0, 1]^k searched for the UCB maximiser
    }
    configs: ClassVar[dict[str, dict[str, Any]]] = {"cpu": {}, "paper": PAPER}

    def _check_params(self) -> None:
        super()._check_params()
        p = self.params
        if p["window"] < 2 or p["gp_history"] < 2:
            raise ConfigError(f"generator '{self.name}': window and gp_history need at least 2 records")
        if not 0 <= p["sigma_keep"] <= 1:
            raise ConfigError(f"generator '{self.name}': sigma_keep must be in [0, 1], got {p['sigma_keep']}")

    def prepare_training(self, train: ImageSet, data: TrainingData, seed: int) -> None:
        names = list(self.params["fair_attributes"]) or list(train.attributes)
        missing = [a for a in names if a not in train.attributes]
        if missing:
            raise ConfigError(f"generator '{self.name}': fair_attributes {missing} are not attributes of the training "
                              f"set {sorted(train.attributes)}")
        sizes = [len(train.attribute_vocab[a]) for a in names]
        self.fair_attributes = names
        self._offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        codes = np.stack([train.attributes[a] for a in names], axis=1) if names else np.zeros((len(train), 0), np.int64)
        unlabeled = len(data.prompt_index) - len(train)  # rows after the training set have no attributes
        self._groups = np.concatenate([codes, np.full((unlabeled, len(names)), -1, dtype=np.int64)])
        self._rng = np.random.default_rng(seed)
        self.sigma = self._rng.uniform(0, 1, int(sum(sizes)))
        self._history: deque[tuple[np.ndarray, float]] = deque(maxlen=self.params["gp_history"])
        self._step_objectives: list[float] = []
        self._seed = seed
        self.stats["gp_fits"] = 0.0

    def on_step(self, step: int, data: TrainingData, generator: torch.Generator) -> None:
        self._record_step()
        if step == 0:
            return
        p = self.params
        if step % p["window"] == 0 and len(self._history) >= 2:
            sigmas, objectives = map(np.array, zip(*self._history))
            candidates = self._rng.uniform(0, 1, (p["ucb_candidates"], len(self.sigma)))
            self.sigma = ucb_maximiser(sigmas, objectives, candidates, p["ucb_beta"], self._seed + step)
            self.stats["gp_fits"] += 1
        else:
            self.sigma = decay_sigma(self.sigma, self._rng.uniform(0, 1, len(self.sigma)), p["sigma_keep"])

    def training_loss(self, batch: Batch, data: TrainingData, generator: torch.Generator) -> dict[str, torch.Tensor]:
        eps = self.predict_noise(batch.noisy, batch.timesteps, batch.cond)
        per_row = ((eps - batch.noise) ** 2).flatten(1).mean(1)
        groups = self._groups[batch.rows.numpy()]
        xi = torch.randn(groups.shape, generator=generator, dtype=torch.float64).numpy()
        weights = torch.from_numpy(perturbation_weights(self.sigma, self._offsets, groups, xi)).to(per_row)
        self._step_objectives.append(fairness_objective(per_row.detach().cpu().numpy(), groups))
        return {"mse": (weights * per_row).mean()}

    def _record_step(self) -> None:
        """Store the finished step's record: the sigma it used and its mean objective."""
        if self._step_objectives:
            self._history.append((self.sigma.copy(), float(np.mean(self._step_objectives))))
            self._step_objectives = []

    def fit(self, train: ImageSet, seed: int, unlabeled: ImageSet | None = None) -> None:
        super().fit(train, seed, unlabeled)
        self._record_step()
        self.stats["final_objective"] = self._history[-1][1]
        labels = [f"{a}_{value}" for a in self.fair_attributes for value in train.attribute_vocab[a]]
        self.stats.update({f"sigma_{label}": float(s) for label, s in zip(labels, self.sigma)})

    def extra_state(self) -> dict[str, Any]:
        return {"sigma": self.sigma.tolist(), "fair_attributes": self.fair_attributes,
                "objective_history": [objective for _, objective in self._history]}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.sigma = np.array(state["sigma"])
        self.fair_attributes = state["fair_attributes"]


@hookimpl
def harness_generators() -> list[type]:
    return [FairDiffusion]
