# The sigmoid DPO loss in PyTorch, as TRL's DPOTrainer computes it (loss_type="sigmoid"), on logits
# given on stdin: {policy, reference: [2B, T, V] (chosen rows then rejected), targets, mask: [2B, T], beta}.
# Prints {"loss": mean loss, "margins": per-pair beta * ((pc - rc) - (pr - rr))}.
import json
import sys

import torch
import torch.nn.functional as F

x = json.load(sys.stdin)
targets = torch.tensor(x["targets"], dtype=torch.long)
mask = torch.tensor(x["mask"], dtype=torch.float32)


def seq_logps(logits):
    logp = F.log_softmax(torch.tensor(logits, dtype=torch.float32), dim=-1)
    return (torch.gather(logp, 2, targets.unsqueeze(2)).squeeze(2) * mask).sum(-1)


pol = seq_logps(x["policy"])
ref = seq_logps(x["reference"])
B = pol.shape[0] // 2
margins = x["beta"] * ((pol[:B] - ref[:B]) - (pol[B:] - ref[B:]))
loss = -F.logsigmoid(margins).mean()
print(json.dumps({"loss": loss.item(), "margins": margins.tolist()}))
