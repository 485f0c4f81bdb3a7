# Held-out loss of a checkpoint the way minerflow's validator computes it (model/evaluate.ts): the
# held-out documents as one byte stream, non-overlapping windows of seqLen from its start, mean
# next-token cross-entropy (nats/token) over at most --max-tokens scored tokens. Prints one JSON line
# {"loss": …, "tokens": …}. An empty --checkpoint scores the untrained model (model.seed).
#   python miners/torch/evaluate.py --path <config.yaml> --checkpoint <dir> --heldout <split.jsonl>
import argparse
import json
import math

import torch

from common import device_for, get, load_config, load_state_dict, model_config, read_bytes
from model import Gpt, cross_entropy


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", required=True)
    parser.add_argument("--checkpoint", default="")
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--max-tokens", type=int, default=16384)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    cfg = load_config(args.path)
    mcfg = model_config(cfg)
    device = device_for(cfg)
    torch.manual_seed(int(get(cfg, "model.seed", 0)))
    model = Gpt(mcfg).to(device)
    if args.checkpoint:
        model.load_state_dict(load_state_dict(args.checkpoint))
    model.eval()
    data = read_bytes(args.heldout, get(cfg, "task.exp.data.text_column", "text"))
    T = mcfg["seqLen"]
    starts = [s for s in range(0, len(data) - T, T)][: args.max_tokens // T]
    if not starts:
        raise SystemExit(f"{args.heldout}: {len(data)} tokens; at least {T + 1} (the sequence length + 1) are needed")
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(starts), args.batch_size):
            w = torch.stack([data[s : s + T + 1] for s in starts[i : i + args.batch_size]]).to(device)
            logits, _ = model(w[:, :-1])
            total += cross_entropy(logits, w[:, 1:]).item() * w.shape[0]
    loss = total / len(starts)  # strict JSON: weights that blew up score null, not a bare NaN
    print(json.dumps({"loss": loss if math.isfinite(loss) else None, "tokens": len(starts) * T}), flush=True)


if __name__ == "__main__":
    main()
