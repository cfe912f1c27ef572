"""Conditioning check for the diffusion generators (issue 6 acceptance).

Trains each generator in its cpu config on the embedded default dataset "derm" (cpu config,
16 px), asks it for a `fill` request set (uniform over class x skin tone), and lets small CNN
probes trained on REAL images judge the samples: how often a sample is classified as the
requested class and as the requested skin tone, against chance. For every generator it also
reports the tone distribution of its samples, which for the class-only DDPM should follow the
training data rather than the request, and whether its tone depends on the requested tone.

    .venv/bin/python scripts/check_conditioning.py --generators ddpm medi cbdm --out results/
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import chi2_contingency
from torch import nn

from harness import ImageSet
from harness.registry import Registry
from harness.sampling import SamplingSpec, plan_requests

ATTRIBUTE = "skin_tone"


def load_derm(seed: int):
    return Registry().create("dataset", "derm", {"config": "cpu"}).load(seed)


class Probe(nn.Module):
    """A small CNN for 16-32 px images."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(64, classes))

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.net(images_uint8.float() / 127.5 - 1.0)


def train_probe(train: ImageSet, targets: np.ndarray, classes: int, seed: int, epochs: int = 15) -> Probe:
    torch.manual_seed(seed)
    keep = targets >= 0
    images, y = torch.from_numpy(train.images[keep]), torch.from_numpy(targets[keep])
    probe = Probe(images.shape[1], classes)
    optimizer = torch.optim.Adam(probe.parameters(), lr=2e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(y)).split(64):
            loss = nn.functional.cross_entropy(probe(images[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return probe.eval()


def predict(probe: Probe, images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return np.concatenate([probe(torch.from_numpy(chunk)).argmax(1).numpy()
                               for chunk in np.array_split(images, max(1, len(images) // 256))])


def distribution(codes: np.ndarray, size: int) -> list[float]:
    return (np.bincount(codes[codes >= 0], minlength=size) / max(1, (codes >= 0).sum())).round(4).tolist()


def check_generator(name: str, splits, probes: dict[str, Probe], n_samples: int, seed: int,
                    params: dict | None = None) -> dict:
    train = splits.train
    generator = Registry().create("generator", name, {"config": "cpu", **(params or {})})
    generator.fit(train, seed=seed)
    labels, attributes = fill_requests(train, n_samples, seed)
    images = generator.sample(labels, attributes, seed=seed)
    return {"generator": name, "params": generator.params, "stats": generator.stats, "n_samples": len(images),
            **judge(images, labels, attributes, train, probes)}


def fill_requests(train: ImageSet, n_samples: int, seed: int):
    """About n_samples requests, uniform over class x skin tone."""
    return plan_requests(train, ATTRIBUTE, SamplingSpec("fill", ratio=n_samples / len(train)), seed)


def judge(images: np.ndarray, labels: np.ndarray, attributes: dict, train: ImageSet, probes: dict[str, Probe]) -> dict:
    """How often the real-image probes see the requested class and tone, and the samples' tone mix."""
    tones = len(train.attribute_vocab[ATTRIBUTE])
    predicted_tone = predict(probes[ATTRIBUTE], images)
    real_tone = distribution(predict(probes[ATTRIBUTE], train.images), tones)
    sample_tones = distribution(predicted_tone, tones)
    return {
        "class_accuracy": float((predict(probes["label"], images) == labels).mean()),
        "class_chance": 1 / train.num_classes,
        "tone_accuracy": float((predicted_tone == attributes[ATTRIBUTE]).mean()), "tone_chance": 1 / tones,
        "requested_tone_distribution": distribution(attributes[ATTRIBUTE], tones),
        "sample_tone_distribution_predicted": sample_tones,
        "train_tone_distribution": distribution(train.attributes[ATTRIBUTE], tones),
        "train_tone_distribution_predicted": real_tone,
        "tone_tv_to_train_predicted": float(0.5 * np.abs(np.subtract(sample_tones, real_tone)).sum()),
        # does the sample's tone depend on the requested tone at all? (chi-square test of independence)
        "tone_request_p": request_dependence_p(attributes[ATTRIBUTE], predicted_tone, tones),
    }


def request_dependence_p(requested: np.ndarray, predicted: np.ndarray, size: int) -> float:
    table = np.zeros((size, size))
    np.add.at(table, (requested, predicted), 1)
    table = table[:, table.sum(0) > 0]  # a tone never predicted has no expected count
    return float(chi2_contingency(table).pvalue) if table.shape[1] > 1 else 1.0


def fit_probes(splits, seed: int) -> tuple[dict[str, Probe], dict[str, float]]:
    train, test = splits.train, splits.test
    tones = len(train.attribute_vocab[ATTRIBUTE])
    probes = {"label": train_probe(train, train.labels, train.num_classes, seed),
              ATTRIBUTE: train_probe(train, train.attributes[ATTRIBUTE], tones, seed)}
    accuracy = {"label": float((predict(probes["label"], test.images) == test.labels).mean()),
                ATTRIBUTE: float((predict(probes[ATTRIBUTE], test.images) == test.attributes[ATTRIBUTE]).mean())}
    return probes, accuracy


def markdown_table(results: list[dict]) -> str:
    """The results as the table in docs/generators.md."""
    rows = ["| generator | class acc. (chance) | tone acc. (chance) | predicted tone mix of samples | "
            "predicted tone mix of real train | train img/s | sample img/s | train s |", "|---" * 8 + "|"]
    for r in results:
        rows.append(f"| `{r['generator']}` | {r['class_accuracy']:.1%} ({r['class_chance']:.0%}) | "
                    f"{r['tone_accuracy']:.1%} ({r['tone_chance']:.0%}) | {r['sample_tone_distribution_predicted']} | "
                    f"{r['train_tone_distribution_predicted']} | {r['stats']['train_images_per_s']:.1f} | "
                    f"{r['stats']['sample_images_per_s']:.2f} | {r['stats']['train_seconds']:.0f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generators", nargs="+", default=["ddpm", "medi", "cbdm"])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    parser.add_argument("--out", type=Path, default=Path("results/conditioning"))
    parser.add_argument("--table", action="store_true", help="only print the markdown table of the results in --out")
    args = parser.parse_args()
    if args.table:
        print(markdown_table([json.loads((args.out / f"{name}.json").read_text()) for name in args.generators]))
        return
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    splits = load_derm(args.seed)
    start = time.perf_counter()
    probes, probe_accuracy = fit_probes(splits, args.seed)
    print(f"real-image probes: test accuracy {probe_accuracy} ({time.perf_counter() - start:.0f} s)", flush=True)
    for name in args.generators:
        result = check_generator(name, splits, probes, args.samples, args.seed)
        result["probe_test_accuracy"] = probe_accuracy
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=1))
        print(json.dumps({k: result[k] for k in result if k not in ("params",)}), flush=True)


if __name__ == "__main__":
    main()
