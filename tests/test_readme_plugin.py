"""The plugin example in README.md works as written: discovered with --plugins, validated,
and present in the leaderboard."""
from __future__ import annotations

import re
from pathlib import Path

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
