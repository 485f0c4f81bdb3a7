#!/usr/bin/env bash
# A Python virtualenv (.tools/venv, git-ignored) with the peers our tests check against:
# safetensors + numpy (our checkpoints must load there), datasketch (near-duplicate detection),
# bittensor-wallet (our hotkey loader must read its wallets and agree on addresses and signatures),
# the Bittensor SDK at the versions Connito pins (the devnet must serve what it calls), and
# huggingface_hub (<1, as Connito pins it: our hub transport and local hub must work with it), and
# jinja2 (chat templates rendered as transformers renders them, to check ours against).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=".tools/venv"
REQS="safetensors==0.8.0 numpy==2.2.6 scipy==1.15.3 datasketch==2.0.0 bittensor-wallet==4.1.1 bittensor==10.5.0 async-substrate-interface==2.2.1 huggingface_hub==0.36.2 pydantic==2.14.4 jinja2==3.1.6"
make_venv() { # folder, requirements: (re)made when the requirements changed
  local venv="$1" reqs="$2" stamp="$1/.minerflow-reqs"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$reqs" ]; then return 0; fi
  echo "setup: creating $venv with $reqs ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check $reqs >&2
  echo "$reqs" > "$stamp"
}
make_venv "$VENV" "$REQS"
# fiber, the signing library of Gradients' validators and miners, signs with substrate-interface
# (fiber pins 1.7.10). Its scalecodec would overwrite the files of cyscale (bittensor's scalecodec)
# in the venv above, so it gets its own.
make_venv ".tools/venv-fiber" "substrate-interface==1.7.10 eth-typing==5.0.0"
