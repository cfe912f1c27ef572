"""The leaderboard as people read it: a headline that fits a 100-column terminal on the shipped
grids' records, every metric on request, and the same Δ markers in every format (md, csv, html,
json, latex), in `harness run`, `harness leaderboard` and the run folder's leaderboard.md."""
from __future__ import annotations

import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.leaderboard import FORMATS, WIDTH, load_summary, render, select_metrics, table_views
from harness.metrics import METRICS

from leaderboard_toys import write_run

BOARDS = Path(__file__).parents[1] / "leaderboards"
METHODS = {"none": 0.7, "better": 0.9, "worse": 0.5, "same": 0.7}
HEADLINE = {"worst_acc", "gap_acc", "auc_gap", "acc", "auc", "fid"}  # the toy run has no CAS


@pytest.fixture(scope="module")
def toy_summary(tmp_path_factory):
    run = write_run(tmp_path_factory.mktemp("views") / "run", METHODS, seeds=6, fid={"better": 30.0, "worse": 60.0})
    return load_summary(run, significance="bootstrap", b=400)


def _widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


@pytest.mark.skipif(not (BOARDS / "standard" / "results.jsonl").exists(), reason="no committed standard run")
def test_the_standard_grids_headline_fits_100_columns_with_deltas_and_markers():
    summary = load_summary(BOARDS / "standard", significance="bootstrap", b=200)
    text = render(summary, "md", metrics="headline", width=WIDTH)
    assert _widest(text) <= WIDTH
    assert "(+" in text and ("▲" in text or "▼" in text)  # Δ and markers survive the narrowing
    headers = {h.strip().split(" ")[0] for line in text.splitlines() if line.startswith("| method")
               for h in line.strip("|").split("|")[1:]}
    assert headers == {"worst_acc", "gap_acc", "auc_gap", "acc", "auc", "cas", "fid"}
    # the full table is still one table per heading when no width is asked (the published form)
    assert _widest(render(summary, "md")) > 300
    assert _widest(render(summary, "md", metrics="all", width=WIDTH)) <= WIDTH


def test_the_smoke_grids_headline_fits_100_columns(tmp_path):
    run = tmp_path / "smoke"
    run.mkdir()
    shutil.copy(BOARDS / "smoke.results.jsonl", run / "results.jsonl")
    shutil.copy(BOARDS / "smoke.manifest.json", run / "manifest.json")
    summary = load_summary(run)  # the smoke records ship without their predictions: no test
    text = render(summary, "md", metrics="headline", width=WIDTH)
    assert _widest(text) <= WIDTH and "| worst_acc ↑" in text


def test_a_wide_selection_is_split_into_blocks_that_repeat_the_method_column(toy_summary):
    text = render(toy_summary, "md", metrics="all", width=WIDTH)
    blocks = [line for line in text.splitlines() if line.startswith("| method")]
    assert len(blocks) > 1 and _widest(text) <= WIDTH
    shown = {h.strip().split(" ")[0] for line in blocks for h in line.strip("|").split("|")[1:]}
    assert shown == {c[:-5] for c in toy_summary.columns if c.endswith("_mean") and c[:-5] in METRICS}


def test_headline_is_the_grids_primary_endpoints_then_utility_and_fidelity(toy_summary):
    sections = select_metrics(toy_summary, "headline")
    assert sections[0] == ("primary endpoints", ["worst_acc", "gap_acc", "auc_gap"])
    assert {name for _, names in sections for name in names} == HEADLINE
    declared = toy_summary.assign(primary_endpoints="acc,dp")
    assert select_metrics(declared, "headline")[0] == ("primary endpoints", ["acc", "dp"])
    assert select_metrics(toy_summary, "gap_acc, worst_group_acc") == [("", ["gap_acc", "worst_acc"])]
    with pytest.raises(KeyError, match="did you mean"):
        select_metrics(toy_summary, "acc,gap_ac")


# ---- one marker per (table, method, metric), whatever the format ----

def _md_markers(text: str) -> dict:
    out, headers = {}, []
    for line in text.splitlines():
        if line.startswith("| method"):
            headers = [h.strip().split(" ")[0] for h in line.strip("|").split("|")]
        elif line.startswith("|") and not line.startswith("|-"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            out.update({(cells[0], h): _sign(c) for h, c in zip(headers[1:], cells[1:])})
    return out


def _sign(text: str) -> str:
    return "▲" if "▲" in text else "▼" if "▼" in text else ""


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self._cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append(self._cell.strip())
            self._cell = None


def _html_markers(text: str) -> dict:
    parser = _Cells()
    parser.feed(text)
    headers = [h.split(" ")[0] for h in parser.rows[0]]
    return {(row[0], h): _sign(c) for row in parser.rows[1:] for h, c in zip(headers[1:], row[1:])}


def _latex_markers(text: str) -> dict:
    rows = [line.removesuffix(r" \\").split(" & ") for line in text.splitlines() if line.endswith(r" \\")]
    headers = [h.split(" ")[0].replace(r"\_", "_") for h in rows[0]]
    sign = {r"$\blacktriangle$": "▲", r"$\blacktriangledown$": "▼"}
    return {(row[0], h): next((s for tex, s in sign.items() if tex in c), "") for row in rows[1:]
            for h, c in zip(headers[1:], row[1:])}


def _json_markers(text: str) -> dict:
    table = json.loads(text)["tables"][0]
    return {(row["method"], name): cell["marker"] for row in table["rows"] for name, cell in row["cells"].items()}


def _csv_markers(text: str, names: list[str]) -> dict:
    frame = pd.read_csv(io.StringIO(text), keep_default_na=False)
    return {(row["method"], name): row.get(f"{name}_marker", "") for _, row in frame.iterrows() for name in names}


@pytest.mark.parametrize("metrics", ["headline", "all"])
def test_every_format_shows_the_same_markers(toy_summary, metrics):
    names = table_views(toy_summary, metrics)[0].metrics
    expected = {(method, name): cell.marker for method, _, cells in table_views(toy_summary, metrics)[0].rows
                for name, cell in cells.items()}
    assert {"▲", "▼"} <= set(expected.values())  # the toy run has clearly better and worse methods
    assert expected[("better", "acc")] == "▲" and expected[("worse", "acc")] == "▼"
    views = {"md": _md_markers(render(toy_summary, "md", metrics=metrics, width=WIDTH)),
             "md (published)": _md_markers(render(toy_summary, "md", metrics=metrics)),
             "html": _html_markers(render(toy_summary, "html", metrics=metrics)),
             "latex": _latex_markers(render(toy_summary, "latex", metrics=metrics)),
             "json": _json_markers(render(toy_summary, "json", metrics=metrics)),
             "csv": _csv_markers(render(toy_summary, "csv", metrics=metrics), names)}
    assert set(FORMATS) <= {name.split(" ")[0] for name in views}
    for name, markers in views.items():
        assert markers == expected, name


def test_csv_selection_keeps_only_the_chosen_metrics_and_check_still_reads_it(toy_summary):
    frame = pd.read_csv(io.StringIO(render(toy_summary, "csv", metrics="acc,fid")))
    metric_columns = {c for c in frame.columns if re.match(r"^[a-z_]+_(mean|sd|diff|p_adj|marker)$", c)}
    assert {"acc_mean", "acc_sd", "acc_marker", "fid_mean"} <= metric_columns
    assert not [c for c in metric_columns if not c.startswith(("acc_", "fid_"))]


def test_latex_escapes_names_and_json_carries_numbers(toy_summary):
    latex = render(toy_summary, "latex", metrics="headline")
    assert r"worst\_acc $\uparrow$" in latex and r"\begin{tabular}" in latex
    text = "\n".join(line.removeprefix("% ").replace(" & ", " ") for line in latex.splitlines())
    assert not re.search(r"(?<!\\)[_%&#]", text) and "▲" not in text  # every special character escaped
    table = json.loads(render(toy_summary, "json", metrics="headline"))["tables"][0]
    better = next(row for row in table["rows"] if row["method"] == "better")["cells"]["acc"]
    assert better["diff"] > 0.1 and better["p_adj"] < 0.05 and better["marker"] == "▲"


# ---- the commands ----

def test_leaderboard_prints_the_headline_by_default_and_every_metric_on_request(toy_summary, tmp_path, capsys):
    run = write_run(tmp_path / "run", METHODS, seeds=3)
    assert main(["leaderboard", str(run), "--bootstrap-b", "200"]) == 0
    headline = capsys.readouterr().out
    assert "| method" in headline and "worst_acc ↑" in headline and "dp ↓" not in headline
    assert _widest(headline) <= WIDTH
    assert main(["leaderboard", str(run), "--bootstrap-b", "200", "--metrics", "all"]) == 0
    full = capsys.readouterr().out
    assert "dp ↓" in full and "essp ↑" in full and _widest(full) <= WIDTH
    assert main(["leaderboard", str(run), "--significance", "none", "--metrics", "acc,dp", "--format", "latex"]) == 0
    assert r"dp $\downarrow$" in capsys.readouterr().out
    assert main(["leaderboard", str(run), "--significance", "none", "--format", "csv"]) == 0
    assert "dp_mean" in capsys.readouterr().out  # csv and json keep every metric unless asked otherwise
    assert main(["leaderboard", str(run), "--metrics", "nonsense"]) == 2
    assert "unknown metric 'nonsense'" in capsys.readouterr().err


def test_run_prints_the_headline_and_writes_leaderboard_md_with_the_same_markers(tiny_grid, toy_plugins, tmp_path,
                                                                                  capsys):
    out = tmp_path / "run"
    assert main(["run", str(tiny_grid), "--out", str(out), "--cache", str(tmp_path / "cache"), "--plugins",
                 toy_plugins, "--bootstrap-b", "200"]) == 0
    printed = capsys.readouterr().out
    written = (out / "leaderboard.md").read_text()
    assert _widest(printed) <= WIDTH and _widest(written) <= WIDTH
    assert "## Headline" in written and "## All metrics" in written and "dp ↓" in written
    headline = written.split("## All metrics")[0]
    assert _md_markers(headline) == _md_markers(printed)  # the file and the terminal agree
    assert main(["leaderboard", str(out), "--bootstrap-b", "200"]) == 0
    assert _md_markers(capsys.readouterr().out) == _md_markers(printed)  # and so does `harness leaderboard`
