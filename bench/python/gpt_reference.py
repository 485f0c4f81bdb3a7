"""The same GPT as model/gpt.ts, in PyTorch: weights by the same names, [in, out] matrices, tied head,
and the same optional mixture-of-experts blocks as model/moe.ts (routing, capacity, gates, aux loss).

  gpt_reference.py interop <checkpoint_dir> <heldout.jsonl> <max_tokens> <batch>
      loads our model.safetensors + manifest.json and prints {"loss": held-out cross-entropy}
      computed with the same windows as model/evaluate.ts.
  gpt_reference.py throughput <config.json>
      trains the same architecture and batch with AdamW on random ids; prints {"tokens_per_sec": …, "blas": …}
      at the faster of 1..threads threads.
"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from blas_check import blas_info


def is_moe_layer(cfg, l):
    moe = cfg.get("moe")
    return bool(moe) and (l + 1) % moe["every"] == 0


def mlp(W, p, x):
    h = F.gelu(x @ W[p + "c_fc.weight"] + W[p + "c_fc.bias"], approximate="tanh")
    return h @ W[p + "c_proj.weight"] + W[p + "c_proj.bias"]


def moe_mlp(W, p, x, moe):
    """Routes the B·T tokens of x [B, T, d] as model/moe.ts does; returns (y, aux)."""
    B, T, d = x.shape
    N, E, k = B * T, moe["experts"], moe["topK"]
    xf = x.reshape(N, d)
    probs = torch.softmax(xf @ W[p + "moe.router.weight"], dim=-1)
    chosen = F.one_hot(torch.topk(probs, k, dim=-1).indices, E).sum(1).to(probs.dtype)  # [N, E] top-k mask
    capacity = math.ceil(moe["capacityFactor"] * N * k / E)
    kept = chosen * (torch.cumsum(chosen, 0) <= capacity)  # first `capacity` tokens per expert, in token order
    top = probs * chosen
    gates = (top if k == 1 else top / top.sum(-1, keepdim=True)) * kept  # Switch for k = 1, Mixtral renorm for k > 1
    y = sum(gates[:, e : e + 1] * mlp(W, f"{p}moe.experts.{e}.", xf) for e in range(E))
    aux = E * ((chosen.sum(0) / (N * k)) * probs.mean(0)).sum()
    return y.reshape(B, T, d), aux


def forward(W, cfg, ids):
    """Logits [B, T, V] and the load-balancing loss averaged over MoE layers (0 for a dense model)."""
    B, T = ids.shape
    d, H = cfg["dModel"], cfg["nHead"]
    hd = d // H
    x = W["wte"][ids] + W["wpe"][:T]
    mask = torch.triu(torch.full((T, T), -1e9), 1)
    auxes = []
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
        if is_moe_layer(cfg, l):
            y, aux = moe_mlp(W, p, m, cfg["moe"])
            x = x + y
            auxes.append(aux)
        else:
            x = x + mlp(W, p + "mlp.", m)
    x = ln(x, "ln_f")
    return x @ W["wte"].T, (sum(auxes) / len(auxes) if auxes else torch.zeros(()))


def weight_shapes(cfg):
    d, V, T = cfg["dModel"], cfg["vocabSize"], cfg["seqLen"]
    shapes = {"wte": (V, d), "wpe": (T, d), "ln_f.weight": (d,), "ln_f.bias": (d,)}
    for l in range(cfg["nLayer"]):
        p = f"h.{l}."
        shapes.update({p + "ln_1.weight": (d,), p + "ln_1.bias": (d,), p + "attn.c_attn.weight": (d, 3 * d), p + "attn.c_attn.bias": (3 * d,),
                       p + "attn.c_proj.weight": (d, d), p + "attn.c_proj.bias": (d,), p + "ln_2.weight": (d,), p + "ln_2.bias": (d,)})
        mlps = [p + "mlp."]
        if is_moe_layer(cfg, l):
            shapes[p + "moe.router.weight"] = (d, cfg["moe"]["experts"])
            mlps = [f"{p}moe.experts.{e}." for e in range(cfg["moe"]["experts"])]
        for q in mlps:
            shapes.update({q + "c_fc.weight": (d, 4 * d), q + "c_fc.bias": (4 * d,), q + "c_proj.weight": (4 * d, d), q + "c_proj.bias": (d,)})
    return shapes


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
            logits, _ = forward(W, cfg, ids)  # held-out loss is cross-entropy only, as evaluate.ts
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1)).item() * len(b)
    print(json.dumps({"loss": total / len(starts), "tokens": len(starts) * T, "blas": blas_info()}))


def throughput(cfg_path):
    """Tokens/s at the faster of 1..threads intra-op threads (on a busy host 2 OpenBLAS threads can be
    several times slower than 1), each count timed on its own fresh model and optimizer."""
    c = json.load(open(cfg_path))
    blas = blas_info()  # before the clock: refuses the reference BLAS
    by_threads = {n: train_tokens_per_sec(c, n) for n in range(1, c.get("threads", 2) + 1)}
    best = max(by_threads, key=by_threads.get)
    print(json.dumps({"tokens_per_sec": by_threads[best], "threads": best, "by_threads": by_threads, "torch": torch.__version__, "blas": blas}))


def train_tokens_per_sec(c, threads):
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    V, T = c["vocabSize"], c["seqLen"]
    W = {}
    for n, s in weight_shapes(c).items():
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
        logits, aux = forward(W, c, ids)
        loss = F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1))
        if c.get("moe"):
            loss = loss + c["moe"]["auxLossWeight"] * aux
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(W.values(), 1.0)
        opt.step()
    return steps * B * T / (time.perf_counter() - t0)


if __name__ == "__main__":
    if sys.argv[1] == "interop":
        interop(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        throughput(sys.argv[2])
