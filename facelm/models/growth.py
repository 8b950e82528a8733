"""Grow a trained model into a wider or deeper one that computes exactly the same function, so that a
bigger model starts training from where the smaller one stopped instead of from scratch.

Wider: every tensor keeps the trained values in its leading slice. A new channel's BatchNorm starts
at scale 0 and shift 1, so it outputs a positive constant (not 0: a ReLU passes no gradient at 0,
and the channel would never wake up), and the weights that carry new input channels into the old
output channels start at zero, so the constant changes nothing. Those weights get gradients at the
first step, and the new channels' scales the step after. Deeper: new residual blocks start with the
BatchNorm that ends their branch at scale 0, which makes them identities (their input is a ReLU
output, so relu(0 + x) == x).

Shallower (:func:`shallower`) goes the other way, for a faster model: it keeps each stage's first
blocks and drops the rest. That changes what the network computes, so it is a start for training
(best with the deeper model as teacher), not a finished model.
"""
from __future__ import annotations

import torch
from torch import nn

from .landmark_model import LandmarkModel, config_default
from .layers import BasicBlock

_GROWABLE = ("width", "depth")


def size_of(model: LandmarkModel, key: str) -> int:
    """The model's ``width`` or ``depth``."""
    return model.config.get(key, config_default(key))


def grow(model: LandmarkModel, **changes: int) -> LandmarkModel:
    """A copy of ``model`` with a larger ``width`` and/or ``depth`` and the same outputs."""
    unknown = set(changes) - set(_GROWABLE)
    if unknown:
        raise ValueError(f"can only grow {_GROWABLE}, not {sorted(unknown)}")
    config = dict(model.config, **changes)
    for key in _GROWABLE:
        old, new = size_of(model, key), changes.get(key, size_of(model, key))
        if new < old:
            raise ValueError(f"cannot shrink {key} from {old} to {new}")
    bigger = LandmarkModel(**config)
    old_state = model.state_dict()
    with torch.no_grad():
        for name, mod in bigger.named_modules():
            known = f"{name}.weight" in old_state
            if isinstance(mod, BasicBlock) and f"{name}.conv1.0.weight" not in old_state:
                mod.last_norm.weight.zero_()
            elif isinstance(mod, nn.BatchNorm2d) and known:
                mod.weight.zero_()
                mod.bias.fill_(1.0)
                mod.running_mean.zero_()
                mod.running_var.fill_(1.0)
            elif isinstance(mod, (nn.Conv2d, nn.Linear)) and known and mod.weight.dim() > 1:
                old_out, old_in = old_state[f"{name}.weight"].shape[:2]
                mod.weight[:old_out, old_in:] = 0.0
        state = bigger.state_dict()
        for key, o in old_state.items():
            t = state[key]
            if o.dim() != t.dim() or any(a > b for a, b in zip(o.shape, t.shape)):
                raise ValueError(f"{key}: cannot grow {tuple(o.shape)} into {tuple(t.shape)}")
            t[tuple(slice(0, n) for n in o.shape)] = o
    return bigger


def shallower(model: LandmarkModel, depth: int) -> LandmarkModel:
    """A copy of ``model`` with ``depth`` stride-1 blocks per backbone stage (facelm_res), keeping the
    first ones of each stage and every other weight."""
    old = size_of(model, "depth")
    if model.config.get("backbone", config_default("backbone")) != "facelm_res":
        raise ValueError("only facelm_res backbones have a depth to reduce")
    if not 1 <= depth <= old:
        raise ValueError(f"depth {depth}: a shallower copy needs 1 <= depth <= {old}")
    smaller = LandmarkModel(**dict(model.config, depth=depth))
    keep = smaller.state_dict().keys()
    smaller.load_state_dict({k: v for k, v in model.state_dict().items() if k in keep})
    return smaller
