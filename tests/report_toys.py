"""The tiny run both report test modules render: derm at 16 px, 3 replicates, real-only vs a
copying generator and oversampling, the toy centroid classifier."""
from pathlib import Path

TOY_PLUGINS = str(Path(__file__).parent / "fixtures" / "toy_plugins.py")

GRID = """
name = "report-tiny"
seeds = 3
splits = ["test"]

[[dataset]]
name = "derm"
scenarios = ["natural", "cap100"]
params = { n_train = 240, n_val = 60, n_test = 150, resolution = 16 }

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
