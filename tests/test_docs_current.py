"""The generated reference docs (docs/plugin-api.md, docs/grid-keys.md) match the code, and the
grid-key reference states the defaults the parser really uses. The CI check: a change to a
docstring, a contract or the grid schema without `python scripts/gen_docs.py` fails here."""
import importlib.util
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

from harness.grid import ENTRY_KEYS, GRID_KEYS, parse_grid

ROOT = Path(__file__).resolve().parents[1]
MINIMAL_GRID = """
[[dataset]]
name = "derm"
[[generator]]
name = "none"
[[classifier]]
name = "small_cnn"
"""


def load_gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_docs"] = module
    spec.loader.exec_module(module)
    return module


def test_committed_reference_docs_are_current():
    gen_docs = load_gen_docs()
    for path, text in gen_docs.generated().items():
        assert path.read_text() == text, f"{path.name} is out of date: run `python scripts/gen_docs.py` and commit"
    assert gen_docs.main(["--check"]) == 0


def test_the_references_cover_every_hook_contract_method_and_grid_key():
    api, keys = (ROOT / "docs" / "plugin-api.md").read_text(), (ROOT / "docs" / "grid-keys.md").read_text()
    for name in ("harness_datasets()", "harness_generators()", "harness_classifiers()", "Generator.sample(",
                 "Classifier.predict_proba(", "Dataset.load(", "`provenance`", "`test_ood`", "to_float("):
        assert name in api
    for table in (GRID_KEYS, *ENTRY_KEYS.values()):
        for key in table:
            assert f"| `{key}` |" in keys
    for key in ("fidelity", "fid_draws", "feature_extractor", "min_group_n", "datasets", "scenarios"):
        assert f"| `{key}` |" in keys


def test_a_public_method_without_a_docstring_stops_the_generator(tmp_path):
    gen_docs = load_gen_docs()
    for folder in ("harness", "docs"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "grids"))
    contracts = tmp_path / "harness" / "contracts.py"
    text = contracts.read_text()
    docstring = '        """Read back what `save` wrote, so that `sample` works without `fit`."""\n'
    assert docstring in text
    contracts.write_text(text.replace(docstring, ""))
    gen_docs.ROOT, gen_docs.DOCS = tmp_path, tmp_path / "docs"
    with pytest.raises(SystemExit, match="Generator.load has no docstring"):
        gen_docs.plugin_api_markdown()


def test_declared_grid_defaults_are_what_the_parser_uses():
    grid = parse_grid(MINIMAL_GRID)
    checked = 0
    for key, spec in GRID_KEYS.items():
        try:
            declared = tomllib.loads(f"value = {spec.default}")["value"]
        except tomllib.TOMLDecodeError:  # a default in words ("required", "the file's name")
            continue
        if key == "generator_seeds" or not hasattr(grid, key):
            continue
        actual = getattr(grid, key)
        assert (list(actual) if isinstance(actual, tuple) else actual) == declared, key
        checked += 1
    assert checked >= 10
    dataset, scenarios = grid.datasets[0]
    assert scenarios == tomllib.loads(f"v = {ENTRY_KEYS['dataset']['scenarios'].default}")["v"]
    assert grid.samplings[0].strategy == "fair" and grid.samplings[0].ratio == 1.0
