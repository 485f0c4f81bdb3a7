"""What a Connito validator sees of a miner, read with Connito's own client stack (run with .tools/venv/bin/python).

connito_sdk_read.py URL NETUID HOTKEY COMMIT1_BLOCK COMMIT2_BLOCK LOCAL_DIR
  The miner's two commitments through the Bittensor SDK (bittensor 10.5.0: get_all_commitments at
  the block each was current, as connito/shared/checkpoints.py reads them), parsed by Connito's
  pydantic models (re-declared in connito_commits.py with chain.py's aliases), the signature
  checked with bittensor_wallet's Keypair, and the expert shard fetched with huggingface_hub's
  hf_hub_download at the committed revision (HF_ENDPOINT names the hub), as
  connito/shared/hf_distribute.py does. Prints one JSON object.
"""

import json
import os
import sys

import bittensor as bt
from huggingface_hub import hf_hub_download

from connito_commits import MinerChainCommit, SignedModelHashChainCommit, verify_message


def main(url, netuid, hotkey, block1, block2, local_dir):
    subtensor = bt.Subtensor(network=url)
    raw1 = subtensor.get_all_commitments(netuid, block=block1)[hotkey]
    raw2 = subtensor.get_all_commitments(netuid, block=block2)[hotkey]
    c1 = SignedModelHashChainCommit.model_validate(json.loads(raw1))
    c2 = MinerChainCommit.model_validate(json.loads(raw2))
    filename = f"model_expgroup_{c2.expert_group}.pt"
    hf_hub_download(repo_id=c2.hf_repo_id, filename=filename, revision=c2.hf_revision, local_dir=local_dir)
    return {
        "commit1": c1.model_dump(),
        "commit2": c2.model_dump(),
        "verifies": verify_message(hotkey, c2.model_hash, c1.signed_model_hash),
        "file": os.path.join(local_dir, filename),
    }


if __name__ == "__main__":
    url, netuid, hotkey, b1, b2, local_dir = sys.argv[1:]
    print(json.dumps(main(url, int(netuid), hotkey, int(b1), int(b2), local_dir)))
