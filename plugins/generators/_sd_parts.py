"""Parts of the Stable Diffusion generators (sd.py, fairgen.py): prompts and the tiny pipeline.

- PromptBook turns a (class, attribute codes) row into a text prompt with one template, e.g.
  FairGen's "{skin_tone} people {label}" -> "African people melanoma".
- The tiny pipeline (cpu configs; no diffusion weights exist offline) is built from configs: a
  character-level CLIP tokenizer whose vocab.json + merges.txt this module writes (a whole-word
  vocab with no merges maps every word to the unknown token, OFFLINE.md), a random frozen
  CLIPTextModel, a small AutoencoderKL trained here on the training images, and a small
  UNet2DConditionModel.
"""
from __future__ import annotations

import json
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from harness import ConfigError, DataError
from harness.plugin_tools import as_rgb, resize, to_float, to_uint8

#: FairGen's prompt templates; `words` map the harness vocabularies to the paper's wording
PRESETS: dict[str, dict[str, Any]] = {
    "skin": {"template": "{skin_tone} people {label}",
             "words": {"skin_tone": {"light": "Caucasian", "medium": "Asian", "dark": "African"}}},
    "chest": {"template": "{sex} {label}", "words": {"sex": {"M": "male", "F": "female"}}},
}
#: the tiny tokenizer's characters; anything else is the unknown token
CHARSET = string.ascii_lowercase + string.digits + "-'.,/()+"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


@dataclass
class PromptBook:
    """One template over a dataset's vocabularies: rows of codes -> prompts."""

    template: str
    words: dict[str, dict[str, str]]
    label_names: list[str]
    attribute_vocab: dict[str, list[str]]
    fields: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.fields = [name for _, name, _, _ in string.Formatter().parse(self.template) if name]
        unknown = [f for f in self.fields if f != "label" and f not in self.attribute_vocab]
        if unknown or "label" not in self.fields:
            raise ConfigError(f"prompt_template '{self.template}' must use {{label}} and only attributes of the "
                              f"training set {sorted(self.attribute_vocab)}; unknown fields: {unknown}")

    @classmethod
    def for_dataset(cls, template: str, words: dict[str, dict[str, str]], label_names: list[str],
                    attribute_vocab: dict[str, list[str]]) -> "PromptBook":
        """`template` "auto" picks FairGen's preset whose attributes the data has (skin, chest),
        else "{attr1} ... {label}" over every attribute. `words` override the preset's wording."""
        chosen: dict[str, Any] = {"template": template, "words": {}}
        if template == "auto":
            matching = [p for p in PRESETS.values() if set(_fields(p["template"])) - {"label"} <= set(attribute_vocab)]
            generic = " ".join(f"{{{name}}}" for name in attribute_vocab) + " {label}"
            chosen = matching[0] if matching else {"template": generic.strip(), "words": {}}
        merged = {attr: dict(mapping) for attr, mapping in chosen["words"].items()}
        for attr, mapping in words.items():
            merged.setdefault(attr, {}).update(mapping)
        return cls(chosen["template"], merged, list(label_names), {k: list(v) for k, v in attribute_vocab.items()})

    def prompts(self, labels: np.ndarray, attributes: dict[str, np.ndarray]) -> list[str]:
        """One prompt per row; an unknown attribute (-1) is left out of the sentence."""
        columns = {"label": [self._word("label", self.label_names, code) for code in labels]}
        for name in self.fields:
            if name != "label":
                if name not in attributes:
                    raise DataError(f"prompts need attribute '{name}' (template '{self.template}')")
                columns[name] = [self._word(name, self.attribute_vocab[name], code) for code in attributes[name]]
        rows = [self.template.format(**{k: v[i] for k, v in columns.items()}) for i in range(len(labels))]
        return [" ".join(row.split()) for row in rows]

    def _word(self, name: str, vocab: list[str], code: int) -> str:
        if code < 0:
            return ""
        value = vocab[int(code)]
        return self.words.get(name, {}).get(value, value.replace("_", " "))

    def to_json(self) -> dict[str, Any]:
        return {"template": self.template, "words": self.words, "label_names": self.label_names,
                "attribute_vocab": self.attribute_vocab}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PromptBook":
        return cls(data["template"], data["words"], data["label_names"], data["attribute_vocab"])


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


# -- tokenizer and text encoder ---------------------------------------------------------------
def write_char_tokenizer(directory: Path, max_length: int) -> CLIPTokenizer:
    """Write a character-level CLIP BPE vocabulary (chars, chars + "</w>", two specials) with an
    empty merges list into `directory`, and load it."""
    tokens = [BOS, EOS] + list(CHARSET) + [c + "</w>" for c in CHARSET]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer.from_pretrained(directory, model_max_length=max_length)


def token_ids(tokenizer: CLIPTokenizer, prompts: list[str]) -> torch.Tensor:
    return tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


def check_distinct_ids(tokenizer: CLIPTokenizer, prompts: list[str]) -> None:
    """Distinct prompts must give distinct token ids, else conditioning silently collapses."""
    unique = sorted(set(prompts))
    seen: dict[tuple, str] = {}
    for prompt, ids in zip(unique, token_ids(tokenizer, unique).tolist()):
        if tuple(ids) in seen:
            raise ConfigError(f"prompts '{seen[tuple(ids)]}' and '{prompt}' give the same token ids: the tokenizer "
                              "truncates or does not know their words; raise tiny_max_prompt_chars or change "
                              "prompt_words")
        seen[tuple(ids)] = prompt


def tiny_text_encoder(vocab_size: int, max_length: int, width: int, layers: int) -> CLIPTextModel:
    config = CLIPTextConfig(vocab_size=vocab_size, hidden_size=width, intermediate_size=2 * width,
                            num_hidden_layers=layers, num_attention_heads=2, max_position_embeddings=max_length,
                            bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return CLIPTextModel(config).requires_grad_(False).eval()


@torch.no_grad()
def encode_prompts(tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, prompts: list[str],
                   device: torch.device) -> torch.Tensor:
    """(len(prompts), tokens, width) last hidden states, as StableDiffusionPipeline uses them."""
    ids = token_ids(tokenizer, prompts).to(device)
    return text_encoder(ids)[0].float()


# -- tiny VAE and UNet --------------------------------------------------------------------------
def tiny_vae(channels: list[int], resolution: int) -> AutoencoderKL:
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=tuple(channels),
                         down_block_types=("DownEncoderBlock2D",) * len(channels),
                         up_block_types=("UpDecoderBlock2D",) * len(channels), layers_per_block=1,
                         norm_num_groups=min(16, channels[0]), sample_size=resolution, mid_block_add_attention=False)


def tiny_unet(channels: list[int], latent_size: int, cross_attention_dim: int) -> UNet2DConditionModel:
    """Cross-attention on every level but the first (the full-resolution level is the costliest),
    plus the attention-pooled prompt added to the timestep embedding (diffusers' "text" addition
    embedding), which reaches every resnet block: with cross-attention alone at 4 x 4 the tiny
    model learnt the tone word but barely the class word within the cpu budget."""
    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (len(channels) - 1)
    up = ("CrossAttnUpBlock2D",) * (len(channels) - 1) + ("UpBlock2D",)
    return UNet2DConditionModel(sample_size=latent_size, in_channels=4, out_channels=4,
                                block_out_channels=tuple(channels), down_block_types=down, up_block_types=up,
                                layers_per_block=1, cross_attention_dim=cross_attention_dim, attention_head_dim=8,
                                norm_num_groups=8, addition_embed_type="text",
                                addition_embed_type_num_heads=max(1, cross_attention_dim // 8))


def sd_noise_scheduler() -> DDPMScheduler:
    """Stable Diffusion v1's training schedule (scaled-linear betas 0.00085..0.012, epsilon)."""
    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, steps_offset=1, prediction_type="epsilon")


def train_vae(vae: AutoencoderKL, pixels: torch.Tensor, steps: int, batch_size: int, lr: float, kl_weight: float,
              generator: torch.Generator) -> dict[str, float]:
    """Fit the VAE to the training images (a random VAE does not reconstruct), set its latent
    scaling factor to 1/std of the latents as SD does, and report the reconstruction error next
    to the error of predicting the mean image (ratio << 1 means it reconstructs)."""
    started = time.perf_counter()
    device = next(vae.parameters()).device
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps))
    vae.train()
    for _ in range(steps):
        rows = torch.randint(0, len(pixels), (batch_size,), generator=generator)
        x = pixels[rows].to(device)
        posterior = vae.encode(x).latent_dist
        loss = F.mse_loss(vae.decode(posterior.sample()).sample, x) + kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    vae.eval().requires_grad_(False)
    recon_mse, latent_std = _vae_quality(vae, pixels)
    vae.register_to_config(scaling_factor=float(1.0 / latent_std))
    baseline = float(((pixels - pixels.mean(0, keepdim=True)) ** 2).mean())
    return {"vae_seconds": time.perf_counter() - started, "vae_recon_mse": recon_mse,
            "vae_recon_ratio": recon_mse / max(baseline, 1e-12), "vae_images_per_s": steps * batch_size /
            max(time.perf_counter() - started, 1e-9)}


@torch.no_grad()
def _vae_quality(vae: AutoencoderKL, pixels: torch.Tensor, chunk: int = 512) -> tuple[float, float]:
    device = next(vae.parameters()).device
    errors, latents = [], []
    for start in range(0, len(pixels), chunk):
        x = pixels[start:start + chunk].to(device)
        posterior = vae.encode(x).latent_dist
        errors.append(((vae.decode(posterior.mode()).sample - x) ** 2).flatten(1).mean(1).cpu())
        latents.append(posterior.mode().cpu())
    return float(torch.cat(errors).mean()), float(torch.cat(latents).std())


def check_vae(stats: dict[str, float], limit: float = 0.25) -> None:
    if stats["vae_recon_ratio"] > limit:
        raise RuntimeError(f"the tiny VAE did not learn to reconstruct the training images (error {stats['vae_recon_mse']:.4f}"
                           f" = {stats['vae_recon_ratio']:.2f} x the mean-image error, limit {limit}); raise vae_steps "
                           "or vae_lr")


# -- pixels ---------------------------------------------------------------------------------------
def to_model_pixels(images: np.ndarray, resolution: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float (N, 3, R, R) in [-1, 1]; grayscale is repeated to RGB."""
    return resize(as_rgb(to_float(images, (-1, 1))), resolution).clamp(-1, 1)


def to_uint8_images(x: torch.Tensor, shape: tuple[int, int, int]) -> np.ndarray:
    """float (N, 3, R, R) in [0, 1] -> uint8 (N, C, H, W) of the training shape."""
    channels, height, width = shape
    x = resize(x.float().cpu(), (height, width))
    if channels == 1:
        x = x.mean(1, keepdim=True)
    return to_uint8(x).numpy()
