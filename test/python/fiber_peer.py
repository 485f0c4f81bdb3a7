# A validator the way fiber's client signs (fiber/validator/client.py, fiber/chain/signatures.py),
# with an sr25519 Keypair from substrate-interface (what fiber imports) or bittensor-wallet:
#   fiber_peer.py request <lib> <seed hex> <miner url> <miner hotkey> <POST|GET> <endpoint> [json payload]
#     signs and sends one request with urllib; prints {"address", "status", "body"}
#   fiber_peer.py verify <lib> <ss58> <message> <0x signature>
#     prints whether the signature verifies
import hashlib
import json
import random
import string
import sys
import time
import urllib.error
import urllib.request


def keypair_class(lib):
    if lib == "substrateinterface":
        from substrateinterface import Keypair, KeypairType

        return lambda **kw: Keypair(crypto_type=KeypairType.SR25519, **kw), lambda seed: Keypair.create_from_seed(
            seed, crypto_type=KeypairType.SR25519
        )
    from bittensor_wallet import Keypair

    return lambda **kw: Keypair(**kw), Keypair.create_from_seed


def main():
    mode, lib = sys.argv[1], sys.argv[2]
    make, from_seed = keypair_class(lib)
    if mode == "verify":
        ss58, message, signature = sys.argv[3:6]
        print(json.dumps({"valid": make(ss58_address=ss58).verify(message, signature)}))
        return
    seed, url, miner, method, endpoint = sys.argv[3:8]
    kp = from_seed(seed)
    # fiber's generate_nonce and construct_header_signing_message; a GET signs no body hash.
    nonce = f"{time.time_ns()}_{''.join(random.choices(string.ascii_letters + string.digits, k=10))}"
    body = json.dumps(json.loads(sys.argv[8])).encode() if method == "POST" else None
    message = f"{nonce}:{miner}:{hashlib.sha256(body).hexdigest()}" if body is not None else f"{nonce}:{miner}"
    headers = {
        "Content-Type": "application/json",
        "validator-hotkey": kp.ss58_address,
        "miner-hotkey": miner,
        "nonce": nonce,
        "signature": f"0x{kp.sign(message).hex()}",
    }
    req = urllib.request.Request(url + endpoint, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, text = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    print(json.dumps({"address": kp.ss58_address, "status": status, "body": text.decode()}))


main()
