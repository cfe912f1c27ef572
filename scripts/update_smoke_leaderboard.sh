#!/usr/bin/env bash
# Regenerate leaderboards/smoke.* by running the smoke grid (never edit them by hand).
# The CSV is the CI regression baseline: `harness check RUN --baseline leaderboards/smoke.csv`.
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:-runs/smoke-leaderboard}"
cache="${HARNESS_CACHE:-$HOME/.cache/harness}"
rm -rf "$run"
.venv/bin/harness run smoke --out "$run" --cache "$cache" --quiet
.venv/bin/harness baseline "$run" --output leaderboards/smoke.csv
.venv/bin/harness leaderboard "$run" --output leaderboards/smoke.md
cp "$run/manifest.json" leaderboards/smoke.manifest.json
cp "$run/results.jsonl" leaderboards/smoke.results.jsonl
echo "updated leaderboards/smoke.{csv,md,manifest.json,results.jsonl} from $run"
