"""Run manifests: everything needed to say where a leaderboard number came from.

Besides versions and the grid, the machine: CPU model and instruction-set flags, the torch build
(BLAS, oneDNN, CPU capability) and thread settings, and the environment variables that steer them,
because float results of one code differ between CPUs (docs/reliability.md, "Across machines")."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ("fairgen-harness", "torch", "torchvision", "diffusers", "timm", "numpy", "pandas", "scikit-learn",
            "scipy", "pluggy", "transformers", "peft")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


#: environment variables that change which kernels and how many threads torch, BLAS and oneDNN use
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS",
              "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "KMP_AFFINITY", "OMP_PROC_BIND",
              "CUBLAS_WORKSPACE_CONFIG", "CUDA_VISIBLE_DEVICES")


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """CPU model, flags (sorted) and logical core count; from /proc/cpuinfo where it exists."""
    fields: dict[str, str] = {}
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() in ("model name", "flags", "Features") and key.strip() not in fields:
                fields[key.strip()] = value.strip()
    flags = fields.get("flags") or fields.get("Features") or ""
    return {"model": fields.get("model name") or platform.processor() or "unknown",
            "flags": sorted(flags.split()), "logical_cores": os.cpu_count()}


def torch_info() -> dict:
    """torch version, build configuration (BLAS, oneDNN, CPU capability, CUDA) and thread settings."""
    try:
        import torch
    except ImportError:
        return {}
    return {"version": torch.__version__, "build": torch.__config__.show(),
            "parallel": torch.__config__.parallel_info(), "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(), "cuda": torch.version.cuda,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}


def git_revision(path: Path) -> str:
    """The commit of the checkout the harness runs from, with '+dirty' if it has local changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_manifest(grid_source: str, grid_text: str, plugins: list[dict], options: dict) -> dict:
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
        "versions": package_versions(),
        "git": git_revision(Path(__file__).resolve().parent),
        "platform": {"machine": platform.machine(), "system": platform.system(), "processor": platform.processor(),
                     "cpu": cpu_info(), "torch": torch_info(),
                     "env": {name: os.environ[name] for name in THREAD_ENV if name in os.environ}},
        "grid": {"source": grid_source, "text": grid_text},
        "plugins": plugins,
        "options": options,
    }
