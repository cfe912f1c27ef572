#!/usr/bin/env bash
# Regenerate leaderboards/smoke.* by running the smoke grid (never edit them by hand).
# The CSV is the CI regression baseline: `harness check RUN --baseline leaderboards/smoke.csv`.
# Its drift term comes from a second, cold run of the grid under another oneDNN ISA and thread
# count (scripts/drift_run.sh); the two runs take a few minutes each on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:-runs/smoke-leaderboard}"
drift_run="$run-drift"
cache="${HARNESS_CACHE:-$HOME/.cache/harness}"
rm -rf "$run" "$drift_run"
.venv/bin/harness run smoke --out "$run" --cache "$cache" --quiet
scripts/drift_run.sh smoke "$drift_run"
.venv/bin/harness baseline "$run" --drift-run "$drift_run" --output leaderboards/smoke.csv
.venv/bin/harness leaderboard "$run" --metrics all --output leaderboards/smoke.md
cp "$run/manifest.json" leaderboards/smoke.manifest.json
cp "$run/results.jsonl" leaderboards/smoke.results.jsonl
echo "updated leaderboards/smoke.{csv,md,manifest.json,results.jsonl} from $run (drift from $drift_run)"
