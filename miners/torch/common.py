# What train.py, evaluate.py and export.py share: the YAML config (Connito's section names where
# Connito has the setting), the byte-level data, and Connito's checkpoint layout:
#   <ckpt.checkpoint_path>/globalver_{v}_inneropt_{n}/model_expgroup_{g}.pt + model_shared.pt + …
# (+ ema/model_expgroup_{g}.pt + ema/model_shared.pt with opt.ema_decay)
# each .pt is torch.save({"model_state_dict": {name: tensor}}), written to .tmp_<name> and renamed.
import os
import re
import shutil
from pathlib import Path

import torch
import yaml

CHECKPOINT_DIR = re.compile(r"^globalver_(\d+)_inneropt_(\d+)$")
EMA_DIR = "ema"  # a checkpoint's averaged weights, same layout: minerflow's signal that they exist


def load_config(path):
    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    return cfg


def get(cfg, dotted, default=None):
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def model_config(cfg):
    """The GPT's shape in model/gpt.ts's names (what a minerflow manifest records)."""
    moe = None
    if get(cfg, "moe.num_experts"):
        moe = {
            "experts": int(get(cfg, "moe.num_experts")),
            "topK": int(get(cfg, "moe.num_experts_per_tok", 2)),
            "capacityFactor": float(get(cfg, "moe.capacity_factor", 1.25)),
            "auxLossWeight": float(get(cfg, "moe.router_aux_loss_coef", 0.01)),
            "every": int(get(cfg, "moe.every", 1)),
        }
    return {
        "vocabSize": 256,  # UTF-8 bytes: the validator's byte tokenizer
        "seqLen": int(get(cfg, "task.exp.data.sequence_length", 64)),
        "dModel": int(get(cfg, "model.d_model", 64)),
        "nLayer": int(get(cfg, "model.n_layer", 2)),
        "nHead": int(get(cfg, "model.n_head", 4)),
        "moe": moe,
    }


def device_for(cfg):
    wanted = get(cfg, "model.device", "auto")
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(wanted)


def read_bytes(jsonl_file, text_column="text"):
    """Documents of a .jsonl split as one UTF-8 byte stream, each followed by a blank line (model/tokenizer.ts)."""
    import json

    parts = []
    with open(jsonl_file, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                parts.append((json.loads(line)[text_column] + "\n\n").encode("utf-8"))
    return torch.tensor(list(b"".join(parts)), dtype=torch.long)


def expert_group(name, groups):
    """The expert group a tensor belongs to (experts are dealt round-robin), or None for shared tensors."""
    m = re.search(r"\.experts\.(\d+)\.", name)
    return int(m.group(1)) % groups if m else None


def checkpoints(folder):
    """(global_ver, inner_opt, path) of every complete checkpoint in folder, oldest first."""
    found = []
    if os.path.isdir(folder):
        for entry in os.listdir(folder):
            m = CHECKPOINT_DIR.match(entry)  # .tmp_ folders are half-written: never matched
            if m and os.path.isdir(os.path.join(folder, entry)):
                found.append((int(m.group(1)), int(m.group(2)), os.path.join(folder, entry)))
    return sorted(found)


def save_checkpoint(folder, global_ver, inner_opt, state_dict, groups, extra, ema=None):
    """With `ema` (a state dict of averaged weights), the same shards again in the checkpoint's ema/ folder."""
    path = Path(folder) / f"globalver_{global_ver}_inneropt_{inner_opt}"
    tmp = path.with_name(f".tmp_{path.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_shards(tmp, state_dict, groups)
    if ema is not None:
        (tmp / EMA_DIR).mkdir()
        save_shards(tmp / EMA_DIR, ema, groups)
    for file, obj in extra.items():
        torch.save(obj, tmp / file)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return str(path)


def save_shards(folder, state_dict, groups):
    shards = {"shared": {}}
    for name, t in state_dict.items():
        g = expert_group(name, groups)
        shards.setdefault(g if g is not None else "shared", {})[name] = t.detach().to("cpu")
    for g in range(groups):
        torch.save({"model_state_dict": shards.get(g, {})}, folder / f"model_expgroup_{g}.pt")
    torch.save({"model_state_dict": shards["shared"]}, folder / "model_shared.pt")


def load_state_dict(checkpoint_dir):
    """Every model tensor of a checkpoint: the expert-group shards and the shared one, merged."""
    state = {}
    for file in sorted(os.listdir(checkpoint_dir)):
        if file.startswith("model_expgroup_") or file == "model_shared.pt":
            state.update(torch.load(os.path.join(checkpoint_dir, file), map_location="cpu")["model_state_dict"])
    if not state:
        raise SystemExit(f"{checkpoint_dir}: no model_expgroup_*.pt or model_shared.pt in it")
    return state
