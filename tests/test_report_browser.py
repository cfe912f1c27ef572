"""report.html in a real headless browser (the system's Chromium through playwright): at a
1,280 px window nothing is wider than the window, tables scroll inside their own box, every
plot loads, and a full-page screenshot is taken (kept where HARNESS_REPORT_SHOT names a file)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from report_toys import GRID, TOY_PLUGINS

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")

WIDTH = 1280
CHROMIUM = next((path for path in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if path), None)


#: every <table> whose nearest scrolling ancestor is missing or wider than the window
TABLES_NOT_IN_SCROLL_BOX = """(width) => [...document.querySelectorAll('table')].filter(table => {
  for (let box = table.parentElement; box; box = box.parentElement) {
    const overflow = getComputedStyle(box).overflowX;
    if (overflow === 'auto' || overflow === 'scroll') return box.getBoundingClientRect().right > width;
  }
  return true;
}).length"""
#: every element whose right edge is past the window (scrolled content inside a scroll box excepted)
OVERFLOWING = """(width) => [...document.body.querySelectorAll('*')].filter(el => {
  for (let box = el.parentElement; box; box = box.parentElement) {
    const overflow = getComputedStyle(box).overflowX;
    if (overflow === 'auto' || overflow === 'scroll') return false;
  }
  return el.getBoundingClientRect().right > width;
}).map(el => el.tagName + ' ' + Math.round(el.getBoundingClientRect().right))"""


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine: `apt-get install chromium` (Debian) "
                                             "to run the report's browser test")
def test_report_fits_a_1280px_window_in_chromium(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    out = tmp_path / "browser-run"
    assert main(["run", str(grid), "--out", str(out), "--cache", str(tmp_path / "cache"), "--plugins", TOY_PLUGINS,
                 "--quiet"]) == 0
    assert main(["report", str(out)]) == 0
    shot = Path(os.environ.get("HARNESS_REPORT_SHOT") or tmp_path / "report.png")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        page.goto((out / "report.html").as_uri())
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")  # tables laid out
        assert page.title() == "browser-run"
        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
        assert page.evaluate(OVERFLOWING, WIDTH) == []
        assert page.evaluate(TABLES_NOT_IN_SCROLL_BOX, WIDTH) == 0
        assert page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).length") == 0
        assert page.evaluate("document.images.length") >= 3 + 2 * 3  # forests; per table scatter and group bars
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
