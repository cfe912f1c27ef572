"""scripts/gpu_check.py without a GPU: it says so and leaves the doc alone; its figures go
between the doc's markers and nowhere else."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parents[1] / "scripts" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_exits_with_what_to_do(gpu_check, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="no CUDA GPU here.*NVIDIA GPU and a CUDA build of torch"):
        gpu_check.require_cuda()


def test_figures_replace_only_the_marked_section(gpu_check, tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text(f"# Performance\nexecutor speed-up 1.7x\n{gpu_check.BEGIN}\nno GPU yet\n{gpu_check.END}\ntail\n")
    gpu_check.write_section(doc, "| H100 | 1000 images/s |")
    assert doc.read_text() == (f"# Performance\nexecutor speed-up 1.7x\n{gpu_check.BEGIN}\n| H100 | 1000 images/s |\n"
                               f"{gpu_check.END}\ntail\n")
    doc.write_text("no markers")
    with pytest.raises(SystemExit, match="lacks the markers"):
        gpu_check.write_section(doc, "x")
