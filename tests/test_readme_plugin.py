"""The plugin example in README.md works as written: discovered with --plugins, validated,
and present in the leaderboard."""
from __future__ import annotations

import re
from pathlib import Path

from harness import records
from harness.cli import main

README = Path(__file__).parents[1] / "README.md"


def readme_plugin_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return next(b for b in blocks if "class FlipCopy" in b)


def test_readme_generator_runs_and_appears_in_the_leaderboard(tmp_path, tiny_grid, toy_plugins, capsys):
    plugin_file = tmp_path / "my_plugins.py"
    plugin_file.write_text(readme_plugin_code())
    assert main(["validate-plugin", "flipcopy", "--plugins", str(plugin_file)]) == 0
    tiny_grid.write_text(tiny_grid.read_text().replace('name = "noisy_copy"', 'name = "flipcopy"'))
    out = tmp_path / "run"
    code = main(["run", str(tiny_grid), "--plugins", str(plugin_file), "--plugins", toy_plugins,
                 "--out", str(out), "--cache", str(tmp_path / "cache"), "--quiet"])
    assert code == 0
    capsys.readouterr()
    assert main(["leaderboard", str(out)]) == 0
    assert "| flipcopy" in capsys.readouterr().out


def test_method_author_runs_only_their_plugin_and_merges_the_published_records(tmp_path, tiny_grid, toy_plugins,
                                                                                capsys):
    plugin_file = tmp_path / "my_plugins.py"
    plugin_file.write_text(readme_plugin_code())
    common = ["--plugins", toy_plugins, "--cache", str(tmp_path / "cache"), "--quiet"]
    published, mine = tmp_path / "published", tmp_path / "mine"
    assert main(["run", str(tiny_grid), "--out", str(published), *common]) == 0
    assert main(["run", str(tiny_grid), "--add-generator", "flipcopy", "--only", "generator=none,flipcopy",
                 "--plugins", str(plugin_file), "--out", str(mine), *common]) == 0
    capsys.readouterr()
    assert main(["leaderboard", str(mine), "--merge", str(published), "--significance", "none"]) == 0
    board = capsys.readouterr().out
    assert "| flipcopy" in board and "| noisy_copy" in board and "| oversample" in board
    # the built-in methods came from the published records, not from a rerun
    assert {r["spec"]["generator"]["name"] for r in records.load(mine)} == {"none", "flipcopy"}
    assert main(["run", str(tiny_grid), "--add-generator", "oversample", *common]) == 2
