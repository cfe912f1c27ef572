#!/usr/bin/env bash
# Run a grid again as another machine would compute it: oneDNN kernels limited to another ISA
# (SSE4.1 unless DRIFT_ISA says otherwise), one OpenMP/BLAS thread, and a private cache that is
# removed afterwards (cache keys do not include the ISA, so a shared cache would hand back the
# first run's artifacts). `harness baseline RUN --drift-run OUT` turns the difference into the
# baseline's drift term (docs/reliability.md).
# Usage: scripts/drift_run.sh GRID OUT [more `harness run` options]
set -euo pipefail
harness="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/harness"
grid="$1"
out="$2"
shift 2
cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT
ONEDNN_MAX_CPU_ISA="${DRIFT_ISA:-SSE41}" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
  "$harness" run "$grid" --out "$out" --cache "$cache" --quiet "$@"
