"""Leave out training faces whose labels a trained model (the judge) disagrees with by far: scrambled or
lagging tracker shapes, points on the forehead. ``train.train --max-label-nme`` and
``train.evaluate --label-judge`` share it."""
from __future__ import annotations

import numpy as np

from facelm.crop_cache import CropCache
from facelm.models import LandmarkModel
from facelm.schemes import Scheme

from .crop_eval import errors_on_cache


def load_judge(name: str | None, crop_scale: float) -> LandmarkModel | None:
    """The --label-judge model, checked to frame faces as crops cut at ``crop_scale`` do."""
    if not name:
        return None
    from facelm.hub import load_model
    judge = load_model(name)
    if abs(judge.crop_scale - crop_scale) > 1e-6 or judge.crop_shift_y != 0.0:
        raise SystemExit(f"--label-judge {name} crops at {judge.crop_scale}x the face box (shift "
                         f"{judge.crop_shift_y}); these crops are at {crop_scale}x: its points would not line up")
    return judge


def drop_broken_labels(cache: CropCache, judge: LandmarkModel | None, max_nme: float | None,
                       scheme: Scheme) -> tuple[CropCache, dict[str, int]]:
    """``cache`` without the faces whose labels ``judge`` disagrees with by more than ``max_nme``, and
    how many were dropped per source."""
    if max_nme is None:
        return cache, {}
    if judge is None:
        raise SystemExit("--max-label-nme judges labels with the --init-from model or --label-judge; give one")
    keep = errors_on_cache(judge, cache, scheme) <= max_nme
    dropped = {str(s): int(n) for s, n in zip(*np.unique(cache.sources[~keep], return_counts=True))}
    return cache.subset(keep), dropped
