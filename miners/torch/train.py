# A PyTorch miner with Connito's train.py interface (connito/miner/train.py at 0c936fa):
#   python miners/torch/train.py --path <config.yaml>
# It trains a small MoE language model (model.py), logs Connito's structlog console lines
# (`batch loss loss=… inner_opt_step=…`, `scheduler step lr=…`), resumes from the newest checkpoint in
# ckpt.checkpoint_path and writes checkpoints in Connito's layout every ckpt.checkpoint_interval
# inner steps. With log.format: jsonl it speaks minerflow's JSON-lines protocol instead (README).
# SIGINT or SIGTERM: it finishes the step, saves a checkpoint and exits 0 (a deadline loses nothing).
# With sched.lr_ramp {min_lr, max_lr} the LR rises exponentially over sched.total_steps: the LR
# range test. With opt.ema_decay > 0 it also keeps an exponential moving average of the weights and
# writes it beside the raw ones, in the same layout, in the checkpoint's ema/ folder (minerflow
# evaluates both and publishes the better). Runs on CUDA when available (model.device: auto).
import argparse
import json
import math
import os
import signal
import sys
import time
from datetime import datetime, timezone

import torch
import yaml

from common import (
    EMA_DIR,
    checkpoints,
    device_for,
    get,
    load_config,
    load_state_dict,
    model_config,
    read_bytes,
    save_checkpoint,
)
from model import Gpt, cross_entropy

COLORS = {"info": "\x1b[32m", "warning": "\x1b[33m", "error": "\x1b[31m"}


class Log:
    """structlog's ConsoleRenderer line (Connito's app_logging), or minerflow JSON lines."""

    def __init__(self, fmt, colors):
        self.fmt, self.colors = fmt, colors

    def event(self, event, level="info", **kw):
        if self.fmt == "jsonl":
            return
        ts = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        if self.colors:
            pairs = " ".join(f"\x1b[36m{k}\x1b[0m=\x1b[35m{v}\x1b[0m" for k, v in kw.items())
            line = f"\x1b[2m{ts}\x1b[0m [{COLORS[level]}\x1b[1m{level:<9}\x1b[0m] \x1b[1m{event:<28}\x1b[0m {pairs}"
        else:
            pairs = " ".join(f"{k}={v}" for k, v in kw.items())
            line = f"{ts} [{level:<9}] {event:<28} {pairs}"
        print(line.rstrip(), flush=True)

    def protocol(self, **msg):
        if self.fmt == "jsonl":  # strict JSON: a non-finite number (a diverging step) is null
            msg = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in msg.items()}
            print(json.dumps({"minerflow": 1, **msg}, allow_nan=False), flush=True)


def lr_at(cfg, step):
    """LR of optimizer step `step` (0-based): warmup then cosine to 10%, or the range test's ramp."""
    total = int(get(cfg, "sched.total_steps", 300))
    ramp = get(cfg, "sched.lr_ramp")
    if ramp:
        lo, hi = float(ramp["min_lr"]), float(ramp["max_lr"])
        return lo * (hi / lo) ** (step / max(1, total - 1))
    lr = float(get(cfg, "opt.lr", 3e-3))
    warmup = int(get(cfg, "sched.warmup_steps", 0))
    if step < warmup:
        return lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def batch_at(data, step, micro, batch_size, seq_len, seed, device):
    """Random windows for (step, micro-batch), from a generator seeded by both: resuming is exact."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step * 1009 + micro)
    starts = torch.randint(0, len(data) - seq_len - 1, (batch_size,), generator=g)
    windows = torch.stack([data[s : s + seq_len + 1] for s in starts.tolist()])
    return windows[:, :-1].to(device), windows[:, 1:].to(device)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", required=True, help="the YAML config")
    args = parser.parse_args()
    cfg = load_config(args.path)
    log = Log(get(cfg, "log.format", "console"), bool(get(cfg, "log.colors", True)))

    stop = {"requested": False}

    def request_stop(signum, _frame):
        stop["requested"] = True
        log.event("stop requested; saving a checkpoint after this step", level="warning", signal=signum)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    device = device_for(cfg)
    mcfg = model_config(cfg)
    seed = int(get(cfg, "run.seed", 1))
    torch.manual_seed(int(get(cfg, "model.seed", 0)))
    model = Gpt(mcfg).to(device)
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=lr_at(cfg, 0),
        betas=(float(get(cfg, "opt.beta1", 0.9)), float(get(cfg, "opt.beta2", 0.95))),
        weight_decay=float(get(cfg, "opt.weight_decay", 0.1)),
    )
    folder = get(cfg, "ckpt.checkpoint_path")
    if not folder:
        sys.exit(f"{args.path}: ckpt.checkpoint_path is required (where checkpoints are written)")
    global_ver = int(get(cfg, "run.global_ver", 0))
    groups = int(get(cfg, "moe.num_worker_groups", 1))
    ema_decay = float(get(cfg, "opt.ema_decay", 0) or 0)
    start = 0
    found = checkpoints(folder)
    resumed = None
    if found and get(cfg, "ckpt.resume_from_ckpt", True):
        _, start, resumed = found[-1]
        model.load_state_dict({k: v.to(device) for k, v in load_state_dict(resumed).items()})
        opt.load_state_dict(torch.load(f"{resumed}/inner_optimizer.pt", map_location=device)["optimizer_state_dict"])
        log.event("resumed from checkpoint", path=resumed, inner_opt_step=start)
    ema = None
    if ema_decay > 0:  # float copies, continued from the checkpoint's ema/ when it has one
        ema_dir = os.path.join(resumed, EMA_DIR) if resumed else None
        source = load_state_dict(ema_dir) if ema_dir and os.path.isdir(ema_dir) else model.state_dict()
        ema = {k: v.detach().to(device, torch.float32).clone() for k, v in source.items()}
    with open(f"{folder}/config.yaml", "w") as f:
        yaml.safe_dump(cfg, f)  # as Connito: the resolved config beside its checkpoints

    data = read_bytes(get(cfg, "task.exp.data.train_file"), get(cfg, "task.exp.data.text_column", "text"))
    total = int(get(cfg, "sched.total_steps", 300))
    max_steps = int(get(cfg, "train.max_steps", total))
    accum = int(get(cfg, "local_par.gradient_accumulation_steps", 1))
    batch_size = int(get(cfg, "task.exp.data.batch_size", 16))
    interval = int(get(cfg, "ckpt.checkpoint_interval", 50))
    aux_weight = mcfg["moe"]["auxLossWeight"] if mcfg["moe"] else 0.0
    grad_clip = float(get(cfg, "opt.grad_clip", 1.0))
    tokens_per_step = accum * batch_size * mcfg["seqLen"]
    log.event("setup_training: success!", device=device.type, start=start, max_steps=max_steps)

    def checkpoint(step, loss):
        path = save_checkpoint(
            folder,
            global_ver,
            step,
            model.state_dict(),
            groups,
            {"inner_optimizer.pt": {"optimizer_state_dict": opt.state_dict()}, "global_state.pt": {"loss": loss}},
            ema,
        )
        log.event(f"Checkpoint saved to {path}")
        log.protocol(type="checkpoint", step=step, path=path)

    step, loss_value, saved = start, float("nan"), start
    while step < max_steps and not stop["requested"]:
        t0 = time.perf_counter()
        lr = lr_at(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        loss_value = aux_value = 0.0
        for micro in range(accum):
            x, y = batch_at(data, step, micro, batch_size, mcfg["seqLen"], seed, device)
            logits, aux = model(x)
            ce = cross_entropy(logits, y)
            ((ce + aux_weight * aux) / accum).backward()
            log.event("batch loss", loss=ce.item(), inner_opt_step=step)
            loss_value += ce.item() / accum
            aux_value += aux.item() / accum
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip))
        if math.isfinite(loss_value) and math.isfinite(grad_norm):
            opt.step()
            if ema is not None:
                with torch.no_grad():
                    for k, v in model.state_dict().items():
                        ema[k].lerp_(v.float(), 1 - ema_decay)
        else:
            log.event("Non-finite loss detected, skipping batch", level="warning", step=step)
        opt.zero_grad(set_to_none=True)
        step += 1
        log.event("scheduler step", lr=lr)
        tps = tokens_per_step / (time.perf_counter() - t0)
        log.protocol(
            type="progress", step=step, loss=loss_value, auxLoss=aux_value, lr=lr, gradNorm=grad_norm, tokensPerSec=tps
        )
        if step % interval == 0 or step == max_steps:
            checkpoint(step, loss_value)
            saved = step
    if saved != step:  # stopped between checkpoints: keep what was trained
        checkpoint(step, loss_value)
    log.event("training finished", inner_opt_step=step)


if __name__ == "__main__":
    main()
