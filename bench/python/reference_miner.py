"""The reference miner for `npm run bench -- deadline`: plain PyTorch, the standard recipe, no curation.

  reference_miner.py <config.json>

Trains the same GPT as model/gpt.ts (gpt_reference.forward, GPT-2 init) on a token file written by
the bench with our tokenizer (raw little-endian uint8 or uint16 ids of the raw, uncurated corpus):
AdamW lr 3e-4, betas 0.9/0.95, weight decay 0.1 on matrices, linear warmup then cosine to zero,
gradient clipping at 1.0, random windows. The budget is wall clock, so the cosine runs on elapsed
time, not on a step count nobody knows in advance. Saves safetensors checkpoints (our tensor names)
at regular wall-time intervals and a last one at the deadline; prints one JSON line per checkpoint
and a final summary {"checkpoints": [...], "steps": …, "tokens": …, "seconds": …}.
"""
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blas_check import blas_info  # noqa: E402
from gpt_reference import forward  # noqa: E402  (the same model the interop bench checks)


def init_weights(c, seed):
    d, V, T, L = c["dModel"], c["vocabSize"], c["seqLen"], c["nLayer"]
    shapes = {"wte": (V, d), "wpe": (T, d), "ln_f.weight": (d,), "ln_f.bias": (d,)}
    for l in range(L):
        p = f"h.{l}."
        shapes.update({p + "ln_1.weight": (d,), p + "ln_1.bias": (d,), p + "attn.c_attn.weight": (d, 3 * d), p + "attn.c_attn.bias": (3 * d,),
                       p + "attn.c_proj.weight": (d, d), p + "attn.c_proj.bias": (d,), p + "ln_2.weight": (d,), p + "ln_2.bias": (d,),
                       p + "mlp.c_fc.weight": (d, 4 * d), p + "mlp.c_fc.bias": (4 * d,), p + "mlp.c_proj.weight": (4 * d, d), p + "mlp.c_proj.bias": (d,)})
    g = torch.Generator().manual_seed(seed)
    W = {}
    for n, s in shapes.items():
        if n.endswith(("ln_1.weight", "ln_2.weight")) or n == "ln_f.weight":
            t = torch.ones(s)
        elif n.endswith(".bias"):
            t = torch.zeros(s)
        else:  # GPT-2: N(0, 0.02), residual projections scaled by 1/sqrt(2·nLayer)
            std = 0.02 / math.sqrt(2 * L) if n.endswith("c_proj.weight") else 0.02
            t = torch.randn(s, generator=g) * std
        W[n] = t.requires_grad_()
    return W


def main(cfg_path):
    c = json.load(open(cfg_path))
    blas = blas_info()  # refuses to race on the netlib reference BLAS
    dtype = np.uint16 if c["tokenBytes"] == 2 else np.uint8
    data = torch.from_numpy(np.fromfile(c["tokens"], dtype=dtype).astype(np.int64))
    T, B, V = c["seqLen"], c["batchSize"], c["vocabSize"]
    if len(data) < T + 2:
        raise SystemExit(f"token file {c['tokens']} has {len(data)} tokens; need at least {T + 2}")
    W = init_weights(c, c.get("seed", 0))
    decay = [w for n, w in W.items() if w.dim() >= 2]
    no_decay = [w for n, w in W.items() if w.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": c["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=c["learningRate"], betas=(c["beta1"], c["beta2"]))
    gen = torch.Generator().manual_seed(c.get("seed", 0) + 1)
    budget, warmup, every = c["seconds"], c["warmupSteps"], c["checkpointEverySeconds"]
    os.makedirs(c["outDir"], exist_ok=True)
    checkpoints = []

    def save(step, elapsed):
        f = os.path.join(c["outDir"], f"step-{step:06d}.safetensors")
        save_file({n: w.detach().contiguous() for n, w in W.items()}, f)
        rec = {"file": f, "step": step, "tokens": step * B * T, "seconds": elapsed}
        checkpoints.append(rec)
        print(json.dumps(rec), flush=True)

    def batch():
        ix = torch.randint(0, len(data) - T - 1, (B,), generator=gen)
        return torch.stack([data[j : j + T] for j in ix]), torch.stack([data[j + 1 : j + T + 1] for j in ix])

    def loss_of(ids, tgt):
        out = forward(W, c, ids)
        logits = out[0] if isinstance(out, tuple) else out  # (logits, MoE aux loss) in newer gpt_reference
        return F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1))

    # Before the clock starts: the faster of 1..threads intra-op threads on this machine now (on a
    # busy host, 2 OpenBLAS threads can be 3x slower than 1). Gradients only; weights untouched.
    timings = {}
    for n in range(1, c.get("threads", 2) + 1):
        torch.set_num_threads(n)
        ids, tgt = batch()
        loss_of(ids, tgt).backward()
        t = time.perf_counter()
        for _ in range(3):
            ids, tgt = batch()
            loss_of(ids, tgt).backward()
        timings[n] = time.perf_counter() - t
    opt.zero_grad(set_to_none=True)
    threads = min(timings, key=timings.get)
    torch.set_num_threads(threads)

    step = 0
    t0 = time.perf_counter()
    next_save = 0.0  # a step-0 checkpoint too: the curve starts at the untrained model
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed >= budget:
            break
        if elapsed >= next_save:
            save(step, elapsed)
            next_save += every
        if step < warmup:
            lr = c["learningRate"] * (step + 1) / warmup
        else:
            progress = min(1.0, elapsed / budget)
            lr = c["learningRate"] * 0.5 * (1 + math.cos(math.pi * progress))
        for g in opt.param_groups:
            g["lr"] = lr
        loss = loss_of(*batch())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(W.values(), 1.0)
        opt.step()
        step += 1
    seconds = time.perf_counter() - t0
    save(step, seconds)
    print(json.dumps({"checkpoints": checkpoints, "steps": step, "tokens": step * B * T, "seconds": seconds, "torch": torch.__version__, "blas": blas, "threads": threads, "threadProbe": timings}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
