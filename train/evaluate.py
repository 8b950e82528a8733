"""Evaluate a model on validation faces; also ``python -m train.evaluate MODEL --data ...``.

Protocol: boxes are the tight box of the ground-truth landmarks (300-W's bb_ground_truth), the same
crop rule as inference, no flip test. NME is inter-ocular (outer eye corners) unless --norm says.
"""
from __future__ import annotations

import argparse
import json
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from facelm.crop_cache import CropCache
from facelm.metrics import EvalResult, nme as nme_fn, plot_ced, results_table
from facelm.models import LandmarkModel
from facelm.schemes import Scheme, convert, get_scheme

from .samples import CachedFaces

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


def _gt_in_crop(cache: CropCache) -> np.ndarray:
    off = (cache.images.shape[1] - cache.input_size) // 2
    return cache.landmarks - off


def errors_on_cache(model: LandmarkModel, cache: CropCache, scheme: Scheme, norm: str = "interocular") -> np.ndarray:
    # NME is invariant to the crop's similarity transform, so crop coordinates give image-space NME.
    return nme_fn(predict_cache(model, cache, scheme), _gt_in_crop(cache), scheme, norm=norm)


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


def write_report(model_dir: Path, val_cache: CropCache, scheme: Scheme, cfg: object, summary: dict) -> dict:
    """Final evaluation of the best checkpoint: eval.json, ced.png and the model card, next to it."""
    from facelm.hub import load_model, write_model_card
    model = load_model(model_dir)
    errors = errors_on_cache(model, val_cache, scheme)
    groups = group_labels(val_cache.sources)
    results = {"all": EvalResult.from_errors(errors)} | {k: EvalResult.from_errors(errors[m]) for k, m in groups.items()}
    plot_ced({k: errors[m] for k, m in groups.items()} | {"all": errors}, model_dir / "ced.png",
             title="CED on validation faces (GT boxes)")
    report = {"protocol": "validation split, boxes = tight box of GT landmarks, inter-ocular NME, no flip test",
              "results": {k: r.to_dict() for k, r in results.items()}, "training": summary,
              "config": {k: v for k, v in vars(cfg).items()} if hasattr(cfg, "__dict__") else {}}
    (model_dir / "eval.json").write_text(json.dumps(report, indent=1, default=str))
    write_model_card(model_dir, model, results_table(results), summary, cfg)
    return {"val": {k: round(r.nme_mean * 100, 3) for k, r in results.items()}}


def main(argv: list[str] | None = None) -> None:
    from facelm.hub import load_model
    from .datasets import DataSpec, load_caches
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("model", nargs="?", default=None, help="Hub id or local dir (default: the bundled model)")
    p.add_argument("--data", nargs="+", required=True, help="evaluation data (all of it, unless --split validation)")
    p.add_argument("--norm", default="interocular", choices=["interocular", "interpupil", "diagonal"])
    p.add_argument("--ced", default=None, help="write the CED plot here")
    p.add_argument("--split", choices=["all", "validation"], default="all",
                   help="validation: only the faces train.train's default split holds out")
    p.add_argument("--label-judge", default=None, metavar="MODEL",
                   help="with --max-label-nme, leave out the faces whose labels this model (any scheme) rejects")
    p.add_argument("--max-label-nme", type=float, default=None)
    a = p.parse_args(argv)
    if (a.label_judge is None) != (a.max_label_nme is None):
        p.error("--label-judge and --max-label-nme go together")
    model = load_model(a.model)
    scheme = get_scheme(model.scheme)
    spec = DataSpec(a.data, a.data, 1.0) if a.split == "all" else DataSpec(a.data)
    _, cache = load_caches(spec, model.input_size, model.crop_scale,
                           str(Path.home() / ".cache" / "facelm" / "crops"), scheme)
    if a.label_judge:
        from .train import drop_broken_labels, load_judge
        judge = load_judge(a.label_judge, model.crop_scale)
        cache, dropped = drop_broken_labels(cache, judge, a.max_label_nme, scheme)
        print(f"left out {sum(dropped.values())} faces whose labels {a.label_judge} puts above "
              f"{a.max_label_nme:.3f} NME: {dropped}")
    results = evaluate_cache(model, cache, scheme, a.norm)
    print(results_table(results))
    if a.ced:
        errors = errors_on_cache(model, cache, scheme, a.norm)
        print("CED plot:", plot_ced({"all": errors}, a.ced))


if __name__ == "__main__":
    main()
