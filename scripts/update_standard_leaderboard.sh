#!/usr/bin/env bash
# Regenerate leaderboards/standard/ by running the standard grid (never edit it by hand).
# Usage: scripts/update_standard_leaderboard.sh [RUN_DIR]
# With an existing RUN_DIR (e.g. a finished `harness run standard`), only the publishing runs.
# The baseline's drift term needs RUN_DIR-drift, the grid rerun under another ISA
# (scripts/drift_run.sh, cold: about as long as the run itself); it is made when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:-runs/standard}"
board=leaderboards/standard
cache="${HARNESS_CACHE:-$HOME/.cache/harness}"
if [ ! -f "$run/results.jsonl" ]; then
  .venv/bin/harness run standard --out "$run" --cache "$cache" --quiet
fi
# built beside the old folder and swapped in, so the folder holds exactly this run and a failed
# update leaves the old one in place (--publish itself only writes into a new or empty folder,
# or one it wrote before)
next="$board.next"
rm -rf "$next"
status=0
.venv/bin/harness leaderboard "$run" --publish "$next" || status=$?
if [ "$status" -gt 1 ]; then exit "$status"; fi   # 1: failed or missing cells, listed above and in README.md
cp -r "$run/predictions" "$next/predictions"      # significance of merged rows needs them
if [ ! -f "$run-drift/results.jsonl" ]; then
  scripts/drift_run.sh standard "$run-drift"
fi
.venv/bin/harness baseline "$run" --drift-run "$run-drift" --output "$next/baseline.csv"   # `harness check RUN --baseline` reads it
rm -rf "$board"
mv "$next" "$board"
.venv/bin/harness report "$run" || [ $? -eq 1 ]   # writes $run/report.html (plots, sample grids; ~16 MB, not committed)
echo "updated $board from $run"
