"""Check that fairdiffusion and skindiff samples carry the requested class and skin tone (issue 11).

The same check as scripts/check_sd_conditioning.py (a two-head CNN trained on REAL derm training
images judges every (class x tone) request; chance 1/5 and 1/3), plus the judge's tone accuracy
per requested tone and, for skindiff, a control: the img2img source images themselves, unchanged.
Mostly light-skin sources judged against the requested tones show how much of skindiff's tone
accuracy comes from retargeting rather than from the source. Usage:

    python scripts/check_later_conditioning.py fairdiffusion skindiff [--per-cell 20] [--out results.json]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from harness.registry import Registry

_spec = importlib.util.spec_from_file_location("check_sd_conditioning", Path(__file__).with_name("check_sd_conditioning.py"))
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)
ATTRIBUTE = base.ATTRIBUTE


def judged(judge, images: np.ndarray, labels: np.ndarray, tones: np.ndarray) -> dict[str, float]:
    result = base.agreement(judge, images, labels, tones)
    with torch.no_grad():
        tone_hit = judge(base.as_input(images))[1].argmax(1).numpy() == tones
    result.update({f"tone_acc_tone{code}": float(tone_hit[tones == code].mean()) for code in np.unique(tones)})
    return result


def check(generator_names: list[str], per_cell: int = 20, seed: int = 0) -> dict[str, dict[str, float]]:
    torch.set_num_threads(1)
    registry = Registry()
    splits = registry.create("dataset", "derm", {"config": "cpu"}).load(seed)
    train = splits.train
    judge = base.train_judge(train, seed + 1)
    results = {"real_test": judged(judge, splits.test.images, splits.test.labels, splits.test.attributes[ATTRIBUTE])}
    labels, tones = base.every_cell(train.num_classes, len(train.attribute_vocab[ATTRIBUTE]), per_cell)
    for name in generator_names:
        generator = registry.create("generator", name, {"config": "cpu"})
        started = time.perf_counter()
        generator.fit(train, seed)
        fitted = time.perf_counter()
        images = generator.sample(labels, {ATTRIBUTE: tones}, seed + 2)
        results[name] = {**judged(judge, images, labels, tones), "fit_seconds": fitted - started,
                         "sample_seconds": time.perf_counter() - fitted,
                         **{k: float(v) for k, v in generator.stats.items()}}
        print(name, json.dumps(results[name]), flush=True)
        if name == "skindiff":
            results["skindiff_sources_unchanged"] = judged(judge, _sources(generator, labels, tones, seed + 2),
                                                           labels, tones)
    results["chance"] = {"class_acc": 1 / train.num_classes, "tone_acc": 1 / len(train.attribute_vocab[ATTRIBUTE])}
    return results


def skindiff_sweep(settings: list[tuple[float, float, str]], per_cell: int = 20, seed: int = 0) -> dict[str, dict]:
    """One cpu skindiff fit, sampled at each (strength, guidance_scale, source_group)."""
    torch.set_num_threads(1)
    registry = Registry()
    train = registry.create("dataset", "derm", {"config": "cpu"}).load(seed).train
    judge = base.train_judge(train, seed + 1)
    labels, tones = base.every_cell(train.num_classes, len(train.attribute_vocab[ATTRIBUTE]), per_cell)
    generator = registry.create("generator", "skindiff", {"config": "cpu"})
    generator.fit(train, seed)
    results = {}
    for strength, guidance, source_group in settings:
        generator.params.update(strength=strength, guidance_scale=guidance, source_group=source_group)
        images = generator.sample(labels, {ATTRIBUTE: tones}, seed + 2)
        results[f"strength={strength} guidance={guidance} sources={source_group}"] = judged(judge, images, labels, tones)
        print(json.dumps(results), flush=True)
    return results


def _sources(generator, labels: np.ndarray, tones: np.ndarray, seed: int) -> np.ndarray:
    """The images skindiff's sample() starts from for these requests (same seed, same picks)."""
    from plugins.generators.skindiff import pick_sources

    p = generator.params
    rows = pick_sources(generator.sources["labels"], generator.sources["groups"], labels, tones, p["source_group"],
                        p["images_per_source"], np.random.default_rng(seed))
    return generator.sources["images"][rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("generators", nargs="+")
    parser.add_argument("--per-cell", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--sweep", action="store_true", help="skindiff only: one fit, img2img at several settings")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.sweep:
        settings = [(0.5, 2.0, "majority"), (0.75, 2.0, "majority"), (0.9, 4.0, "majority"), (1.0, 3.0, "majority"),
                    (0.5, 2.0, "same")]
        results = skindiff_sweep(settings, args.per_cell, args.seed)
    else:
        results = check(args.generators, args.per_cell, args.seed)
    print(json.dumps(results, indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
