"""A tiny StableDiffusionPipeline on disk, standing in for a released SD checkpoint in tests."""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline

from plugins.generators._sd_parts import sd_noise_scheduler, tiny_text_encoder, tiny_unet, tiny_vae, write_char_tokenizer


def save_tiny_sd_checkpoint(directory: Path) -> Path:
    """Save a seeded tiny pipeline with save_pretrained (safetensors) and return its folder."""
    torch.manual_seed(0)
    tokenizer = write_char_tokenizer(directory / "chars", 48)
    pipe = StableDiffusionPipeline(vae=tiny_vae([16, 32], 16), text_encoder=tiny_text_encoder(len(tokenizer), 48, 32, 2),
                                   tokenizer=tokenizer, unet=tiny_unet([32, 64], 8, 32), scheduler=sd_noise_scheduler(),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(directory / "sd", safe_serialization=True)
    return directory / "sd"
