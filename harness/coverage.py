"""Which cells of a run have no result: the cells that failed (with their error) and those that
are missing (never computed, or a split without its record), so that every table built from a
run says what it leaves out.

The runner writes the cells it was asked for into the run's manifest (`cells`); a run folder
without that list (written before it existed) can only name its failed cells.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness import records
from harness.grid import Cell


@dataclass(frozen=True)
class Gap:
    """One cell and seed without a complete result."""

    cell_id: str
    seed_index: int
    status: str  # "failed" or "missing"
    reason: str

    def line(self) -> str:
        return f"{self.status:<7} {self.cell_id} #s{self.seed_index}: {self.reason}"


def planned(cells: list[Cell], splits: list[str]) -> list[dict]:
    """The manifest's `cells`: what a complete run folder holds a record of."""
    return [{"cell_key": c.key, "cell_id": c.id, "seed_index": c.seed_index, "splits": list(splits)} for c in cells]


def gaps(run_dir: Path) -> list[Gap]:
    """Failed cells first, then missing ones, each in grid order."""
    run_dir = Path(run_dir)
    rows = records.load(run_dir)
    done = {(r["cell_key"], r.get("split")) for r in rows if r.get("status") == "ok"}
    failed = {r["cell_key"]: r for r in rows if r.get("status") == "failed"}
    out = [Gap(r.get("cell_id", "?"), r.get("seed_index", 0), "failed", r.get("error", "no error recorded"))
           for r in failed.values()]
    manifest = run_dir / records.MANIFEST
    expected = json.loads(manifest.read_text()).get("cells", []) if manifest.is_file() else []
    for cell in expected:
        if cell["cell_key"] in failed:
            continue
        absent = [s for s in cell["splits"] if (cell["cell_key"], s) not in done]
        if absent:
            what = "no record" if len(absent) == len(cell["splits"]) else f"no record for split {', '.join(absent)}"
            out.append(Gap(cell["cell_id"], cell["seed_index"], "missing",
                           f"{what} (not run yet, or the run was interrupted: run it again to compute it)"))
    return out


def report_lines(found: list[Gap], where: Path) -> list[str]:
    """A heading line, then one line per failed or missing cell (failed first); [] when none."""
    if not found:
        return []
    failed = sum(g.status == "failed" for g in found)
    heading = f"{failed} failed and {len(found) - failed} missing cell(s) in {where}; the tables leave them out:"
    return [heading, *(f"  {g.line()}" for g in found)]


def markdown(found: list[Gap], where: Path) -> str:
    """The same list as a markdown section (a code block: error messages are not markdown)."""
    if not found:
        return ""
    heading, *lines = report_lines(found, where)
    return "## Failed and missing cells\n\n" + heading + "\n\n```\n" + "\n".join(l[2:] for l in lines) + "\n```\n"
