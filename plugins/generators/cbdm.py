"""CBDM: class-balancing diffusion (Qin et al. CVPR 2023; github qym7/CBDM-pytorch).

A conditional DDPM with classifier-free guidance whose loss adds a regulariser that pulls the
prediction for the true condition y towards the prediction for a random condition y'
(and, with weight gamma, the other way round), growing with the timestep:
    L = ||e(x_t,y) - e||^2 + tau * t/T * [ ||e(x_t,y) - sg(e(x_t,y'))||^2 + gamma * ||sg(e(x_t,y)) - e(x_t,y')||^2 ]
with the regulariser only on rows whose condition is not null. y' follows the empirical
training distribution of conditions (`target = "empirical"`, training from scratch) or a uniform
one (`"uniform"`, CBDM's fine-tuning). In this harness the "class" CBDM balances over is the
(label x attribute) cell; `attribute` names it ("" = the training set's first attribute), with
an extra cell per label for unknown values. Differences from the public code: the condition is
dropped per row (p_uncond) rather than for a whole batch with p = 0.1, and e(x_t,y), e(x_t,y')
come from one batched forward. Guidance: CBDM's omega = 1.6 is guidance_scale = 1 + omega = 2.6.
Trains at `resolution` (cpu: 16 px) and returns images resized to the training set's H x W.
"""
from __future__ import annotations

import numpy as np
import torch

from harness import ConfigError, ImageSet, hookimpl
from plugins.generators._diffusion import (COMMON_DEFAULTS, HO_CIFAR_PAPER, ConditionedUNet, Factor,
                                           PixelDiffusionGenerator, check_labels, unknown_to_index)

CELL_PREFIX = "cell:"


def cbdm_loss(eps_y: torch.Tensor, eps_other: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
              num_train_timesteps: int, is_null: torch.Tensor, tau: float, gamma: float) -> torch.Tensor:
    """CBDM's loss (METHODS.md); `.detach()` is the stop-gradient sg. Mean over rows and pixels."""
    def per_row(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((a - b) ** 2).flatten(1).mean(1)

    weight = tau * t.float() / num_train_timesteps * (~is_null).float()
    regulariser = per_row(eps_y, eps_other.detach()) + gamma * per_row(eps_y.detach(), eps_other)
    return (per_row(eps_y, noise) + weight * regulariser).mean()


class CBDM(PixelDiffusionGenerator):
    name = "cbdm"
    version = "1"
    # cpu: batch 64, since each step runs the UNet on 2 x 64 rows (y and y'), the compute of the others' 128
    defaults = {**COMMON_DEFAULTS, "batch_size": 64, "guidance_scale": 2.6, "attribute": "", "tau": 1.0,
                "gamma": 0.25, "target": "empirical"}
    # defaults are the cpu config; paper: CBDM's CIFAR-100-LT settings (Ho et al.'s UNet, lr 2e-4,
    # warmup 5000, EMA 0.9999); their sampler is 1000-step ancestral DDPM, here DDIM 100 steps with eta 1 (ancestral)
    configs = {"cpu": {}, "paper": {**HO_CIFAR_PAPER, "guidance_scale": 2.6, "sample_steps": 100, "sample_eta": 1.0}}

    def fit(self, train: ImageSet, seed: int, unlabeled: ImageSet | None = None) -> None:
        if self.params["target"] not in ("empirical", "uniform"):
            raise ConfigError(f"generator 'cbdm': target must be 'empirical' or 'uniform', got '{self.params['target']}'")
        self.attribute = self.params["attribute"] or next(iter(train.attributes), "")
        if self.attribute and self.attribute not in train.attributes:
            raise ConfigError(f"generator 'cbdm': attribute '{self.attribute}' is not in the training set; "
                              f"it has {sorted(train.attributes)}")
        super().fit(train, seed, unlabeled)

    def condition_factors(self, train: ImageSet) -> list[Factor]:
        groups = len(train.attribute_vocab[self.attribute]) if self.attribute else 0
        return [Factor(CELL_PREFIX + self.attribute, train.num_classes * (groups + 1))]

    def encode(self, labels: np.ndarray, attributes: dict[str, np.ndarray]) -> np.ndarray:
        labels = check_labels(labels, len(self.state["label_names"]))
        attribute = self.state["factors"][0]["name"][len(CELL_PREFIX):]
        groups = len(self.state["attribute_vocab"][attribute]) if attribute else 0
        codes = attributes.get(attribute, np.full(len(labels), -1)) if attribute else np.full(len(labels), -1)
        return (labels * (groups + 1) + unknown_to_index(codes, groups))[:, None]

    def target_distribution(self, cells: torch.Tensor) -> torch.Tensor:
        """Probabilities of y' over all cells: empirical frequencies, or uniform over known cells."""
        size = self.state["factors"][0]["size"]
        if self.params["target"] == "empirical":
            return torch.bincount(cells, minlength=size).double()
        groups = size // len(self.state["label_names"])
        known = torch.ones(size, dtype=torch.float64)
        if groups > 1:
            known[groups - 1::groups] = 0  # the unknown-attribute cell of each label
        return known

    def _train(self, model: ConditionedUNet, pool: dict[str, torch.Tensor], rng: torch.Generator) -> tuple[int, float]:
        labeled = ~pool["is_null"]
        self.target = self.target_distribution(pool["cond"][labeled, 0])
        return super()._train(model, pool, rng)

    def diffusion_loss(self, model: ConditionedUNet, x_t: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                       cond: torch.Tensor, is_null: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        other = torch.multinomial(self.target, len(cond), replacement=True, generator=rng)[:, None].to(cond.device)
        both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond, other]),
                     torch.cat([is_null, torch.zeros_like(is_null)]))
        eps_y, eps_other = both.chunk(2)
        return cbdm_loss(eps_y, eps_other, noise, t, self.params["num_train_timesteps"], is_null,
                         self.params["tau"], self.params["gamma"])


@hookimpl
def harness_generators():
    return [CBDM]
