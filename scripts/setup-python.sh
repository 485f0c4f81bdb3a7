#!/usr/bin/env bash
# A Python virtualenv (.tools/venv, git-ignored) with the peers our tests check against:
# safetensors + numpy (our checkpoints must load there), datasketch (near-duplicate detection),
# bittensor-wallet (our hotkey loader must read its wallets and agree on addresses and signatures),
# the Bittensor SDK at the versions Connito pins (the devnet must serve what it calls), and
# huggingface_hub (<1, as Connito pins it: our hub transport and local hub must work with it).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=".tools/venv"
REQS="safetensors==0.8.0 numpy==2.2.6 scipy==1.15.3 datasketch==2.0.0 bittensor-wallet==4.1.1 bittensor==10.5.0 async-substrate-interface==2.2.1 huggingface_hub==0.36.2 pydantic==2.14.4 jinja2==3.1.6"
STAMP="$VENV/.minerflow-reqs"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$REQS" ]; then
  exit 0
fi
echo "setup: creating $VENV with $REQS ..." >&2
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check $REQS >&2
echo "$REQS" > "$STAMP"
