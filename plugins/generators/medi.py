"""MeDi: metadata-guided diffusion (Drexlin et al.; github David-Drexlin/MeDi).

The condition is the class embedding plus one learned embedding per metadata attribute, summed
and added to the timestep embedding (MeDi's "additive" conditioning). Each attribute has an
extra "unknown" index for missing values (code -1). Training draws rows with a class-balanced
sampler (weight 1 / class count), as MeDi's WeightedRandomSampler. MeDi trains without
classifier-free guidance; `p_uncond` > 0 offers it with a learned null vector.
`attributes` picks the attributes to condition on ([] = all of the training set's);
Ktena et al.'s "label and property conditioning" is `attributes = ["<sensitive attribute>"]`.
Trains at `resolution` (cpu: 16 px) and returns images resized to the training set's H x W.
Multi-hot labels (multi-label findings) make the label factor multi-hot: the condition is then a
linear map of [findings 0/1, one-hot per attribute + unknown], Khosravi et al.'s condition vector
of findings and demographics; such rows are drawn uniformly (class balance is single-label).
"""
from __future__ import annotations

import numpy as np

from harness import ConfigError, ImageSet, hookimpl
from plugins.generators._diffusion import (COMMON_DEFAULTS, Factor, PixelDiffusionGenerator, check_labels,
                                           check_multi_hot, unknown_to_index)

# MeDi's released training script: 6-level UNet without attention blocks at 128 px, AdamW
# (0.95, 0.999, wd 1e-6), lr 1e-4, cosine schedule with 1% warmup, batch 2 x 32, 3M steps,
# EMA with warmup (inv_gamma 1, power 3/4, max 0.9999). Their sampler used DPM-Solver 50
# steps; METHODS.md fixes DDIM, here 100 steps.
MEDI_PAPER = {
    "resolution": 128, "block_out_channels": [128, 256, 512, 512, 1024, 1024], "layers_per_block": 2,
    "attention_levels": [], "attention_head_dim": 8, "norm_num_groups": 32, "dropout": 0.0,
    "batch_size": 64, "train_steps": 3_000_000, "optimizer": "adamw", "lr": 1e-4, "adam_beta1": 0.95,
    "weight_decay": 1e-6, "lr_schedule": "cosine", "warmup_steps": 30_000, "grad_clip": 1.0,
    "ema_decay": 0.9999, "ema_warmup": True, "ema_power": 0.75, "hflip": True,
    "p_uncond": 0.0, "guidance_scale": 1.0, "sample_steps": 100, "sample_batch_size": 128,
    "sample_eta": 0.0,
}


class MeDi(PixelDiffusionGenerator):
    name = "medi"
    version = "1"
    defaults = {**COMMON_DEFAULTS, "attributes": [], "class_balanced": True}
    configs = {"cpu": {}, "paper": MEDI_PAPER}  # defaults are the cpu config
    supports_multilabel = True

    def condition_factors(self, train: ImageSet) -> list[Factor]:
        names = list(self.params["attributes"]) or list(train.attributes)
        missing = [n for n in names if n not in train.attributes]
        if missing:
            raise ConfigError(f"generator 'medi': attributes {missing} are not in the training set; "
                              f"it has {sorted(train.attributes)}")
        # one extra row per attribute: the "unknown" index
        label = Factor("label", train.num_classes, multi_hot=train.multilabel)
        return [label] + [Factor(n, len(train.attribute_vocab[n]) + 1) for n in names]

    def encode(self, labels: np.ndarray, attributes: dict[str, np.ndarray]) -> np.ndarray:
        num_labels = len(self.state["label_names"])
        if self.state["factors"][0].get("multi_hot"):
            columns = [check_multi_hot(labels, num_labels)]
        else:
            columns = [check_labels(labels, num_labels)[:, None]]
        for factor in self.state["factors"][1:]:
            codes = attributes.get(factor["name"], np.full(len(columns[0]), -1))
            columns.append(unknown_to_index(codes, factor["size"] - 1)[:, None])
        return np.concatenate(columns, axis=1)

    def row_weights(self, train: ImageSet) -> np.ndarray:
        if not self.params["class_balanced"] or train.multilabel:
            return np.ones(len(train))
        counts = np.bincount(train.labels, minlength=train.num_classes)
        return 1.0 / counts[train.labels]


@hookimpl
def harness_generators():
    return [MeDi]
