"""Safe outputs and honest configuration: a grid name cannot send a run outside runs/, --param
keeps an entry's restriction, and a dry run reports every config error a real run would."""
from __future__ import annotations

import json

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


# -- a run with an unsafe label, a failed cell and a missing one --------------------------------
UNSAFE_LABEL = r"<script>alert(1)</script> $\badcmd$"
GAPS_GRID = f"""
name = "gaps"
seeds = 2

[[dataset]]
name = "toy"
scenarios = ["natural"]
params = {{ n_train = 120 }}

[[generator]]
name = "none"

[[generator]]
name = "noisy_copy"
label = '{UNSAFE_LABEL}'

[[generator]]
name = "boom"

[[sampling]]
strategy = "fair"
ratio = 1.0

[[classifier]]
name = "centroid"
"""


@pytest.fixture(scope="module")
def gaps_run(tmp_path_factory):
    """6 cells: 2 of `boom` fail, and one of `none` is made missing (its record removed, as if the
    run had been killed before it)."""
    from harness import records
    from harness.grid import load_grid
    from harness.runner import run_grid

    from conftest import TOY_PLUGINS

    tmp = tmp_path_factory.mktemp("gaps")
    (tmp / "gaps.toml").write_text(GAPS_GRID)
    summary = run_grid(load_grid(str(tmp / "gaps.toml")), tmp / "run", tmp / "cache", plugin_files=[str(TOY_PLUGINS)])
    assert len(summary.failed) == 2
    rows = records.load(summary.run_dir)
    dropped = next(r for r in rows if r["spec"]["generator"]["name"] == "none" and r["seed_index"] == 1)
    records.rewrite(summary.run_dir, [r for r in rows if r is not dropped])
    return summary.run_dir


def _gap_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith(("failed ", "missing "))]


def test_the_leaderboard_lists_failed_and_missing_cells_and_exits_1(gaps_run, capsys):
    assert main(["leaderboard", str(gaps_run), "--significance", "none"]) == 1
    out, err = capsys.readouterr()
    lines = _gap_lines(err)
    assert lines == sorted(lines, key=lambda line: not line.startswith("failed"))  # failed first
    assert sum(line.startswith("failed  toy/natural/boom/fair-1/centroid #s") for line in lines) == 2
    assert all("deliberate failure" in line for line in lines if line.startswith("failed"))
    assert [line for line in lines if line.startswith("missing")] == [
        "missing toy/natural/none/real/centroid #s1: no record (not run yet, or the run was interrupted: "
        "run it again to compute it)"]
    assert "2 failed and 1 missing cell(s)" in err
    assert _gap_lines(out) == lines  # the markdown output says it too


def test_publish_and_report_list_them_too_and_exit_1(gaps_run, tmp_path, capsys):
    assert main(["leaderboard", str(gaps_run), "--significance", "none", "--publish", str(tmp_path / "board")]) == 1
    assert len(_gap_lines((tmp_path / "board" / "README.md").read_text())) == 3
    assert main(["report", str(gaps_run), "--output", str(tmp_path / "report.html")]) == 1
    page = (tmp_path / "report.html").read_text()
    assert "Failed and missing cells" in page and page.count("deliberate failure") == 2


def test_a_complete_run_exits_0(tiny_grid, tmp_path, toy_plugins, capsys):
    out = tmp_path / "run"
    assert main(["run", str(tiny_grid), "--out", str(out), "--cache", str(tmp_path / "cache"), "--plugins",
                 toy_plugins, "--quiet", "--only", "scenario=natural"]) == 0
    assert main(["leaderboard", str(out), "--significance", "none"]) == 0
    assert "missing" not in capsys.readouterr().err


def test_labels_are_escaped_in_html_and_plots(gaps_run, tmp_path, capsys):
    assert main(["report", str(gaps_run), "--output", str(tmp_path / "report.html")]) == 1  # not a crash (2)
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert main(["leaderboard", str(gaps_run), "--significance", "none", "--format", "html"]) == 1
    assert "<script>" not in capsys.readouterr().out


# -- --publish writes only where it may ---------------------------------------------------------
def test_publish_refuses_a_folder_it_did_not_write_and_deletes_nothing(gaps_run, tmp_path, capsys):
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "README.md").write_text("my project")
    (folder / "data.csv").write_text("a,b\n")
    assert main(["leaderboard", str(gaps_run), "--significance", "none", "--publish", str(folder)]) == 2
    assert "not empty and was not written by --publish" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "data.csv"]
    assert (folder / "README.md").read_text() == "my project"


def test_publishing_again_replaces_only_what_the_last_publish_wrote(gaps_run, tmp_path):
    from harness.publish import MARKER

    board = tmp_path / "board"
    main(["leaderboard", str(gaps_run), "--significance", "none", "--publish", str(board)])
    written = sorted(p.name for p in board.iterdir())
    assert MARKER in written
    (board / "baseline.csv").write_text("kept: not written by publish")
    (board / "toy__gone__centroid__test.md").write_text("a table of the earlier publish")
    marker = json.loads((board / MARKER).read_text())
    marker["files"].append("toy__gone__centroid__test.md")
    (board / MARKER).write_text(json.dumps(marker))
    main(["leaderboard", str(gaps_run), "--significance", "none", "--publish", str(board)])
    assert sorted(p.name for p in board.iterdir()) == sorted([*written, "baseline.csv"])
    assert (board / "baseline.csv").read_text() == "kept: not written by publish"


def test_mistakes_in_several_entries_of_a_grid_file_are_reported_together(tiny_grid, toy_plugins, capsys):
    tiny_grid.write_text(TINY_GRID.replace("seeds = 2", "seeds = 0")
                         .replace('scenarios = ["natural", "cap100"]', 'scenarios = ["natural", "cap100"]\nparms = {}')
                         .replace('strategy = "fair"', 'strategy = "fairest"')
                         .replace('name = "centroid"', 'name = "centroid"\nlabel = 3'))
    assert main(["run", str(tiny_grid), "--dry-run", "--plugins", toy_plugins]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 4 and all(line.startswith(f"error: {tiny_grid}: ") for line in lines)
    for part in ("'seeds' must be >= 1", "unknown key 'dataset[0].parms'; did you mean 'params'",
                 "unknown sampling strategy 'fairest'", "key 'classifier[0].label' must be str"):
        assert sum(part in line for line in lines) == 1, (part, lines)
