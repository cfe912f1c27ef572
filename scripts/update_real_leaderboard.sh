#!/usr/bin/env bash
# Regenerate leaderboards/real/ by running the standard-real grid on the real data (never edit it by hand).
# Usage: scripts/update_real_leaderboard.sh [RUN_DIR [HARNESS_RUN_OPTIONS...]]
# e.g. scripts/update_real_leaderboard.sh runs/standard-real --only generator=none,oversample publishes
# a part of the grid; its manifest.json records the --only.
# The data are found as the grid's loaders find them: $HARNESS_DATA/{isic2017,covid-chestxray}, or
# ../shared/data beside the checkout. The run resumes: an interrupted or finished RUN_DIR keeps its
# cells, so with a finished one only the publishing runs.
# No baseline.csv: CI has no real data, so no `harness check` gates on this board.
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:-runs/standard-real}"
shift || true
board=leaderboards/real
cache="${HARNESS_CACHE:-$HOME/.cache/harness}"
status=0
.venv/bin/harness run standard-real --out "$run" --cache "$cache" --quiet "$@" || status=$?
if [ "$status" -gt 1 ]; then exit "$status"; fi   # 1: some cells failed; they are published as failed
# built beside the old folder and swapped in, so the folder holds exactly this run and a failed
# update leaves the old one in place
next="$board.next"
rm -rf "$next"
status=0
.venv/bin/harness leaderboard "$run" --publish "$next" || status=$?
if [ "$status" -gt 1 ]; then exit "$status"; fi   # 1: failed or missing cells, listed above and in README.md
cp -r "$run/predictions" "$next/predictions"      # significance of merged rows needs them
rm -rf "$board"
mv "$next" "$board"
echo "updated $board from $run"
