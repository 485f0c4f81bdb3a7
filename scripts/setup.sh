#!/usr/bin/env bash
# One idempotent setup step behind `npm run demo`, `npm test` and `npm run bench`:
# installs npm dependencies when they are missing or stale, then builds the Temporal CLI once.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies..." >&2
  npm ci --no-audit --no-fund >&2
fi
if [ -z "${MINERFLOW_TEMPORAL_BIN:-}" ]; then
  bash scripts/setup-temporal.sh
fi
