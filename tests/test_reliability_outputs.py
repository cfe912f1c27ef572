"""Safe outputs and honest configuration: a grid name cannot send a run outside runs/, --param
keeps an entry's restriction, and a dry run reports every config error a real run would."""
from __future__ import annotations

import pytest

from harness.cli import main
from harness.contracts import ConfigError
from harness.grid import apply_overrides, parse_grid

from conftest import TINY_GRID


def produces_images(spec):
    return spec.name != "none"


@pytest.mark.parametrize("name", ["/tmp/x", "../../x", "..", ".", "a/b", ".hidden", "a b"])
def test_a_grid_name_that_is_not_a_plain_folder_name_is_refused(name):
    with pytest.raises(ConfigError, match="key 'name' must be a plain folder name"):
        parse_grid(TINY_GRID.replace('name = "tiny"', f"name = {name!r}"), "g.toml")


def test_a_grid_without_a_name_is_named_after_its_file_safely():
    text = TINY_GRID.replace('name = "tiny"\n', "")
    assert parse_grid(text, "/some/where/my grid.toml").name == "my-grid"
    assert parse_grid(text, "/some/where/..toml").name == "grid"


def test_a_run_without_out_writes_under_runs_of_the_working_folder(tiny_grid, tmp_path, toy_plugins, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_grid.write_text(TINY_GRID.replace('name = "tiny"', 'name = "../escaped"'))
    assert main(["run", str(tiny_grid), "--cache", str(tmp_path / "cache"), "--plugins", toy_plugins,
                 "--quiet"]) == 2
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "runs").exists()


def test_param_on_a_restricted_entry_keeps_its_restriction():
    text = TINY_GRID.replace('name = "noisy_copy"', 'name = "noisy_copy"\nscenarios = ["cap100"]')
    grid = apply_overrides(parse_grid(text, "g.toml"), ["noisy_copy.noise=5"])
    cells = [c for c in grid.cells(produces_images) if c.generator.name == "noisy_copy"]
    assert {c.scenario for c in cells} == {"cap100"}
    assert {tuple(c.generator.params.items()) for c in cells} == {(("noise", 5),)}


def test_a_dry_run_reports_every_config_error_at_once(tiny_grid, toy_plugins, capsys):
    text = (TINY_GRID.replace('name = "centroid"', 'name = "centriod"')
            .replace('"cap100"]', '"cap10"]')
            .replace('name = "noisy_copy"', 'name = "noisy_copy"\nparams = { noize = 1 }'))
    tiny_grid.write_text(text)
    code = main(["run", str(tiny_grid), "--dry-run", "--plugins", toy_plugins, "--param", "tyo.n_train=60",
                 "--only", "generator=oversampel", "--only", "scenario=natural"])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    expected = ["--param tyo.n_train=60: no dataset, generator or classifier labelled 'tyo'",
                "no scenario 'cap10'", "unknown parameter 'noize'", "'centriod'",
                "--only generator=oversampel: no generator 'oversampel'"]
    for part in expected:
        assert sum(part in line for line in lines) == 1, (part, err)
    assert "did you mean 'oversample'" in err and "5 errors" in err


def test_a_dry_run_of_a_sound_grid_lists_its_cells(tiny_grid, toy_plugins, capsys):
    assert main(["run", str(tiny_grid), "--dry-run", "--plugins", toy_plugins, "--only", "scenario=natural"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 6
