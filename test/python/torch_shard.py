"""Torch's side of minerflow's .pt interop (run with .tools/venv-torch/bin/python).

  torch_shard.py load <file.pt> <expected.json>
      torch.load()s the file with weights_only=True and without; prints each tensor's name, dtype,
      shape and whether its values equal the float32 originals in expected.json converted with
      torch's own .to(dtype), bit for bit; the Connito hash; and which names Connito's expert-group
      check refuses for the assignment in expected.json (if any).
  torch_shard.py save-float64 <file.pt>
      torch.save()s one float64 expert tensor (a dtype Connito's shards do not use).
  torch_shard.py save <file.pt>
      torch.save()s {"model_state_dict": OrderedDict} with mixed dtypes (bf16 included), names
      not in sorted order and a view into a shared storage; prints what it wrote.
"""

import hashlib
import json
import re
import sys
from collections import OrderedDict

import torch


# Connito-AI/Connito@0c936fa connito/shared/helper.py: serialize_torch_model_path, hash_model_bytes, get_model_hash
def serialize_torch_model_path(state) -> bytes:
    buffer = []
    for key, tensor in sorted(state.items(), key=lambda item: item[0]):
        buffer.append(key.encode())
        if tensor.dtype == torch.bfloat16:
            buffer.append(tensor.cpu().contiguous().view(torch.uint8).numpy().tobytes())
        else:
            buffer.append(tensor.cpu().numpy().tobytes())
    return b"".join(buffer)


def get_model_hash(state) -> str:
    return hashlib.blake2b(serialize_torch_model_path(state), digest_size=24).digest().hex()


# Connito-AI/Connito@0c936fa connito/shared/expert_manager.py get_layer_expert_id and the membership
# test of connito/shared/checkpoints.py ModelCheckpoint._verify_expert_group
def get_layer_expert_id(layer_name: str):
    m = re.search(r"layers\.(\d+)(?:\.mlp\.experts\.(\d+))?", layer_name)
    if not m:
        return None, None
    return int(m.group(1)), (int(m.group(2)) if m.group(2) is not None else None)


def refused_by_expert_group_check(state_dict, allowed_layers):
    refused = []
    for name in state_dict:
        layer_id, expert_id = get_layer_expert_id(name)
        if layer_id is None or expert_id is None:
            refused.append(name)
            continue
        mapping = allowed_layers.get(layer_id, [])
        allowed = {int(a) for a, _ in mapping} | {int(b) for _, b in mapping}
        if int(expert_id) not in allowed:
            refused.append(name)
    return refused


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
NAMES = {v: k for k, v in DTYPES.items()}
BITS = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}


def bits(t):
    return t.contiguous().view(BITS[t.dtype]).flatten().tolist()


def load(file, expected_file):
    with open(expected_file) as f:
        expected = json.load(f)
    strict = torch.load(file, weights_only=True)
    full = torch.load(file)
    sd = strict["model_state_dict"]
    out = {"keys": sorted(strict.keys()), "tensors": {}, "hash": get_model_hash(sd)}
    for name, t in sd.items():
        want = expected["tensors"].get(name)
        exact = None
        if want is not None:
            ref = torch.tensor(want["values"], dtype=torch.float32).reshape(want["shape"]).to(DTYPES[want["dtype"]])
            exact = bits(ref) == bits(t)
        out["tensors"][name] = {
            "dtype": NAMES[t.dtype],
            "shape": list(t.shape),
            "exact": exact,
            "same_without_weights_only": bits(full["model_state_dict"][name]) == bits(t),
        }
    if "assignment" in expected:
        allowed = {int(k): v for k, v in expected["assignment"].items()}
        out["refused_by_expert_group_check"] = refused_by_expert_group_check(sd, allowed)
    print(json.dumps(out))


def save(file):
    g = torch.Generator().manual_seed(7)
    shared = torch.randn(4, 6, generator=g)  # two tensors view one storage, one at an offset
    sd = OrderedDict()
    sd["layers.1.mlp.experts.5.w2.weight"] = torch.randn(3, 5, generator=g).to(torch.bfloat16)
    sd["layers.0.mlp.experts.2.w1.weight"] = torch.randn(2, 3, generator=g)
    sd["layers.0.mlp.experts.2.w1.bias"] = (torch.randn(7, generator=g) * 1e-3).to(torch.float16)
    # 0-dim (float32: Connito's recipe cannot view a 0-dim bf16 tensor as bytes)
    sd["layers.1.mlp.experts.5.w2.scale"] = torch.tensor(3.5)
    sd["layers.0.mlp.experts.10.top"] = shared[:2]
    sd["layers.0.mlp.experts.10.bottom"] = shared[2:]
    state = nn_like_state_dict(sd)
    torch.save({"model_state_dict": state}, file)
    print(json.dumps({
        "hash": get_model_hash(state),
        "tensors": {n: {"dtype": NAMES[t.dtype], "shape": list(t.shape), "bits": bits(t)} for n, t in state.items()},
    }))


def nn_like_state_dict(sd):
    # what nn.Module.state_dict() returns: an OrderedDict carrying a _metadata attribute
    sd._metadata = OrderedDict({"": {"version": 1}})
    return sd


def save_float64(file):
    torch.save({"model_state_dict": {"layers.0.mlp.experts.0.w": torch.zeros(2, dtype=torch.float64)}}, file)


{
    "load": lambda: load(sys.argv[2], sys.argv[3]),
    "save": lambda: save(sys.argv[2]),
    "save-float64": lambda: save_float64(sys.argv[2]),
}[sys.argv[1]]()
