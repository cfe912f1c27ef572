"""Stable Diffusion fine-tuning ("sd"): FairGen's SD baseline as a generator plugin.

A diffusers StableDiffusionPipeline (AutoencoderKL, CLIP text encoder + tokenizer,
UNet2DConditionModel) is fine-tuned with the epsilon-MSE loss on prompts built from each
training image's class and attributes (FairGen's templates, e.g. "African people melanoma"),
with the VAE and text encoder frozen and either the whole UNet or LoRA adapters on it trained.
Samples come from the pipeline with classifier-free guidance and are resized to the training
images' shape. `paper` loads SD v1-4 (local path or hub id) with FairGen's hyperparameters;
`cpu` (the default) builds a tiny pipeline from configs (_sd_parts.py) and runs the same code.

FairGen and its ablations (fairgen.py) subclass this class and change only `draw_rows` (the
batch sampler), `training_loss` and `on_step`.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, PNDMScheduler, StableDiffusionPipeline
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from diffusers.utils import convert_state_dict_to_diffusers
from diffusers.utils import logging as diffusers_logging

from harness import ConfigError, DataError, Generator, ImageSet, hookimpl
from harness.plugin_tools import resolve_device
from plugins.generators._sd_parts import (PromptBook, check_distinct_ids, check_vae, encode_prompts,
                                          sd_noise_scheduler, tiny_text_encoder, tiny_unet, tiny_vae,
                                          to_model_pixels, to_uint8_images, train_vae, write_char_tokenizer)

# the harness draws its own progress bar; diffusers' per-pipeline bars would flood the terminal
diffusers_logging.disable_progress_bar()

#: sampling schedulers with Stable Diffusion's settings for them
SAMPLERS = {"ddim": (DDIMScheduler, {"set_alpha_to_one": False}), "pndm": (PNDMScheduler, {"skip_prk_steps": True})}
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
STATE_FILE = "state.json"
LOG_EVERY = 100
log = logging.getLogger(__name__)

#: FairGen's SD fine-tuning (train_text_to_image*.py as released, METHODS.md)
PAPER = {
    "pretrained": "CompVis/stable-diffusion-v1-4", "resolution": 512, "train_steps": 15000, "batch_size": 8,
    "grad_accum": 4, "lr": 1e-5, "lr_schedule": "cosine", "lr_warmup_steps": 500, "ema_decay": 0.9999,
    "precision": "fp16", "grad_checkpointing": True, "caption_dropout": 0.0, "sample_steps": 50,
    "guidance_scale": 7.5, "sampler": "pndm", "sample_batch": 16,
}


@dataclass
class TrainingData:
    """The training split in latent space: cached posterior mean/std (frozen VAE), each row's
    prompt index, and every distinct prompt's text embedding ("" = the null prompt)."""

    latent_mean: torch.Tensor  # (N, 4, h, w), already times the VAE scaling factor
    latent_std: torch.Tensor
    prompt_index: torch.Tensor  # (N,) int64
    prompts: list[str]
    embeddings: torch.Tensor  # (P, tokens, width) on the device
    null_embedding: torch.Tensor  # (1, tokens, width)

    @property
    def null_prompt(self) -> torch.Tensor:
        return torch.tensor([p == "" for p in self.prompts])


@dataclass
class Batch:
    rows: torch.Tensor
    latents: torch.Tensor
    noise: torch.Tensor
    timesteps: torch.Tensor
    noisy: torch.Tensor
    cond: torch.Tensor
    prompt_index: torch.Tensor
    is_null: torch.Tensor  # caption dropped or unlabeled: no prompt


class StableDiffusionFinetune(Generator):
    name = "sd"
    version = "1"
    defaults = {
        "pretrained": "",  # SD checkpoint: local dir or hub id; "" builds the tiny pipeline from configs
        "prompt_template": "auto",  # FairGen's template for the data's attributes; e.g. "{sex} {label}"
        "prompt_words": {},  # {attribute: {vocab value: word}}, overrides the preset's wording
        "resolution": 16,
        "lora_rank": 0,  # 0 fine-tunes the whole UNet; r > 0 trains LoRA (to_q/to_k/to_v/to_out.0)
        "train_steps": 1000,  # optimizer steps: a fixed budget, so runs are deterministic
        "batch_size": 32,
        "grad_accum": 1,
        "lr": 1e-3,
        "lr_schedule": "cosine",
        "lr_warmup_steps": 50,
        "weight_decay": 1e-2,
        "max_grad_norm": 1.0,
        "ema_decay": 0.995,  # 0 = no EMA
        "caption_dropout": 0.1,  # a tiny UNet trained from scratch needs it for guidance; SD already has it
        "precision": "fp32",
        "grad_checkpointing": False,
        "sample_steps": 25,
        "guidance_scale": 6.0,  # measured on derm: 6 follows prompts better than 3 (docs/generators_sd.md)
        "sampler": "ddim",
        "sample_batch": 250,
        "device": "auto",
        # the tiny pipeline (pretrained == "")
        "tiny_text_width": 32,
        "tiny_text_layers": 2,
        "tiny_max_prompt_chars": 48,
        "tiny_vae_channels": [16, 32],
        "tiny_unet_channels": [32, 64],
        "vae_steps": 400,
        "vae_batch_size": 32,
        "vae_lr": 2e-3,
        "vae_kl_weight": 1e-6,
    }
    configs: ClassVar[dict[str, dict[str, Any]]] = {"cpu": {}, "paper": PAPER}
    limit_params: ClassVar[dict[str, Any]] = {"train_steps": 2, "sample_steps": 2}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._check_params()
        self.stats: dict[str, float] = {}
        self.pipe: StableDiffusionPipeline | None = None
        self._base_unet = None  # LoRA: the UNet before adapters were added, saved as the base

    def _check_params(self) -> None:
        p = self.params
        if p["sampler"] not in SAMPLERS:
            raise ConfigError(f"generator '{self.name}': sampler must be one of {sorted(SAMPLERS)}, got '{p['sampler']}'")
        if p["precision"] not in ("fp32", "fp16", "bf16"):
            raise ConfigError(f"generator '{self.name}': precision must be fp32, fp16 or bf16, got '{p['precision']}'")
        if p["resolution"] % 8:
            raise ConfigError(f"generator '{self.name}': resolution must be a multiple of 8, got {p['resolution']}")

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, train: ImageSet, seed: int, unlabeled: ImageSet | None = None) -> None:
        if train.multilabel:
            raise DataError(f"generator '{self.name}' needs single-label training data (one class per image)")
        started = time.perf_counter()
        torch.manual_seed(seed)
        self.device = resolve_device(self.params["device"])
        self.image_shape = train.image_shape
        self.prompt_book = PromptBook.for_dataset(self.params["prompt_template"], self.params["prompt_words"],
                                                  train.label_names, train.attribute_vocab)
        pixels = to_model_pixels(train.images, self.params["resolution"])
        prompts = self.prompt_book.prompts(train.labels, train.attributes)
        if unlabeled is not None and len(unlabeled):  # no condition: the null prompt (Ktena et al.)
            pixels = torch.cat([pixels, to_model_pixels(unlabeled.images, self.params["resolution"])])
            prompts += [""] * len(unlabeled)
        self.pipe = self._build_pipeline(pixels, seed)
        check_distinct_ids(self.pipe.tokenizer, prompts)
        self._prepare_unet()
        data = self._training_data(pixels, prompts)
        self.prepare_training(train, data, seed)
        self._finetune(data, seed)
        self.stats["fit_seconds"] = time.perf_counter() - started

    def prepare_training(self, train: ImageSet, data: TrainingData, seed: int) -> None:
        """Hook for subclasses, called once before the first step."""

    def _build_pipeline(self, pixels: torch.Tensor, seed: int) -> StableDiffusionPipeline:
        if self.params["pretrained"]:
            pipe = load_pretrained(self.params["pretrained"])
        else:
            pipe = self._build_tiny_pipeline(pixels, seed)
        pipe.to(self.device)
        if self.device.type == "cuda" and self.params["precision"] != "fp32":  # frozen parts, as released
            dtype = torch.float16 if self.params["precision"] == "fp16" else torch.bfloat16
            pipe.vae.to(dtype=dtype)
            pipe.text_encoder.to(dtype=dtype)
        pipe.vae.requires_grad_(False)
        pipe.text_encoder.requires_grad_(False)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def _build_tiny_pipeline(self, pixels: torch.Tensor, seed: int) -> StableDiffusionPipeline:
        p = self.params
        with tempfile.TemporaryDirectory(prefix="sd-tokenizer-") as scratch:
            tokenizer = write_char_tokenizer(Path(scratch), p["tiny_max_prompt_chars"])
        text_encoder = tiny_text_encoder(len(tokenizer), p["tiny_max_prompt_chars"], p["tiny_text_width"],
                                         p["tiny_text_layers"])
        vae = tiny_vae(p["tiny_vae_channels"], p["resolution"]).to(self.device)
        generator = torch.Generator().manual_seed(seed)
        self.stats.update(train_vae(vae, pixels, p["vae_steps"], p["vae_batch_size"], p["vae_lr"],
                                    p["vae_kl_weight"], generator))
        log.info("tiny VAE: reconstruction error %.4f (%.2f x the mean-image error) after %.0f s",
                 self.stats["vae_recon_mse"], self.stats["vae_recon_ratio"], self.stats["vae_seconds"])
        check_vae(self.stats)
        latent_size = p["resolution"] // 2 ** (len(p["tiny_vae_channels"]) - 1)
        unet = tiny_unet(p["tiny_unet_channels"], latent_size, p["tiny_text_width"])
        return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=sd_noise_scheduler(), safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)

    def _prepare_unet(self) -> None:
        unet = self.pipe.unet
        if self.params["lora_rank"] > 0:
            from peft import LoraConfig

            self._base_unet = copy.deepcopy(unet).to("cpu")  # saved as the base, before adapters exist
            unet.requires_grad_(False)
            rank = self.params["lora_rank"]
            unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                        target_modules=LORA_TARGETS))
        else:
            unet.requires_grad_(True)
        if self.params["grad_checkpointing"]:
            unet.enable_gradient_checkpointing()

    @torch.no_grad()
    def _training_data(self, pixels: torch.Tensor, prompts: list[str]) -> TrainingData:
        """Encode every image once: with a frozen VAE and no augmentation, drawing from the
        cached posterior each step is the same as the released scripts' per-step encoding."""
        vae, scale = self.pipe.vae, self.pipe.vae.config.scaling_factor
        means, stds = [], []
        for start in range(0, len(pixels), 256):
            posterior = vae.encode(pixels[start:start + 256].to(self.device, vae.dtype)).latent_dist
            means.append((posterior.mean * scale).float().cpu())
            stds.append((posterior.std * scale).float().cpu())
        unique = sorted(set(prompts))
        index = {prompt: i for i, prompt in enumerate(unique)}
        return TrainingData(torch.cat(means), torch.cat(stds), torch.tensor([index[p] for p in prompts]), unique,
                            self.encode(unique), self.encode([""]))

    def encode(self, prompts: list[str]) -> torch.Tensor:
        return encode_prompts(self.pipe.tokenizer, self.pipe.text_encoder, prompts, self.device)

    def _finetune(self, data: TrainingData, seed: int) -> None:
        p, unet = self.params, self.pipe.unet
        self.noise_scheduler = DDPMScheduler.from_config(self.pipe.scheduler.config)
        trainable = self.trainable_parameters()
        optimizer = torch.optim.AdamW(trainable, lr=p["lr"], weight_decay=p["weight_decay"])
        schedule = get_scheduler(p["lr_schedule"], optimizer, num_warmup_steps=p["lr_warmup_steps"],
                                 num_training_steps=p["train_steps"])
        ema = EMAModel(trainable, decay=p["ema_decay"]) if p["ema_decay"] > 0 else None
        scaler = torch.amp.GradScaler("cuda", enabled=self._autocast_dtype() is torch.float16)
        generator = torch.Generator().manual_seed(seed)
        self._order: list[int] = []
        unet.train()
        started = time.perf_counter()
        for step in range(p["train_steps"]):
            self.on_step(step, data, generator)
            for _ in range(p["grad_accum"]):
                batch = self.make_batch(data, self.draw_rows(data, generator, p["batch_size"]), generator)
                with self._autocast():
                    loss = sum(self.training_loss(batch, data, generator).values()) / p["grad_accum"]
                scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(trainable, p["max_grad_norm"])
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.step(trainable)
            if step % LOG_EVERY == 0:
                log.info("%s step %d/%d loss %.4f (%.0f s)", self.name, step, p["train_steps"],
                         loss.item() * p["grad_accum"], time.perf_counter() - started)
        if ema is not None:
            ema.copy_to(trainable)
        unet.eval()
        seconds = time.perf_counter() - started
        images = p["train_steps"] * p["grad_accum"] * p["batch_size"]
        self.stats.update(unet_seconds=seconds, train_images_per_s=images / max(seconds, 1e-9),
                          train_steps=float(p["train_steps"]), lora=float(p["lora_rank"] > 0))

    # -- hooks a FairGen variant overrides ----------------------------------------------------------
    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """What the optimizer, EMA and clipping act on: the UNet's (or its adapters') trainable
        parameters; a subclass may add its own (skin-diff's token vectors)."""
        return [param for param in self.pipe.unet.parameters() if param.requires_grad]

    def draw_rows(self, data: TrainingData, generator: torch.Generator, n: int) -> torch.Tensor:
        """Shuffled epochs, as the released train_text_to_image.py's DataLoader(shuffle=True)."""
        rows = []
        while len(rows) < n:
            if not self._order:
                self._order = torch.randperm(len(data.prompt_index), generator=generator).tolist()
            rows.append(self._order.pop())
        return torch.tensor(rows)

    def on_step(self, step: int, data: TrainingData, generator: torch.Generator) -> None:
        """Hook called before each optimizer step."""

    def training_loss(self, batch: Batch, data: TrainingData, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"mse": F.mse_loss(self.predict_noise(batch.noisy, batch.timesteps, batch.cond), batch.noise)}

    # -- shared pieces of a training step ------------------------------------------------------------
    def make_batch(self, data: TrainingData, rows: torch.Tensor, generator: torch.Generator) -> Batch:
        mean, std = data.latent_mean[rows], data.latent_std[rows]
        latents = mean + std * torch.randn(mean.shape, generator=generator)
        noise = torch.randn(mean.shape, generator=generator)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (len(rows),), generator=generator)
        dropped = torch.rand(len(rows), generator=generator) < self.params["caption_dropout"]
        prompt_index = data.prompt_index[rows]
        is_null = dropped | data.null_prompt[prompt_index]
        cond = torch.where(dropped.to(self.device)[:, None, None], data.null_embedding,
                           data.embeddings[prompt_index.to(self.device)])
        latents, noise, timesteps = latents.to(self.device), noise.to(self.device), timesteps.to(self.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        return Batch(rows, latents, noise, timesteps, noisy, cond, prompt_index, is_null.to(self.device))

    def predict_noise(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.pipe.unet(noisy, timesteps, cond).sample.float()

    def _autocast_dtype(self) -> torch.dtype | None:
        if self.device.type != "cuda" or self.params["precision"] == "fp32":
            return None
        return torch.float16 if self.params["precision"] == "fp16" else torch.bfloat16

    def _autocast(self):
        dtype = self._autocast_dtype()
        return torch.autocast("cuda", dtype=dtype) if dtype else torch.autocast("cpu", enabled=False)

    # -- sampling ------------------------------------------------------------------------------------
    def sample(self, labels: np.ndarray, attributes: dict[str, np.ndarray], seed: int) -> np.ndarray:
        if self.pipe is None:
            raise RuntimeError(f"generator '{self.name}': call fit() or load() before sample()")
        started = time.perf_counter()
        images = to_uint8_images(self.generate(self.prompt_book.prompts(labels, attributes), seed), self.image_shape)
        self.stats["sample_images_per_s"] = len(images) / max(time.perf_counter() - started, 1e-9)
        return images

    @torch.no_grad()
    def generate(self, prompts: list[str], seed: int) -> torch.Tensor:
        """Float images (N, 3, R, R) in [0, 1] for the prompts, guided with the empty prompt."""
        p, pipe = self.params, self._sampling_pipeline()
        unique, inverse = np.unique(np.asarray(prompts, dtype=object).astype(str), return_inverse=True)
        embeddings, null = self.encode(list(unique)), self.encode([""])
        dtype = pipe.text_encoder.dtype
        generator = torch.Generator().manual_seed(seed)
        size = p["resolution"] // pipe.vae_scale_factor
        out = []
        for start in range(0, len(prompts), p["sample_batch"]):
            chunk = torch.from_numpy(inverse[start:start + p["sample_batch"]].reshape(-1)).to(self.device)
            latents = torch.randn((len(chunk), pipe.unet.config.in_channels, size, size), generator=generator)
            with self._autocast():
                images = pipe(prompt_embeds=embeddings[chunk].to(dtype),
                              negative_prompt_embeds=null.expand(len(chunk), -1, -1).to(dtype),
                              height=p["resolution"], width=p["resolution"], num_inference_steps=p["sample_steps"],
                              guidance_scale=p["guidance_scale"], latents=latents.to(self.device, dtype),
                              output_type="pt").images
            out.append(images.float().cpu())
        return torch.cat(out) if out else torch.zeros(0, 3, p["resolution"], p["resolution"])

    def _sampling_pipeline(self) -> StableDiffusionPipeline:
        scheduler_class, settings = SAMPLERS[self.params["sampler"]]
        scheduler = scheduler_class.from_config(self.pipe.scheduler.config, **settings)
        pipe = StableDiffusionPipeline(vae=self.pipe.vae, text_encoder=self.pipe.text_encoder,
                                       tokenizer=self.pipe.tokenizer, unet=self.pipe.unet, scheduler=scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    # -- state ---------------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Full fine-tuning: the pipeline (safetensors + JSON configs + tokenizer text files).
        LoRA: the base pipeline as it was before adapters were added, plus the adapters saved
        with diffusers' LoRA helper (saving the adapted UNet instead would store wrapped keys
        that a plain UNet silently ignores, re-initialising attention)."""
        if self.pipe is None:
            raise RuntimeError(f"generator '{self.name}': nothing to save; call fit() first")
        directory = Path(directory)
        if self._base_unet is None:
            self.pipe.save_pretrained(directory / "pipeline", safe_serialization=True)
        else:
            from peft.utils import get_peft_model_state_dict

            base = StableDiffusionPipeline(**{**self.pipe.components, "unet": self._base_unet},
                                           requires_safety_checker=False)
            base.save_pretrained(directory / "base", safe_serialization=True)
            layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(self.pipe.unet))
            StableDiffusionPipeline.save_lora_weights(directory / "lora", unet_lora_layers=layers,
                                                      safe_serialization=True)
        state = {"name": self.name, "version": self.version, "params": self.params,
                 "prompts": self.prompt_book.to_json(), "image_shape": list(self.image_shape),
                 "lora": self._base_unet is not None, "stats": self.stats, **self.extra_state()}
        (directory / STATE_FILE).write_text(json.dumps(state, indent=1))

    def load(self, directory: Path) -> None:
        directory = Path(directory)
        state = json.loads((directory / STATE_FILE).read_text())
        self.device = resolve_device(self.params["device"])
        self.prompt_book = PromptBook.from_json(state["prompts"])
        self.params["resolution"] = state["params"]["resolution"]  # the model's size; sampling settings stay ours
        self.image_shape = tuple(state["image_shape"])
        self.stats = dict(state["stats"])
        if state["lora"]:
            self.pipe = _from_pretrained(directory / "base", local_files_only=True)
            self._base_unet = copy.deepcopy(self.pipe.unet)
            self.pipe.load_lora_weights(directory / "lora", weight_name="pytorch_lora_weights.safetensors")
            if not getattr(self.pipe.unet, "peft_config", None):
                raise RuntimeError(f"{directory / 'lora'}: no LoRA adapters were loaded into the UNet")
        else:
            self.pipe = _from_pretrained(directory / "pipeline", local_files_only=True)
        self.pipe.to(self.device)
        self.pipe.unet.eval()
        self.pipe.set_progress_bar_config(disable=True)
        self.load_extra_state(state)

    def extra_state(self) -> dict[str, Any]:
        """JSON a subclass adds to state.json."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Read back what extra_state() wrote."""


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().upper() in {"1", "ON", "YES", "TRUE"}


def load_pretrained(name_or_path: str) -> StableDiffusionPipeline:
    """An SD checkpoint from a local directory, or a hub id (only from the local hub cache when
    HF_HUB_OFFLINE=1); the error says how to get the weights."""
    local = Path(name_or_path).is_dir()
    try:
        return _from_pretrained(name_or_path, local_files_only=local or hub_offline())
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"cannot load Stable Diffusion weights '{name_or_path}' ({error.__class__.__name__}: {error}). Give a local "
            "checkpoint directory (pretrained=/path/to/stable-diffusion-v1-4, e.g. from `huggingface-cli download "
            "CompVis/stable-diffusion-v1-4` where a hub is reachable) or unset HF_HUB_OFFLINE") from error


def _from_pretrained(name_or_path: str | Path, local_files_only: bool) -> StableDiffusionPipeline:
    return StableDiffusionPipeline.from_pretrained(name_or_path, local_files_only=local_files_only,
                                                   safety_checker=None, requires_safety_checker=False)


@hookimpl
def harness_generators() -> list[type]:
    return [StableDiffusionFinetune]
