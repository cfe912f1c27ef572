"""Class-only conditional DDPM (Ho et al. 2020; Ktena et al.'s "label conditioning"; MeDi's CLS).

The condition is the class label alone, with classifier-free guidance (null class with
probability `p_uncond`). The requested attributes are ignored, so the sensitive attribute of
the samples follows whatever the model learned from the training data. Trains at `resolution`
(cpu: 16 px) and returns images resized to the training set's H x W; see _diffusion.py.
"""
from __future__ import annotations

import numpy as np

from harness import ImageSet, hookimpl
from plugins.generators._diffusion import (COMMON_DEFAULTS, HO_CIFAR_PAPER, Factor, PixelDiffusionGenerator, check_labels,
                                           check_multi_hot)


class ClassConditionalDDPM(PixelDiffusionGenerator):
    name = "ddpm"
    version = "1"
    defaults = dict(COMMON_DEFAULTS)
    # defaults are the cpu config; paper: Ho et al.'s CIFAR model, DDIM 200 steps, no guidance
    # (Khosravi et al. found unguided sampling best for downstream use)
    configs = {"cpu": {}, "paper": {**HO_CIFAR_PAPER, "guidance_scale": 1.0, "sample_steps": 200}}
    supports_multilabel = True  # multi-hot findings: the condition is their embeddings' sum
    conditions_on_attributes = False  # class only: validate-plugin warns, not fails, that tone is ignored

    def condition_factors(self, train: ImageSet) -> list[Factor]:
        return [Factor("label", train.num_classes, multi_hot=train.multilabel)]

    def encode(self, labels: np.ndarray, attributes: dict[str, np.ndarray]) -> np.ndarray:
        num_labels = len(self.state["label_names"])
        if self.state["factors"][0].get("multi_hot"):
            return check_multi_hot(labels, num_labels)
        return check_labels(labels, num_labels)[:, None]


@hookimpl
def harness_generators():
    return [ClassConditionalDDPM]
