"""Hyper-parameter sweep behind the pixel generators' cpu configs (issue 6): fit each listed
config once on "derm" and judge samples at several guidance scales with the real-image probes
of check_conditioning.py. Prints one JSON line per (config, scale). Runs on CUDA when present,
which is how the sweep was done; the chosen configs are then confirmed on CPU by
check_conditioning.py.

    python scripts/sweep_conditioning.py 'cbdm:{"tau":0.5}:2.6,4' 'ddpm:{}:1,2'
"""
from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

from harness.registry import Registry

spec = importlib.util.spec_from_file_location("check_conditioning", Path(__file__).with_name("check_conditioning.py"))
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)


def main() -> None:
    torch.set_num_threads(1)  # as check_conditioning.py: its probes are then the same on CPU
    splits = check.load_derm(0)
    probes, accuracy = check.fit_probes(splits, 0)
    print(json.dumps({"probes": accuracy}), flush=True)
    train = splits.train
    labels, attributes = check.fill_requests(train, 300, 0)
    for arg in sys.argv[1:]:
        name, rest = arg.split(":", 1)
        params, scales = json.loads(rest.rsplit(":", 1)[0]), rest.rsplit(":", 1)[1]
        generator = Registry().create("generator", name, {"config": "cpu", **params})
        start = time.perf_counter()
        generator.fit(train, seed=0)
        fit_s = time.perf_counter() - start
        for scale in [float(s) for s in scales.split(",")]:
            generator.params["guidance_scale"] = scale
            result = check.judge(generator.sample(labels, attributes, seed=0), labels, attributes, train, probes)
            print(json.dumps({"generator": name, "params": params, "scale": scale, "fit_s": round(fit_s, 1),
                              "class": result["class_accuracy"], "tone": result["tone_accuracy"],
                              "tone_mix": result["sample_tone_distribution_predicted"],
                              "real_mix": result["train_tone_distribution_predicted"],
                              "tv": round(result["tone_tv_to_train_predicted"], 3)}), flush=True)


if __name__ == "__main__":
    main()
