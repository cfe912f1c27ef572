"""GPU check: on a CUDA machine, run the cpu grid and one paper-size cell, and write the
figures (training and sampling images/s, wall times, peak GPU memory) with the GPU's name into
docs/performance.md.

The paper-size cell is MeDi's paper configuration (a 6-level UNet at 128 px, batch 64, 100
DDIM steps) trained for `--steps` steps instead of MeDi's 3M, on the embedded dermatology set
rendered at 128 px, classified by skin-diff's ResNet-18 at 224 px; `--steps` and the sample
count change how long it takes, not what each step costs.

    .venv/bin/python scripts/gpu_check.py [--steps 300] [--sample-ratio 0.25] [--grid smoke]
"""
from __future__ import annotations

import argparse
import datetime
import re
import sys
import tempfile
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
BEGIN, END = "<!-- gpu-check:begin -->", "<!-- gpu-check:end -->"

PAPER_CELL = """
name = "gpu-check-paper-cell"
seeds = 1

[[dataset]]
name = "derm"
scenarios = ["natural"]
params = {{ resolution = 128, n_train = {n_train} }}

[[generator]]
name = "medi"
params = {{ config = "paper", train_steps = {steps}, warmup_steps = {warmup} }}

[[sampling]]
strategy = "fair"
ratio = {ratio}

[[classifier]]
name = "timm"
params = {{ config = "paper_skindiff" }}
"""


def require_cuda() -> str:
    if not torch.cuda.is_available():
        sys.exit(f"gpu_check: no CUDA GPU here (torch {torch.__version__}, built for CUDA {torch.version.cuda}, "
                 "sees none). Run it on a machine with an NVIDIA GPU and a CUDA build of torch; "
                 "docs/performance.md is left unchanged.")
    return torch.cuda.get_device_name(0)


# the harness is imported inside the runs, so that a machine without CUDA is told at once
def run_cpu_grid(grid_name: str, work: Path) -> dict:
    from harness.grid import load_grid
    from harness.runner import run_grid

    summary = run_grid(load_grid(grid_name), work / "cpu-grid", work / "cache", device="cuda")
    return {"grid": grid_name, "cells": summary.cells, "failed": len(summary.failed), "wall_s": summary.wall_s}


def run_paper_cell(steps: int, ratio: float, n_train: int, work: Path) -> dict:
    from harness import records
    from harness.grid import load_grid
    from harness.runner import run_grid

    grid_file = work / "paper-cell.toml"
    grid_file.write_text(PAPER_CELL.format(steps=steps, warmup=min(30, steps // 10), ratio=ratio, n_train=n_train))
    torch.cuda.reset_peak_memory_stats()
    summary = run_grid(load_grid(str(grid_file)), work / "paper-cell", work / "cache", device="cuda")
    if summary.failed:
        sys.exit(f"gpu_check: the paper-size cell failed: {summary.failed[0]['error']}")
    [row] = records.load(summary.run_dir)
    stats = row["generator_stats"]  # measured by the generator around its own loops
    return {"steps": int(stats["train_steps"]), "fit_s": stats["train_seconds"],
            "train_images_per_s": stats["train_images_per_s"], "parameters_m": stats["parameters"] / 1e6,
            "sample_images": int(stats["sample_images"]), "sample_s": stats["sample_seconds"],
            "sample_images_per_s": stats["sample_images_per_s"], "classifier_fit_s": row["cost"]["classifier_fit_s"],
            "cell_wall_s": summary.wall_s, "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30}


def report(gpu: str, grid: dict, cell: dict) -> str:
    from plugins.generators.medi import MEDI_PAPER

    today = datetime.date.today().isoformat()
    return "\n".join([
        f"Measured {today} by `scripts/gpu_check.py` on **{gpu}** (torch {torch.__version__}, CUDA "
        f"{torch.version.cuda}).", "",
        "| what | figure |", "| --- | --- |",
        f"| cpu grid `{grid['grid']}` with --device cuda: cells, wall time | {grid['cells']} cells "
        f"({grid['failed']} failed), {grid['wall_s']:.1f} s |",
        f"| MeDi paper config at 128 px, training | {cell['train_images_per_s']:.1f} images/s "
        f"({cell['steps']} steps x batch {MEDI_PAPER['batch_size']} in {cell['fit_s']:.1f} s; UNet {cell['parameters_m']:.0f}M parameters) |",
        f"| MeDi paper config at 128 px, sampling (100 DDIM steps) | {cell['sample_images_per_s']:.1f} images/s "
        f"({cell['sample_images']} images in {cell['sample_s']:.1f} s) |",
        f"| ResNet-18 at 224 px (skin-diff, 20 epochs) on real + synthetic | {cell['classifier_fit_s']:.1f} s |",
        f"| the whole paper-size cell (dataset, scenario, fit, sample, classifier, metrics) | "
        f"{cell['cell_wall_s']:.1f} s |",
        f"| peak GPU memory (torch allocator) | {cell['peak_gpu_gib']:.1f} GiB |",
    ])


def write_section(doc: Path, text: str) -> None:
    """Replace what lies between the gpu-check markers of the doc (the rest is kept)."""
    content = doc.read_text()
    if BEGIN not in content or END not in content:
        raise SystemExit(f"gpu_check: {doc} lacks the markers {BEGIN} / {END}; add them where the figures go")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    doc.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}\n{END}", content))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="MeDi training steps (paper: 3M)")
    parser.add_argument("--sample-ratio", type=float, default=0.25, help="synthetic images per training image")
    parser.add_argument("--n-train", type=int, default=2000, help="training images of the 128 px derm set")
    parser.add_argument("--grid", default="smoke", help="the cpu grid (file or built-in name)")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args()
    gpu = require_cuda()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        grid = run_cpu_grid(args.grid, Path(tmp))
        print(f"cpu grid: {grid}", flush=True)
        cell = run_paper_cell(args.steps, args.sample_ratio, args.n_train, Path(tmp))
    text = report(gpu, grid, cell)
    print(text)
    write_section(args.doc, text)
    print(f"written to {args.doc}")


if __name__ == "__main__":
    main()
