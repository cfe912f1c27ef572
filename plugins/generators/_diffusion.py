"""Shared machinery of the pixel-space diffusion generators (class-only DDPM, MeDi, CBDM).

One base class, `PixelDiffusionGenerator`, trains a diffusers UNet2DModel with a DDPMScheduler
(epsilon prediction) and samples with a DDIMScheduler. The three methods differ only in how a
request becomes a condition and (CBDM) in the loss, so a subclass supplies:
- `condition_factors(train)`: the condition's factors and their sizes (label; label + one per
  attribute; or the label x attribute cell), and `encode(labels, attributes)`: rows -> indices;
- optionally `row_weights(train)` (the training sampler) and `diffusion_loss(...)`.

The condition is a sum of one learned embedding per factor, passed to the UNet as
`class_labels` with `class_embed_type="identity"`, i.e. added to the timestep embedding. With
a single factor this is exactly diffusers' `num_class_embeds` class embedding. The null
condition (classifier-free guidance, unlabeled images) is one learned vector that replaces the
sum. Guidance follows Ho & Salimans: eps = eps(x, null) + s * (eps(x, y) - eps(x, null)), the
pair computed in one batched forward; s = 1 skips the unconditional half.

Resolution: a generator trains at its own square `resolution` (cpu configs: 16 px). Training
images are resized to it (bilinear, antialiased), and samples are resized back to the training
set's H x W, so `sample` always returns uint8 (N, C, H, W) with the training set's channels.
State: the EMA weights as safetensors plus JSON holding the architecture, the condition
factors and the training label/attribute vocabularies, reused verbatim at sampling.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file
from torch import nn

from harness import ConfigError, DataError, Generator, ImageSet
from harness.plugin_tools import resize, resolve_device, to_float, to_uint8

WEIGHTS_FILE = "ema_weights.safetensors"
STATE_FILE = "generator.json"

#: the cpu configuration (a ~0.9M-parameter UNet at 16 px); `paper` configs override these
COMMON_DEFAULTS: dict[str, Any] = {
    "resolution": 16,
    "block_out_channels": [32, 64, 64],
    "layers_per_block": 1,
    "attention_levels": [],  # indices of UNet levels with self-attention (the mid block always has it)
    "attention_head_dim": 0,  # 0: one head per block (Ho et al.)
    "norm_num_groups": 8,
    "dropout": 0.0,
    "num_train_timesteps": 1000,
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "batch_size": 128,
    "train_steps": 500,  # ~5 min at the ~225 images/s measured here (issue 6) with 2 free cores
    "max_seconds": 0.0,  # optional wall-clock cap; 0 = none. A cap makes runs irreproducible.
    "optimizer": "adamw",
    "lr": 1e-3,
    "adam_beta1": 0.9,
    "weight_decay": 0.0,
    "lr_schedule": "cosine",  # any diffusers.optimization scheduler name
    "warmup_steps": 25,
    "grad_clip": 1.0,
    "ema_decay": 0.995,
    "ema_warmup": False,  # True: decay 1 - (1 + step)^-ema_power (MeDi); False: (1 + step) / (10 + step)
    "ema_power": 0.75,
    "hflip": True,
    "p_uncond": 0.1,  # probability of training a labeled row with the null condition
    "guidance_scale": 2.0,  # s in eps(null) + s * (eps(y) - eps(null)); 1 = conditional only
    "sample_steps": 25,
    # DDIM eta: 0 = deterministic DDIM, 1 = ancestral noise at each step. At the cpu budget eta = 1
    # keeps samples diverse: with eta = 0 nearly every sample took the mean (medium) skin tone and
    # CBDM's class accuracy fell from 61% to 39% (docs/generators.md)
    "sample_eta": 1.0,
    "sample_batch_size": 256,
    "device": "auto",  # "auto": cuda when available, else cpu; or any torch device string
}


@dataclass(frozen=True)
class Factor:
    """One additive part of the condition, e.g. the label or one attribute; `size` rows. A
    multi-hot factor (multi-label findings) takes `size` 0/1 columns of the condition and adds
    the rows of the labels present: a linear map of the multi-hot vector, as Khosravi et al.'s
    condition vector of findings and demographics."""

    name: str
    size: int
    multi_hot: bool = False


class ConditionedUNet(nn.Module):
    """UNet2DModel whose class embedding is a sum of per-factor embeddings or a null vector."""

    def __init__(self, unet_config: dict[str, Any], factor_sizes: list[int], multi_hot: list[bool] | None = None) -> None:
        super().__init__()
        self.unet = UNet2DModel(**unet_config, class_embed_type="identity")
        dim = unet_config["block_out_channels"][0] * 4  # UNet2DModel's time embedding width
        self.factors = nn.ModuleList(nn.Embedding(size, dim) for size in factor_sizes)
        self.multi_hot = list(multi_hot or [False] * len(factor_sizes))
        self.null = nn.Parameter(torch.randn(dim))

    def condition_embedding(self, cond: torch.Tensor, is_null: torch.Tensor) -> torch.Tensor:
        """Sum over factors: an index factor takes one column (its row), a multi-hot one `size`
        columns (the sum of the rows present); null rows get the null vector."""
        parts, column = [], 0
        for table, hot in zip(self.factors, self.multi_hot):
            if hot:
                parts.append(cond[:, column:column + table.num_embeddings].to(table.weight.dtype) @ table.weight)
                column += table.num_embeddings
            else:
                parts.append(table(cond[:, column]))
                column += 1
        return torch.where(is_null[:, None], self.null, sum(parts))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, is_null: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, class_labels=self.condition_embedding(cond, is_null)).sample


class PixelDiffusionGenerator(Generator):
    """Base class: subclasses define the condition (and optionally sampler weights and loss)."""

    defaults: ClassVar[dict[str, Any]] = COMMON_DEFAULTS
    limit_params: ClassVar[dict[str, Any]] = {"train_steps": 2, "sample_steps": 2}
    #: whether condition_factors/encode handle multi-hot labels (N, L)
    supports_multilabel: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.model: ConditionedUNet | None = None
        self.state: dict[str, Any] = {}
        self.stats: dict[str, float] = {}

    # -- what a method defines ---------------------------------------------------------------
    def condition_factors(self, train: ImageSet) -> list[Factor]:
        raise NotImplementedError

    def encode(self, labels: np.ndarray, attributes: dict[str, np.ndarray]) -> np.ndarray:
        """Map request rows to (N, n_factors) int64 embedding indices, using `self.state` vocab."""
        raise NotImplementedError

    def row_weights(self, train: ImageSet) -> np.ndarray:
        """Relative probability of drawing each labeled training row (default: uniform)."""
        return np.ones(len(train))

    # -- the condition as a vector -------------------------------------------------------------
    def set_condition(self, train: ImageSet) -> list[Factor]:
        """Fix the condition from the training set: label and attribute vocabularies and factors
        (fit's first step; trains nothing)."""
        if train.multilabel and not self.supports_multilabel:
            raise DataError(f"generator '{self.name}' needs single-label training data (one class code per image); "
                            "ddpm and medi take multi-hot labels")
        factors = self.condition_factors(train)
        self.state = {
            "label_names": list(train.label_names),
            "attribute_vocab": {k: list(v) for k, v in train.attribute_vocab.items()},
            "factors": [asdict(f) for f in factors],
            "unet": self._unet_config(channels=train.image_shape[0]),
            "image_shape": list(train.image_shape),
        }
        return factors

    def condition_columns(self) -> list[str]:
        """Names of the condition vector's columns, in order: a multi-hot label factor gives one
        0/1 column per label, an index factor one one-hot column per row (an attribute's values,
        then "unknown"). The condition embedding is a linear map of this vector (Khosravi et al.'s
        condition vector of findings and demographics)."""
        columns = []
        for factor in self.state["factors"]:
            name, size = factor["name"], factor["size"]
            if name == "label":
                columns += [f"label:{label}" for label in self.state["label_names"]]
                continue
            vocab = self.state["attribute_vocab"].get(name)
            if vocab is not None and len(vocab) <= size:
                values = list(vocab) + ["unknown"] * (size - len(vocab))
            else:  # e.g. cbdm's (label x attribute) cells: numbered rows
                values = [str(i) for i in range(size)]
            columns += [f"{name}={value}" for value in values]
        return columns

    def condition_vector(self, labels: np.ndarray, attributes: dict[str, np.ndarray]) -> np.ndarray:
        """The (N, len(condition_columns())) 0/1 condition vector of request rows: multi-hot
        columns as given, each index factor one-hot."""
        cond, parts, column = self.encode(labels, attributes), [], 0
        for factor in self.state["factors"]:
            if factor.get("multi_hot"):
                parts.append(cond[:, column:column + factor["size"]])
                column += factor["size"]
            else:
                parts.append(np.eye(factor["size"], dtype=np.int64)[cond[:, column]])
                column += 1
        return np.concatenate(parts, axis=1)

    def diffusion_loss(self, model: ConditionedUNet, x_t: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                       cond: torch.Tensor, is_null: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """The epsilon-prediction loss of Ho et al."""
        return F.mse_loss(model(x_t, t, cond, is_null), noise)

    # -- training ------------------------------------------------------------------------------
    def fit(self, train: ImageSet, seed: int, unlabeled: ImageSet | None = None) -> None:
        factors = self.set_condition(train)
        torch.manual_seed(seed)
        rng = torch.Generator().manual_seed(seed)
        self._check_guidance(has_unlabeled=unlabeled is not None and len(unlabeled) > 0)
        pool = self._training_pool(train, unlabeled)
        self.model = ConditionedUNet(self.state["unet"], [f.size for f in factors],
                                     [f.multi_hot for f in factors]).to(self.device)
        steps, seconds = self._train(self.model, pool, rng)
        batch = self.params["batch_size"]
        self.stats = {"train_steps": float(steps), "train_seconds": seconds,
                      "train_images_per_s": steps * batch / max(seconds, 1e-9),
                      "parameters": float(sum(p.numel() for p in self.model.parameters()))}

    @property
    def device(self) -> torch.device:
        return resolve_device(self.params["device"])

    def _unet_config(self, channels: int) -> dict[str, Any]:
        p = self.params
        levels = range(len(p["block_out_channels"]))
        attention = set(p["attention_levels"])
        return {
            "sample_size": p["resolution"], "in_channels": channels, "out_channels": channels,
            "block_out_channels": list(p["block_out_channels"]), "layers_per_block": p["layers_per_block"],
            "down_block_types": ["AttnDownBlock2D" if i in attention else "DownBlock2D" for i in levels],
            "up_block_types": ["AttnUpBlock2D" if i in attention else "UpBlock2D" for i in reversed(levels)],
            "attention_head_dim": p["attention_head_dim"] or None, "norm_num_groups": p["norm_num_groups"],
            "dropout": p["dropout"],
        }

    def _check_guidance(self, has_unlabeled: bool) -> None:
        if self.params["guidance_scale"] != 1.0 and self.params["p_uncond"] <= 0 and not has_unlabeled:
            raise ConfigError(
                f"generator '{self.name}': guidance_scale={self.params['guidance_scale']} needs a trained null "
                f"condition; set p_uncond > 0 (e.g. 0.1) or guidance_scale = 1.0"
            )

    def _training_pool(self, train: ImageSet, unlabeled: ImageSet | None) -> dict[str, torch.Tensor]:
        """Resized uint8 images, condition indices, null flags and sampler weights of all rows."""
        cond = self.encode(train.labels, train.attributes)
        weights = np.asarray(self.row_weights(train), dtype=np.float64)
        images, is_null = [train.images], np.zeros(len(train), dtype=bool)
        if unlabeled is not None and len(unlabeled):
            images.append(unlabeled.images)
            cond = np.concatenate([cond, np.zeros((len(unlabeled), cond.shape[1]), dtype=np.int64)])
            weights = np.concatenate([weights * len(train) / weights.sum(), np.ones(len(unlabeled))])
            is_null = np.concatenate([is_null, np.ones(len(unlabeled), dtype=bool)])
        size = (self.params["resolution"],) * 2
        return {
            "images": torch.cat([resize_uint8(torch.from_numpy(x), size) for x in images]),
            "cond": torch.from_numpy(cond), "is_null": torch.from_numpy(is_null),
            "weights": torch.from_numpy(weights),
        }

    def _train(self, model: ConditionedUNet, pool: dict[str, torch.Tensor], rng: torch.Generator) -> tuple[int, float]:
        p = self.params
        noise_scheduler = self._noise_scheduler()
        optimizer = self._optimizer(model)
        lr_schedule = get_scheduler(p["lr_schedule"], optimizer=optimizer, num_warmup_steps=p["warmup_steps"],
                                    num_training_steps=p["train_steps"])
        ema = EMAModel(model.parameters(), decay=p["ema_decay"], use_ema_warmup=p["ema_warmup"],
                       power=p["ema_power"], foreach=True)
        model.train()
        start, step = time.perf_counter(), 0
        while step < p["train_steps"] and not (p["max_seconds"] and time.perf_counter() - start > p["max_seconds"]):
            x0, noise, t, cond, is_null = self._draw_batch(pool, rng)
            x_t = noise_scheduler.add_noise(x0, noise, t)
            loss = self.diffusion_loss(model, x_t, t, noise, cond, is_null, rng)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), p["grad_clip"])
            optimizer.step()
            lr_schedule.step()
            ema.step(model.parameters())
            step += 1
        seconds = time.perf_counter() - start
        ema.copy_to(model.parameters())  # sampling and saving use the EMA weights
        model.eval()
        return step, seconds

    def _draw_batch(self, pool: dict[str, torch.Tensor], rng: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Images in [-1, 1], noise, timesteps, condition indices and null flags of one batch.

        Every draw comes from the seeded CPU generator, so a run repeats on any device."""
        p = self.params
        rows = torch.multinomial(pool["weights"], p["batch_size"], replacement=True, generator=rng)
        x0 = to_float(pool["images"][rows], (-1, 1))
        if p["hflip"]:
            flip = torch.rand(len(x0), generator=rng) < 0.5
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        noise = torch.randn(x0.shape, generator=rng)
        t = torch.randint(0, p["num_train_timesteps"], (len(rows),), generator=rng)
        is_null = pool["is_null"][rows] | (torch.rand(len(rows), generator=rng) < p["p_uncond"])
        return tuple(v.to(self.device) for v in (x0, noise, t, pool["cond"][rows], is_null))

    def _noise_scheduler(self) -> DDPMScheduler:
        p = self.params
        return DDPMScheduler(num_train_timesteps=p["num_train_timesteps"], beta_start=p["beta_start"],
                             beta_end=p["beta_end"], beta_schedule="linear", prediction_type="epsilon")

    def _optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        p = self.params
        kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
        if p["optimizer"] not in kinds:
            raise ConfigError(f"generator '{self.name}': optimizer must be one of {sorted(kinds)}, got '{p['optimizer']}'")
        return kinds[p["optimizer"]](model.parameters(), lr=p["lr"], betas=(p["adam_beta1"], 0.999),
                                     weight_decay=p["weight_decay"])

    # -- sampling ------------------------------------------------------------------------------
    def sample(self, labels: np.ndarray, attributes: dict[str, np.ndarray], seed: int) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"generator '{self.name}': call fit() or load() before sample()")
        labels = np.asarray(labels, dtype=np.int64)
        cond = torch.from_numpy(self.encode(labels, {k: np.asarray(v, dtype=np.int64) for k, v in attributes.items()}))
        rng = torch.Generator().manual_seed(seed)
        scheduler = DDIMScheduler.from_config(self._noise_scheduler().config)
        scheduler.set_timesteps(self.params["sample_steps"])
        batch = self.params["sample_batch_size"]
        start = time.perf_counter()
        with torch.inference_mode():
            batches = [self._sample_batch(cond[i:i + batch], scheduler, rng) for i in range(0, len(cond), batch)]
        images = torch.cat(batches) if batches else torch.zeros((0, *self.state["image_shape"]), dtype=torch.uint8)
        seconds = time.perf_counter() - start
        self.stats.update({"sample_images": float(len(images)), "sample_seconds": seconds,
                           "sample_images_per_s": len(images) / max(seconds, 1e-9)})
        return images.numpy()

    def _sample_batch(self, cond: torch.Tensor, scheduler: DDIMScheduler, rng: torch.Generator) -> torch.Tensor:
        unet = self.state["unet"]
        x = torch.randn((len(cond), unet["in_channels"], unet["sample_size"], unet["sample_size"]), generator=rng)
        x, cond = x.to(self.device), cond.to(self.device)
        for t in scheduler.timesteps:
            x = scheduler.step(self._guided_eps(x, t, cond), t, x, eta=self.params["sample_eta"], generator=rng).prev_sample
        _, height, width = self.state["image_shape"]
        return to_uint8(resize(x, (height, width)), (-1, 1)).cpu()

    def _guided_eps(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        s = self.params["guidance_scale"]
        n = len(x)
        if s == 1.0:
            return self.model(x, t, cond, torch.zeros(n, dtype=torch.bool, device=x.device))
        is_null = torch.arange(2 * n, device=x.device) >= n
        eps_cond, eps_null = self.model(torch.cat([x, x]), t, torch.cat([cond, cond]), is_null).chunk(2)
        return eps_null + s * (eps_cond - eps_null)

    # -- state -----------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        if self.model is None:
            raise RuntimeError(f"generator '{self.name}': nothing to save; call fit() first")
        directory = Path(directory)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}, str(directory / WEIGHTS_FILE))
        record = {"generator": self.name, "version": self.version, "params": self.params, **self.state}
        (directory / STATE_FILE).write_text(json.dumps(record, indent=1))

    def load(self, directory: Path) -> None:
        directory = Path(directory)
        record = json.loads((directory / STATE_FILE).read_text())
        if record["generator"] != self.name:
            raise ConfigError(f"{directory} holds a '{record['generator']}' generator, not '{self.name}'")
        self.state = {k: record[k] for k in ("label_names", "attribute_vocab", "factors", "unet", "image_shape")}
        factors = self.state["factors"]
        self.model = ConditionedUNet(self.state["unet"], [f["size"] for f in factors],
                                     [f.get("multi_hot", False) for f in factors])
        self.model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
        self.model.to(self.device).eval()


# -- helpers for subclasses and tests ------------------------------------------------------------
def unknown_to_index(codes: np.ndarray, vocab_size: int) -> np.ndarray:
    """Attribute codes with -1 (unknown) mapped to the extra index `vocab_size`."""
    codes = np.asarray(codes, dtype=np.int64)
    if codes.size and (codes.min() < -1 or codes.max() >= vocab_size):
        raise DataError(f"attribute codes must be -1 (unknown) or 0..{vocab_size - 1}, got {codes.min()}..{codes.max()}")
    return np.where(codes < 0, vocab_size, codes)


def check_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"requested class codes must be in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}")
    return labels


def check_multi_hot(labels: np.ndarray, num_labels: int) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim != 2 or labels.shape[1] != num_labels or not np.isin(labels, (0, 1)).all():
        raise DataError(f"requested labels must be multi-hot 0/1 rows with {num_labels} columns, got shape {labels.shape}")
    return labels


def resize_uint8(images: torch.Tensor, size: tuple[int, int], chunk: int = 1024) -> torch.Tensor:
    """Resize uint8 (N, C, H, W) images in chunks (bounded memory); returns uint8."""
    if tuple(images.shape[-2:]) == size:
        return images.clone()
    return torch.cat([to_uint8(resize(to_float(images[i:i + chunk], (-1, 1)), size), (-1, 1))
                      for i in range(0, len(images), chunk)])






#: Ho et al.'s CIFAR-10 UNet (35.7M parameters; also CBDM's) and schedule, in diffusers terms
HO_CIFAR_PAPER: dict[str, Any] = {
    "resolution": 32, "block_out_channels": [128, 256, 256, 256], "layers_per_block": 2,
    "attention_levels": [1], "attention_head_dim": 0, "norm_num_groups": 32, "dropout": 0.1,
    "batch_size": 128, "train_steps": 800_000, "optimizer": "adam", "lr": 2e-4, "adam_beta1": 0.9,
    "weight_decay": 0.0, "lr_schedule": "constant_with_warmup", "warmup_steps": 5000, "grad_clip": 1.0,
    "ema_decay": 0.9999, "ema_warmup": False, "hflip": True, "p_uncond": 0.1, "sample_batch_size": 256,
    "sample_eta": 0.0,  # DDIM as MeDi and Khosravi et al. sample
}
