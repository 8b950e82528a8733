"""Measure a model's mirror-asymmetric bias on its training faces and store the correction in the model.

    python -m train.point_offsets facelm/weights/ibug68 --data ../shared/data/300w --out runs/x/calibrated

Training mirrors every face half the time. Whatever part of the annotators' convention is not
mirror-symmetric (300-W's labels have such a part: docs/training.md#mirror-asymmetry) changes sign under mirroring, so the network learns its average, zero, and is off by it on every
face, mirrored or not. The part can be read from the network's mean signed error over the training
faces: its antisymmetric half under the scheme's mirror permutation. It becomes the model's
``point_offset`` (crop pixels), which ``LandmarkModel.predict`` adds. The mirror-symmetric half of the
mean error is left alone: training can fit it, so on training faces it is what the network failed to
learn, not a property of the labels.
Faces are the training split of ``--data`` (train.train's split: validation faces are never used).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facelm.crop_cache import CropCache
from facelm.hub import load_model, local_folder, stores_float16
from facelm.metrics import results_table
from facelm.models import LandmarkModel
from facelm.schemes import Scheme, get_scheme

from .split_caches import DataSpec, load_caches
from .crop_eval import evaluate_cache, gt_in_crop, predict_cache


def asymmetric_offset(model: LandmarkModel, cache, scheme: Scheme) -> np.ndarray:
    """(K, 2) crop pixels: minus the antisymmetric half of the model's mean signed error on ``cache``,
    measured without any offset the model already has."""
    error = np.nanmean(predict_cache(model.with_offsets(None, model.mirror_offset), cache, scheme) - gt_in_crop(cache), axis=0)
    return -(error - scheme.mirror_displacements(error)) / 2


def mirror_gap(model: LandmarkModel, cache, scheme: Scheme) -> np.ndarray:
    """(K, 2) crop pixels: the mean of the model's points on the crops minus its points on the mirrored
    crops, mirrored back; its antisymmetric half (the rest is noise of a network that is only nearly
    mirror-symmetric). No labels are read."""
    mirrored = CropCache(np.ascontiguousarray(cache.images[:, :, ::-1]), cache.landmarks, cache.sources,
                         cache.input_size, cache.margin)
    # the centre crop of a mirrored cache crop is the mirrored crop
    back = scheme.mirror_points(predict_cache(model, mirrored, scheme), cache.input_size)
    gap = np.nanmean(predict_cache(model, cache, scheme) - back, axis=0)
    return (gap - scheme.mirror_displacements(gap)) / 2


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="model folder, bundled name or Hub id")
    p.add_argument("--data", nargs="+", required=True, help="the model's training data (its training split is used)")
    p.add_argument("--out", required=True, help="folder for the calibrated model")
    p.add_argument("--cache-dir", default=None, help="where crops are cached (default: $FACELM_CACHE/crops)")
    a = p.parse_args(argv)
    model = load_model(a.model)
    scheme = get_scheme(model.scheme)
    train_cache, val_cache = load_caches(DataSpec(a.data), model.input_size, model.crop_scale, a.cache_dir, scheme)
    offset = asymmetric_offset(model, train_cache, scheme)
    offset_only = model.with_offsets(offset, None)
    calibrated = offset_only.with_offsets(offset, mirror_gap(offset_only, train_cache, scheme))
    before, after = evaluate_cache(model, val_cache, scheme), evaluate_cache(calibrated, val_cache, scheme)
    folder = local_folder(a.model)
    half = folder is not None and stores_float16(folder)
    (calibrated.half() if half else calibrated).save_pretrained(a.out)  # float16 stays float16: the 10 MB bound
    print(f"offset from {len(train_cache)} training faces: mean {np.abs(offset).mean():.3f} px, "
          f"largest {np.abs(offset).max():.3f} px (crop pixels at {model.input_size} px)")
    print("validation before:\n" + results_table(before) + "\nafter:\n" + results_table(after))
    summary = {"offset_px": offset.round(4).tolist(), "mirror_offset_px": calibrated.mirror_offset.numpy().round(4).tolist(), "train_faces": len(train_cache),
               "val_before": {k: r.nme_mean for k, r in before.items()}, "val_after": {k: r.nme_mean for k, r in after.items()}}
    (Path(a.out) / "calibration.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
