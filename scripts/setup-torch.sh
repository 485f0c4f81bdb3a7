#!/usr/bin/env bash
# The benchmarks' PyTorch reference: Debian's python3-torch (CPU, OpenBLAS), plus a virtualenv
# (.tools/venv-torch) that sees it and adds safetensors. Needs root for apt-get; run once.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "setup: installing Debian's python3-torch (a few minutes, first run only)..." >&2
  if [ "$(id -u)" != 0 ]; then echo "setup: python3-torch is missing and installing it needs root: sudo apt-get install python3-torch" >&2; exit 1; fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >&2
fi
VENV=".tools/venv-torch"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import safetensors, torch' 2>/dev/null; then
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check safetensors==0.8.0 >&2
fi
