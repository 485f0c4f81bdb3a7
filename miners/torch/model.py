# The built-in trainer's GPT (model/gpt.ts, model/moe.ts) in PyTorch, tensor for tensor: the same
# names, shapes ([in, out] matrices), tanh GELU, LayerNorm eps 1e-5, tied embedding, learned
# positions, and Switch/Mixtral routing with token-order capacity. So a state trained here is a
# minerflow checkpoint the validator loads as is (export.py), and its held-out loss is comparable.
import math

import torch
import torch.nn.functional as F
from torch import nn


class Linear(nn.Module):
    """x @ weight + bias with weight [in, out], as gpt.ts stores it."""

    def __init__(self, d_in, d_out, std):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_in, d_out) * std)
        self.bias = nn.Parameter(torch.zeros(d_out))

    def forward(self, x):
        return x @ self.weight + self.bias


class LayerNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, 1e-5)


class Mlp(nn.Module):
    def __init__(self, d, proj_std):
        super().__init__()
        self.c_fc = Linear(d, 4 * d, 0.02)
        self.c_proj = Linear(4 * d, d, proj_std)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Attention(nn.Module):
    def __init__(self, d, n_head, proj_std):
        super().__init__()
        self.n_head = n_head
        self.c_attn = Linear(d, 3 * d, 0.02)
        self.c_proj = Linear(d, d, proj_std)

    def forward(self, x):
        B, T, d = x.shape
        hd = d // self.n_head
        q, k, v = self.c_attn(x).split(d, dim=-1)
        q, k, v = (t.view(B, T, self.n_head, hd).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=1)
        y = scores.masked_fill(mask, -1e9).softmax(-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(B, T, d))


class Router(nn.Module):
    def __init__(self, d, experts):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d, experts) * 0.02)  # no bias, as Switch and Mixtral


class Moe(nn.Module):
    def __init__(self, d, moe, proj_std):
        super().__init__()
        self.cfg = moe
        self.router = Router(d, moe["experts"])
        self.experts = nn.ModuleList(Mlp(d, proj_std) for _ in range(moe["experts"]))

    def forward(self, x):  # x [N, d], tokens in row-major (batch, position) order
        N = x.shape[0]
        E, k = self.cfg["experts"], self.cfg["topK"]
        probs = (x @ self.router.weight).softmax(-1)
        with torch.no_grad():
            chosen = torch.zeros_like(probs).scatter_(1, probs.topk(k, dim=-1).indices, 1.0)
            capacity = math.ceil(self.cfg["capacityFactor"] * N * k / E)
            kept = chosen * (chosen.cumsum(0) <= capacity)
        top = probs * chosen
        gates = (top if k == 1 else top / top.sum(-1, keepdim=True)) * kept
        aux = E * ((chosen.sum(0) / (N * k)) * probs.mean(0)).sum()
        y = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            rows = kept[:, e].nonzero(as_tuple=True)[0]  # only the tokens it serves (gates are 0 elsewhere)
            if rows.numel():
                y = y.index_add(0, rows, gates[rows, e : e + 1] * expert(x[rows]))
        return y, aux


class Block(nn.Module):
    def __init__(self, cfg, layer):
        super().__init__()
        d = cfg["dModel"]
        proj_std = 0.02 / math.sqrt(2 * cfg["nLayer"])
        moe = cfg.get("moe")
        self.ln_1 = LayerNorm(d)
        self.attn = Attention(d, cfg["nHead"], proj_std)
        self.ln_2 = LayerNorm(d)
        if moe and (layer + 1) % moe["every"] == 0:
            self.moe = Moe(d, moe, proj_std)
        else:
            self.mlp = Mlp(d, proj_std)

    def forward(self, x):
        B, T, d = x.shape
        x = x + self.attn(self.ln_1(x))
        m = self.ln_2(x)
        if hasattr(self, "moe"):
            y, aux = self.moe(m.reshape(B * T, d))
            return x + y.view(B, T, d), aux
        return x + self.mlp(m), None


class Gpt(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Parameter(torch.randn(cfg["vocabSize"], cfg["dModel"]) * 0.02)
        self.wpe = nn.Parameter(torch.randn(cfg["seqLen"], cfg["dModel"]) * 0.02)
        self.h = nn.ModuleList(Block(cfg, layer) for layer in range(cfg["nLayer"]))
        self.ln_f = LayerNorm(cfg["dModel"])

    def forward(self, ids):
        """Logits [B, T, vocab] and the MoE load-balancing loss averaged over MoE layers (0 if dense)."""
        T = ids.shape[1]
        x = self.wte[ids] + self.wpe[:T]
        auxes = []
        for block in self.h:
            x, aux = block(x)
            if aux is not None:
                auxes.append(aux)
        logits = self.ln_f(x) @ self.wte.t()
        return logits, (torch.stack(auxes).mean() if auxes else torch.zeros((), device=ids.device))


def cross_entropy(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
