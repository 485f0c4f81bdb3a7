"""The same GPT as model/gpt.ts, in PyTorch: weights by the same names, [in, out] matrices, tied head.

  gpt_reference.py interop <checkpoint_dir> <heldout.jsonl> <max_tokens> <batch>
      loads our model.safetensors + manifest.json and prints {"loss": held-out cross-entropy}
      computed with the same windows as model/evaluate.ts.
  gpt_reference.py throughput <config.json>
      trains the same architecture and batch with AdamW on random bytes; prints {"tokens_per_sec": …}.
"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file


def forward(W, cfg, ids):
    B, T = ids.shape
    d, H = cfg["dModel"], cfg["nHead"]
    hd = d // H
    x = W["wte"][ids] + W["wpe"][:T]
    mask = torch.triu(torch.full((T, T), -1e9), 1)
    ln = lambda t, p: F.layer_norm(t, (d,), W[p + ".weight"], W[p + ".bias"], 1e-5)
    for l in range(cfg["nLayer"]):
        p = f"h.{l}."
        a = ln(x, p + "ln_1")
        qkv = a @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]
        q, k, v = (t.view(B, T, H, hd).transpose(1, 2) for t in qkv.split(d, dim=-1))
        att = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, d)
        x = x + y @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
        m = ln(x, p + "ln_2")
        h = F.gelu(m @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"], approximate="tanh")
        x = x + h @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
    x = ln(x, "ln_f")
    return x @ W["wte"].T


def interop(ckpt_dir, heldout_path, max_tokens, batch):
    cfg = json.load(open(f"{ckpt_dir}/manifest.json"))["model"]
    W = load_file(f"{ckpt_dir}/model.safetensors")
    text = "".join(json.loads(l)["text"] + "\n\n" for l in open(heldout_path, encoding="utf-8") if l.strip())
    tokens = torch.tensor(list(text.encode("utf-8")), dtype=torch.long)
    T = cfg["seqLen"]
    starts = []
    s = 0
    while s + T + 1 <= len(tokens) and (len(starts) + 1) * T <= max_tokens:
        starts.append(s)
        s += T
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(starts), batch):
            b = starts[i : i + batch]
            ids = torch.stack([tokens[j : j + T] for j in b])
            tgt = torch.stack([tokens[j + 1 : j + T + 1] for j in b])
            logits = forward(W, cfg, ids)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1)).item() * len(b)
    print(json.dumps({"loss": total / len(starts), "tokens": len(starts) * T}))


def throughput(cfg_path):
    c = json.load(open(cfg_path))
    torch.manual_seed(0)
    torch.set_num_threads(c.get("threads", 2))
    d, V, T, L = c["dModel"], c["vocabSize"], c["seqLen"], c["nLayer"]
    shapes = {"wte": (V, d), "wpe": (T, d), "ln_f.weight": (d,), "ln_f.bias": (d,)}
    for l in range(L):
        p = f"h.{l}."
        shapes.update({p + "ln_1.weight": (d,), p + "ln_1.bias": (d,), p + "attn.c_attn.weight": (d, 3 * d), p + "attn.c_attn.bias": (3 * d,),
                       p + "attn.c_proj.weight": (d, d), p + "attn.c_proj.bias": (d,), p + "ln_2.weight": (d,), p + "ln_2.bias": (d,),
                       p + "mlp.c_fc.weight": (d, 4 * d), p + "mlp.c_fc.bias": (4 * d,), p + "mlp.c_proj.weight": (4 * d, d), p + "mlp.c_proj.bias": (d,)})
    W = {}
    for n, s in shapes.items():
        t = torch.ones(s) if n.endswith("ln_1.weight") or n.endswith("ln_2.weight") or n == "ln_f.weight" else (torch.zeros(s) if n.endswith(".bias") else torch.randn(s) * 0.02)
        W[n] = t.requires_grad_()
    opt = torch.optim.AdamW(W.values(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    data = torch.randint(0, V, (1 << 20,))
    B, steps, warm = c["batchSize"], c["steps"], c.get("warmup", 5)
    for i in range(steps + warm):
        if i == warm:
            t0 = time.perf_counter()
        ix = torch.randint(0, len(data) - T - 1, (B,))
        ids = torch.stack([data[j : j + T] for j in ix])
        tgt = torch.stack([data[j + 1 : j + T + 1] for j in ix])
        loss = F.cross_entropy(forward(W, c, ids).reshape(-1, V), tgt.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(W.values(), 1.0)
        opt.step()
    dt = time.perf_counter() - t0
    print(json.dumps({"tokens_per_sec": steps * B * T / dt, "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    if sys.argv[1] == "interop":
        interop(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        throughput(sys.argv[2])
