#!/usr/bin/env bash
# PyTorch for the benchmarks' references, the PyTorch miner and the Python interop tests: Debian's
# python3-torch with OpenBLAS (libopenblas0-pthread). Without it Debian links torch to the netlib
# reference BLAS, 3-5x slower than any install a PyTorch user has (pip wheels bring MKL), and a
# benchmark against it flatters us. A virtualenv (.tools/venv-torch) sees that torch and adds
# safetensors and PyYAML. Needs root for apt-get; runs once.
set -euo pipefail
cd "$(dirname "$0")/.."
apt_install() {
  if [ "$(id -u)" != 0 ]; then echo "setup: $* missing and installing needs root: sudo apt-get install $*" >&2; exit 1; fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null || ! dpkg -s libopenblas0-pthread >/dev/null 2>&1; then
  echo "setup: installing Debian's python3-torch with OpenBLAS (a few minutes, first run only)..." >&2
  apt_install python3-torch libopenblas0-pthread
fi
VENV=".tools/venv-torch"
REQS="safetensors==0.8.0 pyyaml==6.0.2"
STAMP="$VENV/.minerflow-reqs"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$REQS" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $REQS >&2
  echo "$REQS" > "$STAMP"
fi
