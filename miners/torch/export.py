# A checkpoint in Connito's layout (.pt expert shards + model_shared.pt) as the weights minerflow
# publishes: one safetensors file, float32, the tensor names of model/gpt.ts (the same names as
# model.py's state dict), which the validator loads and hashes.
#   python miners/torch/export.py --checkpoint <dir> --out <model.safetensors>
import argparse

from safetensors.torch import save_file

from common import load_state_dict


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    state = {k: v.float().contiguous() for k, v in load_state_dict(args.checkpoint).items()}
    save_file(state, args.out)


if __name__ == "__main__":
    main()
