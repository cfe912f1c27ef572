"""Hyper-parameter sweep behind the pixel generators' cpu configs (issue 6): fit each listed
config once on "derm" and judge samples at several guidance scales with the real-image probes
of check_conditioning.py. Prints one JSON line per (config, scale). Runs on CUDA when present,
which is how the sweep was done; the chosen configs are then confirmed on CPU by
check_conditioning.py.

    python scripts/sweep_conditioning.py 'cbdm:{"tau":0.5}:2.6,4' 'ddpm:{}:1,2'
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

from harness.sampling import SamplingSpec, plan_requests

spec = importlib.util.spec_from_file_location("check_conditioning", Path(__file__).with_name("check_conditioning.py"))
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)


def generator_class(name: str):
    module = importlib.import_module(f"plugins.generators.{name}")
    return next(cls for cls in vars(module).values() if isinstance(cls, type) and getattr(cls, "name", None) == name)


def main() -> None:
    splits = check.load_derm(0)
    probes, accuracy = check.fit_probes(splits, 0)
    print(json.dumps({"probes": accuracy}), flush=True)
    train = splits.train
    labels, attributes = plan_requests(train, check.ATTRIBUTE, SamplingSpec("fill", ratio=300 / len(train)), 0)
    real_tones = check.distribution(check.predict(probes[check.ATTRIBUTE], train.images), 3)
    for arg in sys.argv[1:]:
        name, params, scales = arg.split(":", 2)[0], json.loads(arg.split(":", 1)[1].rsplit(":", 1)[0]), arg.rsplit(":", 1)[1]
        generator = generator_class(name)(config="cpu", **params)
        start = time.perf_counter()
        generator.fit(train, seed=0)
        fit_s = time.perf_counter() - start
        for scale in [float(s) for s in scales.split(",")]:
            generator.params["guidance_scale"] = scale
            images = generator.sample(labels, attributes, seed=0)
            tones = check.predict(probes[check.ATTRIBUTE], images)
            mix = check.distribution(tones, 3)
            print(json.dumps({"generator": name, "params": params, "scale": scale, "fit_s": round(fit_s, 1),
                              "class": float((check.predict(probes["label"], images) == labels).mean()),
                              "tone": float((tones == attributes[check.ATTRIBUTE]).mean()), "tone_mix": mix,
                              "real_mix": real_tones,
                              "tv": round(0.5 * float(np.abs(np.subtract(mix, real_tones)).sum()), 3)}), flush=True)


if __name__ == "__main__":
    main()
