"""Run manifests: everything needed to say where a leaderboard number came from."""
from __future__ import annotations

import importlib.metadata
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
        "platform": {"machine": platform.machine(), "system": platform.system(), "processor": platform.processor()},
        "grid": {"source": grid_source, "text": grid_text},
        "plugins": plugins,
        "options": options,
    }
