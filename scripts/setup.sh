#!/usr/bin/env bash
# One idempotent setup step behind `npm run demo`, `npm test` and `npm run bench`: installs npm
# dependencies when missing or stale, builds the Temporal CLI once, and with --with-python
# prepares the Python peers the tests compare against.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies..." >&2
  # `npm install` (not `npm ci`): it installs the locked versions, and unlike `npm ci` it does not
  # reject a lock file that lacks entries for other platforms' optional packages (@swc/core-*).
  npm install --no-audit --no-fund >&2
fi
bash scripts/setup-metadata.sh
# The trainer's native CPU backend (tfjs-node on PyPI's libtensorflow); without it, training runs on wasm.
bash scripts/setup-tfjs-node.sh || echo "setup: tfjs-node could not be built (above); training will use the wasm backend" >&2
if [ "${1:-}" = "--with-python" ]; then
  # For tests and benchmarks: the Python peers (the Bittensor SDK, huggingface_hub, PyTorch with
  # OpenBLAS), and Temporal's time-skipping test server (Java).
  bash scripts/setup-python.sh
  bash scripts/setup-torch.sh
  bash scripts/setup-test-server.sh
fi
if [ -z "${MINERFLOW_TEMPORAL_BIN:-}" ]; then
  bash scripts/setup-temporal.sh
fi
