"""Check that the Stable Diffusion generators follow their prompts (issue 7's acceptance check).

Trains each named generator in its cpu config on the embedded default dataset ("derm", cpu
config), asks for the same number of images of every (class x skin tone) prompt, and reports how
often a small CNN trained on REAL training images labels the samples with the prompted class
and the prompted skin tone (chance: 1/5 and 1/3). Usage:

    python scripts/check_sd_conditioning.py sd fairgen [--per-cell 20] [--out results.json]
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness import ImageSet
from harness.registry import Registry

ATTRIBUTE = "skin_tone"


class TwoHeadCNN(nn.Module):
    """Class and skin-tone logits from one small conv trunk."""

    def __init__(self, num_classes: int, num_tones: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.label_head, self.tone_head = nn.Linear(64, num_classes), nn.Linear(64, num_tones)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(x)
        return self.label_head(features), self.tone_head(features)


def as_input(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images).float() / 127.5 - 1
    return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x


def train_judge(train: ImageSet, seed: int, epochs: int = 15) -> TwoHeadCNN:
    torch.manual_seed(seed)
    model = TwoHeadCNN(train.num_classes, len(train.attribute_vocab[ATTRIBUTE]))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    x, y, a = as_input(train.images), torch.from_numpy(train.labels), torch.from_numpy(train.attributes[ATTRIBUTE])
    for _ in range(epochs):
        for rows in torch.randperm(len(x)).split(64):
            label_logits, tone_logits = model(x[rows])
            loss = nn.functional.cross_entropy(label_logits, y[rows]) + nn.functional.cross_entropy(tone_logits, a[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def agreement(model: TwoHeadCNN, images: np.ndarray, labels: np.ndarray, tones: np.ndarray) -> dict[str, float]:
    label_logits, tone_logits = model(as_input(images))
    label_hit = (label_logits.argmax(1).numpy() == labels)
    tone_hit = (tone_logits.argmax(1).numpy() == tones)
    result = {"class_acc": float(label_hit.mean()), "tone_acc": float(tone_hit.mean())}
    for code in np.unique(tones):
        result[f"class_acc_tone{code}"] = float(label_hit[tones == code].mean())
    return result


def every_cell(num_classes: int, num_tones: int, per_cell: int) -> tuple[np.ndarray, np.ndarray]:
    cells = np.array([(y, g) for y in range(num_classes) for g in range(num_tones)])
    rows = np.repeat(cells, per_cell, axis=0)
    return rows[:, 0], rows[:, 1]


def check(generator_names: list[str], per_cell: int = 20, seed: int = 0, extra_guidance: tuple[float, ...] = (),
          save_dir: Path | None = None) -> dict[str, dict[str, float]]:
    """Agreement of each generator's samples with their prompts; `extra_guidance` also samples
    the same fitted model at other guidance scales (reported as NAME@gS)."""
    torch.set_num_threads(1)  # shared machine: one thread is several times faster than two under load
    registry = Registry()
    splits = registry.create("dataset", "derm", {"config": "cpu"}).load(seed)
    judge = train_judge(splits.train, seed + 1)
    tone_vocab = splits.train.attribute_vocab[ATTRIBUTE]
    results = {"real_test": agreement(judge, splits.test.images, splits.test.labels, splits.test.attributes[ATTRIBUTE])}
    labels, tones = every_cell(splits.train.num_classes, len(tone_vocab), per_cell)
    for name in generator_names:
        generator = registry.create("generator", name, {"config": "cpu"})
        started = time.perf_counter()
        generator.fit(splits.train, seed)
        fitted = time.perf_counter()
        images = generator.sample(labels, {ATTRIBUTE: tones}, seed + 2)
        results[name] = {**agreement(judge, images, labels, tones), "fit_seconds": fitted - started,
                         "sample_seconds": time.perf_counter() - fitted,
                         **{k: float(v) for k, v in generator.stats.items()}}
        print(name, json.dumps(results[name]), flush=True)
        for scale in extra_guidance:
            generator.params["guidance_scale"] = scale
            images = generator.sample(labels, {ATTRIBUTE: tones}, seed + 2)
            results[f"{name}@g{scale:g}"] = agreement(judge, images, labels, tones)
            print(f"{name}@g{scale:g}", json.dumps(results[f"{name}@g{scale:g}"]), flush=True)
        if save_dir is not None:
            (save_dir / name).mkdir(parents=True, exist_ok=True)
            generator.save(save_dir / name)
    results["chance"] = {"class_acc": 1 / splits.train.num_classes, "tone_acc": 1 / len(tone_vocab)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("generators", nargs="+")
    parser.add_argument("--per-cell", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--extra-guidance", type=float, nargs="*", default=[])
    parser.add_argument("--save", type=Path, help="save each fitted generator under this folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    results = check(args.generators, args.per_cell, args.seed, tuple(args.extra_guidance), args.save)
    print(json.dumps(results, indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
