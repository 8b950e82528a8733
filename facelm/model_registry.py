"""The pretrained models facelm knows by name, in the manner of timm's ``list_models``: each bundled
model folder's config (scheme, input size) and model card (its one-line description).

    >>> facelm.list_models()                      # names
    >>> facelm.list_models(details=True)          # ModelInfo records
    >>> facelm.load_model("ibug68_fast")          # a LandmarkModel; FaceLandmarker.from_pretrained too
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from .hub import WEIGHTS_DIR, bundled_models
from .model_card import card_description, default_description
from .schemes import get_scheme


@dataclass(frozen=True)
class ModelInfo:
    name: str
    """what ``load_model`` and ``FaceLandmarker.from_pretrained`` take"""
    description: str
    scheme: str
    num_points: int
    input_size: int
    """side of the square face crop the network takes, in pixels"""
    path: Path
    """the model folder (config.json, model.safetensors, README.md model card)"""


def model_info(name: str) -> ModelInfo:
    """The record of one bundled model; ``KeyError`` names the known ones."""
    if name not in bundled_models():
        raise KeyError(f"no bundled model {name!r}; bundled: {', '.join(bundled_models())}")
    folder = WEIGHTS_DIR / name
    config = json.loads((folder / "config.json").read_text())
    scheme = get_scheme(config.get("scheme", "ibug68"))
    return ModelInfo(name=name, description=card_description(folder) or default_description(config),
                     scheme=scheme.name, num_points=scheme.num_points, input_size=int(config["input_size"]),
                     path=folder)


def list_models(pattern: str = "*", details: bool = False) -> list[str] | list[ModelInfo]:
    """Names of the bundled pretrained models matching the shell ``pattern`` (``"ibug68*"``), sorted;
    ``details=True`` gives their ``ModelInfo`` instead."""
    names = [n for n in bundled_models() if fnmatch(n, pattern)]
    return [model_info(n) for n in names] if details else names
