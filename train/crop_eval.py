"""A model's points and errors on crop caches (train.train's validation, train.evaluate, the label judge).

Protocol: boxes are the tight box of the ground-truth landmarks (300-W's bb_ground_truth), the same
crop rule as inference, no flip test. NME is inter-ocular (outer eye corners) unless ``norm`` says.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch
from torch.utils.data import DataLoader

from facelm.crop_cache import CropCache
from facelm.metrics import EvalResult, nme as nme_fn
from facelm.models import LandmarkModel
from facelm.schemes import Scheme, convert, get_scheme

from .cached_faces import CachedFaces

SUBSET_GROUPS = {"300w": ("afw", "helen_trainset", "helen", "lfpw", "ibug")}


@torch.no_grad()
def points_at(model: LandmarkModel, x: torch.Tensor, autocast: AbstractContextManager | None = None) -> torch.Tensor:
    """``model``'s points on (B, C, S, S) crops, in the crops' pixels, whatever its input size. Under
    ``autocast`` (e.g. bfloat16) only the network runs in low precision; points are decoded in float32,
    since bfloat16 holds a coordinate near 128 px only to half a pixel."""
    size = x.shape[-1]
    k = size / model.input_size
    if model.input_size != size:
        x = torch.nn.functional.interpolate(x, size=model.input_size, mode="bilinear", antialias=k > 1)
    with autocast or nullcontext():
        out = model(x)
    points = model.decode({name: v.float() for name, v in out.items()})
    return (points + 0.5) * k - 0.5  # pixel centres at integers, as the crop rule


@torch.no_grad()
def predict_cache(model: LandmarkModel, cache: CropCache, scheme: Scheme, batch_size: int = 128) -> np.ndarray:
    """``model``'s points on the cache's crops, in ``scheme`` and crop pixels. A model of another input
    size sees the crops resized, and one of another scheme has its points converted (a judge of
    labels, e.g. a 68-point model on 5-point data); the caller checks that it frames faces as the cache."""
    was_training = model.training
    model.eval()
    faces = CachedFaces(cache, scheme, train=False, in_chans=model.in_chans)
    preds = [points_at(model, x) for x, _ in DataLoader(faces, batch_size=batch_size)]
    model.train(was_training)
    own = get_scheme(model.scheme)
    pts = torch.cat(preds).numpy() if preds else np.zeros((0, own.num_points, 2), np.float32)
    return pts if own == scheme else convert(pts, own, scheme)


def gt_in_crop(cache: CropCache) -> np.ndarray:
    off = (cache.images.shape[1] - cache.input_size) // 2
    return cache.landmarks - off


def errors_on_cache(model: LandmarkModel, cache: CropCache, scheme: Scheme, norm: str = "interocular") -> np.ndarray:
    # NME is invariant to the crop's similarity transform, so crop coordinates give image-space NME.
    return nme_fn(predict_cache(model, cache, scheme), gt_in_crop(cache), scheme, norm=norm)


def group_labels(sources: np.ndarray) -> dict[str, np.ndarray]:
    """Masks for each source plus the named groups (e.g. all 300-W subsets together)."""
    labels = {str(s): sources == s for s in sorted(set(sources.tolist()))}
    for name, members in SUBSET_GROUPS.items():
        mask = np.isin(sources, members)
        if mask.any() and mask.sum() != len(sources) and name not in labels:
            labels[name] = mask
    return labels


def evaluate_cache(model: LandmarkModel, cache: CropCache, scheme: Scheme, norm: str = "interocular") -> dict[str, EvalResult]:
    errors = errors_on_cache(model, cache, scheme, norm)
    results = {"all": EvalResult.from_errors(errors, norm=norm)}
    for name, mask in group_labels(cache.sources).items():
        results[name] = EvalResult.from_errors(errors[mask], norm=norm)
    return results
