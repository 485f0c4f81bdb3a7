"""Reads minerflow's commitments the way Connito does (run with .tools/venv/bin/python).

The pydantic models, their field aliases and serialize_chain_status / validate_chain_commit_payload
are re-declared from Connito-AI/Connito@0c936fa connito/shared/chain.py; b64url_decode_nopad and
verify_message from connito/shared/schema.py. Input on stdin (JSON): {"hotkey", "hash", "commit1",
"commit2"}. Output on stdout (JSON): what Connito finds in each commitment, and a validator's
commit 2 serialised by Connito's own code, for our decoder to read.
"""

import base64
import json
import sys

from bittensor_wallet import Keypair
from pydantic import BaseModel, ConfigDict, Field

CHAIN_COMMIT_MAX_BYTES = 128
CHAIN_COMMIT_MAX_HF_REPO_ID_CHARS = 32


class WorkerChainCommit(BaseModel):
    pass


class SignedModelHashChainCommit(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    signed_model_hash: str | None = Field(default=None, alias="m")


class ValidatorChainCommit(WorkerChainCommit):
    model_config = ConfigDict(populate_by_name=True)
    model_hash: str | None = Field(default=None, alias="h")
    global_ver: int | None = Field(default=None, alias="v")
    expert_group: int | None = Field(default=None, alias="e")
    miner_seed: int | None = Field(default=None, alias="s")
    hf_repo_id: str | None = Field(default=None, alias="r")
    hf_revision: str | None = Field(default=None, alias="rv")


class MinerChainCommit(WorkerChainCommit):
    model_config = ConfigDict(populate_by_name=True)
    block: int | None = Field(default=None, alias="b")
    expert_group: int | None = Field(default=None, alias="e")
    signed_model_hash: str | None = Field(default=None, alias="m")
    model_hash: str | None = Field(default=None, alias="h")
    global_ver: int | None = Field(default=None, alias="v")
    inner_opt: int | None = Field(default=None, alias="i")
    hf_repo_id: str | None = Field(default=None, alias="r")
    hf_revision: str | None = Field(default=None, alias="rv")


def serialize_chain_status(status):
    data_dict = status.model_dump(by_alias=True, exclude_none=True)
    data = json.dumps(data_dict, separators=(",", ":"))
    return data_dict, data


def validate_chain_commit_payload(status):
    data_dict, data = serialize_chain_status(status)
    hf_repo_id = getattr(status, "hf_repo_id", None)
    if hf_repo_id and len(hf_repo_id) > CHAIN_COMMIT_MAX_HF_REPO_ID_CHARS:
        raise ValueError("HF repo id is too long for the chain payload budget")
    if len(data.encode()) > CHAIN_COMMIT_MAX_BYTES:
        raise ValueError("Chain commit exceeds payload budget")
    return data_dict, data


def b64url_decode_nopad(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify_message(origin_hotkey_ss58: str, message, signature_hex: str) -> bool:
    return Keypair(ss58_address=origin_hotkey_ss58).verify(message, b64url_decode_nopad(signature_hex))


def main():
    given = json.load(sys.stdin)
    # get_chain_commits: json.loads the commitment, then model_validate (signature_commit=True for commit 1)
    c1 = SignedModelHashChainCommit.model_validate(json.loads(given["commit1"]))
    c2 = MinerChainCommit.model_validate(json.loads(given["commit2"]))
    _, reserialized = validate_chain_commit_payload(c2)
    validator = ValidatorChainCommit(
        model_hash=given["hash"], global_ver=4660, expert_group=3, miner_seed=11,
        hf_repo_id="connito-val/global-3", hf_revision="abcdef0",
    )
    _, validator_text = validate_chain_commit_payload(validator)
    print(json.dumps({
        "commit1": {
            "signed_model_hash": c1.signed_model_hash,
            "verifies": verify_message(given["hotkey"], c2.model_hash, c1.signed_model_hash),
            "verifies_other_hash": verify_message(given["hotkey"], "0" * 48, c1.signed_model_hash),
        },
        "commit2": c2.model_dump(),
        "commit2_as_connito_writes_it": reserialized,
        "validator_commit2": validator_text,
    }))


if __name__ == "__main__":
    main()
