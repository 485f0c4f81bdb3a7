"""Connito's phase service, from Connito's own code, to check ours against.

`reference <phases-json> <blocks-json>`: PhaseManager.get_phase / blocks_until_next_phase /
previous_phase_block_ranges as connito/sn_owner/cycle.py (Connito-AI/Connito 0c936fa) computes them,
with the chain's block passed in instead of read from subtensor.
`live <url>`: the client side: connito/shared/cycle.py's PhaseResponse (pydantic) and requests,
as get_phase_from_api and get_blocks_until_next_phase_from_api read a phase service.
"""
import json
import sys

import requests
from pydantic import BaseModel


class PhaseResponse(BaseModel):  # connito/shared/cycle.py
    block: int
    cycle_length: int
    cycle_index: int
    cycle_block_index: int
    phase_name: str
    phase_index: int
    phase_start_block: int
    phase_end_block: int
    blocks_into_phase: int
    blocks_remaining_in_phase: int


class PhaseManager:  # connito/sn_owner/cycle.py, the block given instead of subtensor.block
    def __init__(self, phases):
        self.phases = phases
        self.cycle_length = sum(p["length"] for p in self.phases)

    def get_phase(self, block):
        cycle_index = block // self.cycle_length
        cycle_block_index = block % self.cycle_length
        current_start = 0
        for idx, phase in enumerate(self.phases):
            phase_end = current_start + phase["length"]
            if current_start <= cycle_block_index < phase_end:
                return PhaseResponse(
                    block=block,
                    cycle_length=self.cycle_length,
                    cycle_index=cycle_index,
                    cycle_block_index=cycle_block_index,
                    phase_name=phase["name"],
                    phase_index=idx,
                    phase_start_block=current_start + cycle_index * self.cycle_length,
                    phase_end_block=phase_end - 1 + cycle_index * self.cycle_length,
                    blocks_into_phase=cycle_block_index - current_start,
                    blocks_remaining_in_phase=phase_end - cycle_block_index - 1,
                )
            current_start = phase_end
        raise RuntimeError("Failed to determine phase")

    def blocks_until_next_phase(self, block):
        cycle_len = self.cycle_length
        cycle_block_index = block % cycle_len
        cycle_start_block = block - cycle_block_index
        result = {}
        start = 0
        for phase in self.phases:
            phase_start = start
            if phase_start >= cycle_block_index:
                start_block = cycle_start_block + phase_start
            else:
                start_block = cycle_start_block + cycle_len + phase_start
            end_block = start_block + phase["length"] - 1
            result[phase["name"]] = (start_block, end_block, start_block - block)
            start += phase["length"]
        return result

    def previous_phase_block_ranges(self, block):
        return {
            name: (s - self.cycle_length, e - self.cycle_length)
            for name, (s, e, _) in self.blocks_until_next_phase(block).items()
        }


if sys.argv[1] == "reference":
    pm = PhaseManager([{"name": p["name"], "length": p["blocks"]} for p in json.loads(sys.argv[2])])
    out = [
        {
            "phase": pm.get_phase(b).model_dump(),
            "next": pm.blocks_until_next_phase(b),
            "previous": pm.previous_phase_block_ranges(b),
        }
        for b in json.loads(sys.argv[3])
    ]
    print(json.dumps(out))
else:
    url = sys.argv[2]
    phase = PhaseResponse(**requests.get(f"{url}/get_phase", timeout=10).json())
    nxt = requests.get(f"{url}/blocks_until_next_phase", timeout=10).json()
    prev = requests.get(f"{url}/previous_phase_blocks", timeout=10).json()
    whitelist = requests.get(f"{url}/get_validator_whitelist", timeout=10).json()
    # The way connito/shared/cycle.py uses them: should_act's blocks_till and the version range.
    print(json.dumps({"phase": phase.model_dump(), "blocks_till_commit1": nxt["MinerCommit1"][2],
                      "prev_commit1": prev["MinerCommit1"], "whitelist": whitelist}))
