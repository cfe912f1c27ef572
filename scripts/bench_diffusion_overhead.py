"""Harness overhead of the diffusion generators: training throughput vs a bare diffusers loop.

Both train the same UNet (the cpu config, 16 px) at the same batch size on the same images; the
bare loop is the diffusers example loop (class-embedding UNet2DModel, AdamW, add_noise, MSE,
grad clipping). The generator adds its condition embedding, classifier-free dropout, flips,
the LR schedule and EMA. Runs alternate to share the machine's load; prints the median ratio.

    .venv/bin/python scripts/bench_diffusion_overhead.py --steps 20 --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel

from harness import ImageSet
from plugins.generators.ddpm import ClassConditionalDDPM


def toy_images(n: int, resolution: int, classes: int) -> ImageSet:
    rng = np.random.default_rng(0)
    return ImageSet(images=rng.integers(0, 256, (n, 3, resolution, resolution), dtype=np.uint8),
                    labels=np.arange(n) % classes, attributes={}, label_names=[str(c) for c in range(classes)],
                    attribute_vocab={}, ids=[str(i) for i in range(n)])


def bare_diffusers_loop(train: ImageSet, unet_config: dict, batch_size: int, steps: int) -> float:
    """Images per second of the plain diffusers training loop."""
    torch.manual_seed(0)
    unet = UNet2DModel(**unet_config, num_class_embeds=train.num_classes)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    images = torch.from_numpy(train.images).float() / 127.5 - 1
    labels = torch.from_numpy(train.labels)
    start = time.perf_counter()
    for _ in range(steps):
        rows = torch.randint(0, len(images), (batch_size,))
        noise = torch.randn(batch_size, *images.shape[1:])
        t = torch.randint(0, 1000, (batch_size,))
        prediction = unet(scheduler.add_noise(images[rows], noise, t), t, class_labels=labels[rows]).sample
        loss = F.mse_loss(prediction, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - start)


def harness_generator(train: ImageSet, steps: int) -> float:
    """Images per second of the ddpm generator's own training loop (its stats)."""
    generator = ClassConditionalDDPM(config="cpu", train_steps=steps)
    generator.fit(train, seed=0)
    return generator.stats["train_images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch = ClassConditionalDDPM(config="cpu").params["batch_size"]
    train = toy_images(2000, ClassConditionalDDPM.defaults["resolution"], 5)
    ratios = []
    for repeat in range(args.repeats):
        unet_config = ClassConditionalDDPM(config="cpu")._unet_config(channels=3)
        if repeat % 2:  # alternate the order so neither side always runs first
            bare_rate = bare_diffusers_loop(train, unet_config, batch, args.steps)
            harness_rate = harness_generator(train, args.steps)
        else:
            harness_rate = harness_generator(train, args.steps)
            bare_rate = bare_diffusers_loop(train, unet_config, batch, args.steps)
        ratios.append(harness_rate / bare_rate)
        print(f"repeat {repeat}: harness {harness_rate:.1f} img/s, bare diffusers {bare_rate:.1f} img/s, "
              f"ratio {ratios[-1]:.3f}", flush=True)
    print(f"median training-throughput ratio harness / bare diffusers: {statistics.median(ratios):.3f} "
          f"(batch {batch}, {args.steps} steps, {args.threads} thread(s))")


if __name__ == "__main__":
    main()
