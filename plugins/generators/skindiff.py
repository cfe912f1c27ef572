"""skin-diff ("From Majority to Minority", Wang et al.): textual inversion + LoRA, then img2img.

Training, on the SD fine-tuning code of "sd" (sd.py): one new token per class ("<melanoma>"),
its embedding initialised from a generic word ("skin"; the mean of its token embeddings when the
tokenizer splits it), learned jointly with LoRA adapters (r=8 on to_q/to_k/to_v/to_out.0) on the
prompts "An image of <class> on the skin of {tone} individual". Only the new tokens' vectors
move; the rest of the text encoder stays frozen.

Sampling: img2img (diffusers StableDiffusionImg2ImgPipeline built from the same components) from
real training images of the requested class, with the requested tone in the prompt. Sources come
from the attribute's majority group (`source_group = "majority"`), so light-skin lesions are
retargeted to the requested darker tones; every source gives `images_per_source` images.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
from safetensors.numpy import load_file, save_file
from torch.func import functional_call

from harness import ConfigError, DataError, ImageSet, hookimpl
from plugins.generators._sd_parts import to_model_pixels, to_uint8_images, token_ids
from plugins.generators.sd import PAPER, SAMPLERS, Batch, StableDiffusionFinetune, TrainingData

SOURCE_GROUPS = ("majority", "same", "any")
SOURCES_FILE = "sources.safetensors"

#: skin-diff's settings (METHODS.md): SD 2.1-base, LoRA r=8, img2img strength 0.5, guidance 2, 5 per source
PAPER_SKINDIFF = {**PAPER, "pretrained": "stabilityai/stable-diffusion-2-1-base", "lora_rank": 8, "lr": 1e-4,
                  "strength": 0.5, "guidance_scale": 2.0, "images_per_source": 5}


def class_token(label_name: str) -> str:
    return "<" + "-".join(label_name.lower().split()) + ">"


def pick_sources(source_labels: np.ndarray, source_groups: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                 mode: str, images_per_source: int, rng: np.random.Generator) -> np.ndarray:
    """A source row for every requested (class, group) row. The pool is the class's training
    rows in the attribute's majority group ("majority"), in the requested group ("same") or in
    any group ("any"), falling back to the class's rows, then to every row. Each drawn source
    serves `images_per_source` consecutive requests of its cell."""
    known = source_groups[source_groups >= 0]
    majority = int(np.bincount(known).argmax()) if len(known) else -1
    out = np.empty(len(labels), dtype=np.int64)
    for y, g in sorted({(int(a), int(b)) for a, b in zip(labels, groups)}):
        wanted = np.flatnonzero((labels == y) & (groups == g))
        of_class = source_labels == y
        preferred = {"majority": of_class & (source_groups == majority), "same": of_class & (source_groups == g),
                     "any": of_class}[mode]
        pool = next(np.flatnonzero(m) for m in (preferred, of_class, np.ones_like(of_class)) if m.any())
        n_sources = math.ceil(len(wanted) / images_per_source)
        chosen = rng.choice(pool, n_sources, replace=n_sources > len(pool))
        out[wanted] = np.repeat(chosen, images_per_source)[:len(wanted)]
    return out


class SkinDiff(StableDiffusionFinetune):
    name = "skindiff"
    version = "1"
    defaults = {
        **StableDiffusionFinetune.defaults,
        "prompt_template": "An image of {label} on the skin of {skin_tone} individual",  # {label} = the class token
        "attribute": "skin_tone",  # the attribute that img2img retargets
        "token_init": "skin",
        # cpu values (the defaults, as in sd): the tiny UNet starts from random weights, so it is trained
        # whole (LoRA alone cannot learn images from scratch); at 16 px img2img keeps the source's skin
        # colour up to strength 0.75, so retargeting needs 0.9 (docs/generators_later.md, measured)
        "lora_rank": 0,
        "strength": 0.9,
        "guidance_scale": 4.0,
        "images_per_source": 5,
        "source_group": "majority",  # majority | same | any: which training images of the class are sources
    }
    configs: ClassVar[dict[str, dict[str, Any]]] = {"cpu": {}, "paper": PAPER_SKINDIFF}

    def _check_params(self) -> None:
        super()._check_params()
        p = self.params
        if p["source_group"] not in SOURCE_GROUPS:
            raise ConfigError(f"generator '{self.name}': source_group must be one of {list(SOURCE_GROUPS)}, "
                              f"got '{p['source_group']}'")
        if not 0 < p["strength"] <= 1 or p["images_per_source"] < 1:
            raise ConfigError(f"generator '{self.name}': strength must be in (0, 1] and images_per_source >= 1")

    # -- fit -------------------------------------------------------------------------------------
    def fit(self, train: ImageSet, seed: int, unlabeled: ImageSet | None = None) -> None:
        if self.params["attribute"] not in train.attributes:
            raise DataError(f"generator '{self.name}': attribute '{self.params['attribute']}' is not in the training "
                            f"set {sorted(train.attributes)}; set attribute (and prompt_template) to one of them")
        self.class_tokens = [class_token(name) for name in train.label_names]
        if len(set(self.class_tokens)) != len(self.class_tokens):
            raise DataError(f"generator '{self.name}': class names {train.label_names} give clashing tokens")
        self.params["prompt_words"] = {**self.params["prompt_words"],
                                       "label": dict(zip(train.label_names, self.class_tokens))}
        self.sources = {"images": train.images, "labels": train.labels,
                        "groups": train.attributes[self.params["attribute"]]}
        super().fit(train, seed, unlabeled)
        self._write_token_vectors()

    def _build_pipeline(self, pixels: torch.Tensor, seed: int) -> StableDiffusionPipeline:
        pipe = super()._build_pipeline(pixels, seed)
        if pipe.scheduler.config.get("prediction_type", "epsilon") != "epsilon":
            raise ConfigError(f"generator '{self.name}': the checkpoint predicts "
                              f"'{pipe.scheduler.config.prediction_type}', the fine-tuning loss needs an epsilon "
                              "model (e.g. stable-diffusion-2-1-base, not the 768 v-model)")
        self._add_class_tokens(pipe)
        return pipe

    def _add_class_tokens(self, pipe: StableDiffusionPipeline) -> None:
        """New tokenizer entries and embedding rows for the class tokens, initialised from token_init."""
        tokenizer, text_encoder = pipe.tokenizer, pipe.text_encoder
        if tokenizer.add_tokens(self.class_tokens) != len(self.class_tokens):
            raise ConfigError(f"generator '{self.name}': the tokenizer already has some of {self.class_tokens}")
        text_encoder.resize_token_embeddings(len(tokenizer))
        text_encoder.requires_grad_(False)
        init_ids = tokenizer(self.params["token_init"], add_special_tokens=False).input_ids
        weight = text_encoder.get_input_embeddings().weight
        self.token_ids = torch.tensor(tokenizer.convert_tokens_to_ids(self.class_tokens), device=weight.device)
        init = weight[init_ids].float().mean(0)
        self.token_vectors = torch.nn.Parameter(init.repeat(len(self.class_tokens), 1).clone())
        with torch.no_grad():
            weight[self.token_ids] = init.to(weight.dtype)

    def prepare_training(self, train: ImageSet, data: TrainingData, seed: int) -> None:
        self._prompt_ids = token_ids(self.pipe.tokenizer, data.prompts).to(self.device)
        self._embedding_name = next(name for name, param in self.pipe.text_encoder.named_parameters()
                                    if param is self.pipe.text_encoder.get_input_embeddings().weight)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return super().trainable_parameters() + [self.token_vectors]

    def make_batch(self, data: TrainingData, rows: torch.Tensor, generator: torch.Generator) -> Batch:
        """The base batch with its prompts re-encoded through the current token vectors."""
        batch = super().make_batch(data, rows, generator)
        prompts = self._prompt_embeddings()
        cond = torch.where(batch.is_null[:, None, None], data.null_embedding,
                           prompts[batch.prompt_index.to(self.device)])
        return dataclasses.replace(batch, cond=cond)

    def _prompt_embeddings(self) -> torch.Tensor:
        text_encoder = self.pipe.text_encoder
        frozen = text_encoder.get_input_embeddings().weight.detach()
        weight = frozen.index_put((self.token_ids,), self.token_vectors.to(frozen.dtype))
        return functional_call(text_encoder, {self._embedding_name: weight}, (self._prompt_ids,))[0].float()

    @torch.no_grad()
    def _write_token_vectors(self) -> None:
        weight = self.pipe.text_encoder.get_input_embeddings().weight
        weight[self.token_ids] = self.token_vectors.to(weight.dtype)

    # -- sampling ----------------------------------------------------------------------------------
    def sample(self, labels: np.ndarray, attributes: dict[str, np.ndarray], seed: int) -> np.ndarray:
        if self.pipe is None:
            raise RuntimeError(f"generator '{self.name}': call fit() or load() before sample()")
        p, rng = self.params, np.random.default_rng(seed)
        groups = attributes.get(p["attribute"], np.full(len(labels), -1))
        rows = pick_sources(self.sources["labels"], self.sources["groups"], np.asarray(labels), np.asarray(groups),
                            p["source_group"], p["images_per_source"], rng)
        self.stats["source_rows"] = float(len(np.unique(rows)))
        pixels = (to_model_pixels(self.sources["images"][rows], p["resolution"]) + 1) / 2
        images = self.img2img(self.prompt_book.prompts(labels, attributes), pixels, seed)
        return to_uint8_images(images, self.image_shape)

    @torch.no_grad()
    def img2img(self, prompts: list[str], sources: torch.Tensor, seed: int) -> torch.Tensor:
        """Float images (N, 3, R, R) in [0, 1]: each source (in [0, 1]) noised to `strength` and
        denoised toward its prompt, guided with the empty prompt."""
        p = self.params
        scheduler_class, settings = SAMPLERS[p["sampler"]]
        pipe = StableDiffusionImg2ImgPipeline(
            vae=self.pipe.vae, text_encoder=self.pipe.text_encoder, tokenizer=self.pipe.tokenizer,
            unet=self.pipe.unet, scheduler=scheduler_class.from_config(self.pipe.scheduler.config, **settings),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        dtype = pipe.text_encoder.dtype
        embeddings, null = self.encode(prompts), self.encode([""])
        generator = torch.Generator().manual_seed(seed)
        out = []
        for start in range(0, len(prompts), p["sample_batch"]):
            chunk = slice(start, start + p["sample_batch"])
            n = len(embeddings[chunk])
            with self._autocast():
                images = pipe(prompt_embeds=embeddings[chunk].to(dtype),
                              negative_prompt_embeds=null.expand(n, -1, -1).to(dtype),
                              image=sources[chunk].to(self.device, dtype), strength=p["strength"],
                              num_inference_steps=p["sample_steps"], guidance_scale=p["guidance_scale"],
                              generator=generator, output_type="pt").images
            out.append(images.float().cpu())
        return torch.cat(out) if out else torch.zeros(0, 3, p["resolution"], p["resolution"])

    # -- state -------------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """The base state (the tokenizer and text encoder carry the learned class tokens) plus the
        img2img source images with their labels and attribute codes."""
        super().save(directory)
        save_file({key: np.ascontiguousarray(value) for key, value in self.sources.items()},
                  str(Path(directory) / SOURCES_FILE))

    def load(self, directory: Path) -> None:
        super().load(directory)
        self.sources = load_file(str(Path(directory) / SOURCES_FILE))

    def extra_state(self) -> dict[str, Any]:
        return {"class_tokens": self.class_tokens}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.class_tokens = state["class_tokens"]


@hookimpl
def harness_generators() -> list[type]:
    return [SkinDiff]
