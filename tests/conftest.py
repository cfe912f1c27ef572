"""Shared fixtures: the toy plugin file and a tiny grid that uses it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "2")

FIXTURES = Path(__file__).parent / "fixtures"
TOY_PLUGINS = FIXTURES / "toy_plugins.py"

TINY_GRID = """
name = "tiny"
seeds = 2

[[dataset]]
name = "toy"
scenarios = ["natural", "cap100"]
params = { n_train = 120 }

[[generator]]
name = "none"

[[generator]]
name = "noisy_copy"

[[generator]]
name = "oversample"

[[sampling]]
strategy = "fair"
ratio = 1.0

[[classifier]]
name = "centroid"
"""


@pytest.fixture
def tiny_grid(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_GRID)
    return path


@pytest.fixture
def toy_plugins() -> str:
    return str(TOY_PLUGINS)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core CPU: one torch thread avoids oversubscription, which made
    small convolutions several times slower with two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """One tiny Stable Diffusion checkpoint on disk, shared (read-only) by the SD-family tests."""
    from sd_toys import save_tiny_sd_checkpoint

    return save_tiny_sd_checkpoint(tmp_path_factory.mktemp("tiny-sd"))
