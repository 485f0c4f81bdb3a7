"""The Bittensor Python SDK (Connito's pins: bittensor 10.5.0, async-substrate-interface 2.2.1)
against the devnet. Run by test/sdk.test.ts; prints one JSON object for it to check, on the line that starts with
"sdk_check result: ".

  sdk_check.py read URL NETUID BLOCK
      subtensor.block, subnet_exists, get_all_commitments, metagraph, get_metagraph_info,
      neurons, neuron_for_uid, is_hotkey_registered, get_uid_for_hotkey_on_subnet,
      get_commitment and tempo at BLOCK
  sdk_check.py commit URL NETUID WALLETS_DIR WALLET HOTKEY DATA
      set_commitment signed by the wallet's hotkey: success, message and the extrinsic's block
"""

import json
import sys

import bittensor as bt
from bittensor_wallet import Wallet

RESULT_MARK = "sdk_check result: "


def read(subtensor: bt.Subtensor, netuid: int, block: int) -> dict:
    metagraph = subtensor.metagraph(netuid, block=block)
    neurons = [subtensor.neuron_for_uid(uid, netuid, block=block) for uid in range(int(metagraph.n))]
    info = subtensor.get_metagraph_info(netuid, block=block)
    return {
        "block": subtensor.block,
        "subnet_exists": subtensor.subnet_exists(netuid, block=block),
        "commitments": subtensor.get_all_commitments(netuid, block=block),
        "metagraph": {
            "block": int(metagraph.block),
            "n": int(metagraph.n),
            "uids": [int(u) for u in metagraph.uids],
            "hotkeys": list(metagraph.hotkeys),
            "coldkeys": list(metagraph.coldkeys),
            "stake": [float(s) for s in metagraph.stake],
            "last_update": [int(b) for b in metagraph.last_update],
            "incentive": [float(i) for i in metagraph.incentive],
        },
        "metagraph_info": {
            "netuid": info.netuid,
            "num_uids": info.num_uids,
            "tempo": info.tempo,
            "block": info.block,
            "hotkeys": list(info.hotkeys),
            "incentives": [float(i) for i in info.incentives],
            "total_stake": [float(s) for s in info.total_stake],
        },
        "full_neuron_hotkeys": [n.hotkey for n in subtensor.neurons(netuid, block=block)],
        # What a miner or validator asks about one hotkey.
        "by_hotkey": {
            hotkey: {
                "registered": subtensor.is_hotkey_registered(hotkey, netuid, block=block),
                "uid": subtensor.get_uid_for_hotkey_on_subnet(hotkey, netuid, block=block),
                "commitment": subtensor.get_commitment(netuid, uid, block=block),
            }
            for uid, hotkey in enumerate(metagraph.hotkeys)
        },
        "tempo": subtensor.tempo(netuid, block=block),
        "neurons": [
            {
                "uid": n.uid,
                "hotkey": n.hotkey,
                "coldkey": n.coldkey,
                "is_null": n.is_null,
                "stake": float(n.total_stake),
                "incentive": float(n.incentive),
                "last_update": int(n.last_update),
            }
            for n in neurons
        ],
    }


def commit(subtensor: bt.Subtensor, netuid: int, wallets: str, wallet: str, hotkey: str, data: str) -> dict:
    response = subtensor.set_commitment(Wallet(name=wallet, hotkey=hotkey, path=wallets), netuid, data)
    receipt = response.extrinsic_receipt
    return {
        "success": bool(response.success),
        "message": response.message,
        "error": None if response.error is None else str(response.error),
        "block_hash": receipt.block_hash if receipt is not None else None,
    }


def main() -> None:
    action, url, netuid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    subtensor = bt.Subtensor(network=url)
    try:
        if action == "read":
            result = read(subtensor, netuid, int(sys.argv[4]))
        elif action == "commit":
            result = commit(subtensor, netuid, *sys.argv[4:8])
        else:
            raise SystemExit(f"unknown action {action!r}: use read or commit")
    finally:
        subtensor.close()
    # The SDK logs to stdout too: the result is the line that starts with RESULT_MARK.
    print(RESULT_MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
