"""Average the weights of several checkpoints of one run (stochastic weight averaging, Izmailov et al. 2018).

    python -m train.average --like runs/x/best --out runs/x/swa runs/x/snapshots/*.pt

Inputs are training checkpoints (``checkpoint.pt``, whose ``model`` entry is used) or model folders
(``model.safetensors``) of the architecture of ``--like``; ``train.train --snapshot-every N`` writes
such files. BatchNorm running statistics are averaged with the weights (no re-estimation pass: the
snapshots of one run's end hold statistics of nearly the same network).
The result is a model folder that ``load_model`` / ``FaceLandmarker.from_pretrained`` read.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from facelm.hub import load_model
from facelm.models import LandmarkModel


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The model weights in a checkpoint file or a model folder."""
    p = Path(path)
    if p.is_dir():
        return load_file(p / "model.safetensors")
    saved = torch.load(p, map_location="cpu", weights_only=False)
    if not isinstance(saved, dict) or "model" not in saved:
        raise ValueError(f"{p}: not a train.train checkpoint (no 'model' entry)")
    return saved["model"]


def average_weights(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Mean of every floating-point tensor; integer buffers (BatchNorm's step count) from the last state."""
    if not states:
        raise ValueError("nothing to average")
    keys = set(states[0])
    for s in states[1:]:
        if set(s) != keys:
            raise ValueError("the checkpoints hold different tensors: not one architecture")
    out = {}
    for k in states[0]:
        ref = states[0][k]
        if any(s[k].shape != ref.shape for s in states):
            raise ValueError(f"{k}: shapes differ between checkpoints")
        out[k] = (torch.stack([s[k].float() for s in states]).mean(0).to(ref.dtype) if ref.is_floating_point()
                  else states[-1][k])
    return out


def average_checkpoints(like: str | Path, paths: list[str | Path]) -> LandmarkModel:
    """The model of ``like`` with the mean of the weights in ``paths``, in float32."""
    model = load_model(like).float()
    states = [load_weights(p) for p in tqdm(paths, desc="reading checkpoints", leave=False)]
    averaged = average_weights(states)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in averaged.items()})
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="checkpoint.pt files or model folders")
    p.add_argument("--like", required=True, help="a model folder of the same architecture (its config is kept)")
    p.add_argument("--out", required=True)
    p.add_argument("--half", action="store_true", help="store float16 weights (half the file; computed in float32)")
    args = p.parse_args(argv)
    model = average_checkpoints(args.like, args.checkpoints)
    (model.half() if args.half else model).save_pretrained(args.out)
    print(f"averaged {len(args.checkpoints)} checkpoints into {args.out}")


if __name__ == "__main__":
    main()
