"""The Compare tab's library work: whether ground-truth points fit a photo at all, and the model's
NME / failure rate / AUC over a dataset (``evaluate_dataset``; not to be confused with
``facelm.photo_evaluation``, which evaluates annotated photo files, or ``train.evaluate``'s CLI).

Points that do not fit the photo (mostly outside it, or a face box that overlaps no face the
detector finds) are flagged instead of scored: the ``.pts`` of another photo gives a number that
means nothing, and a number is what people would read.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .annotation import landmark_box
from .detect import box_iou
from .metrics import EvalResult, nme, per_subset, point_errors

__all__ = ["FitCheck", "check_fit", "DatasetEval", "evaluate_dataset", "MIN_INSIDE", "MIN_IOU"]

MIN_INSIDE = 0.9
"""At least this share of a face's points must lie on the photo."""
MIN_IOU = 0.1
"""A face box must overlap a detected face at least this much (IoU) when the detector finds faces."""


@dataclass
class FitCheck:
    fits: np.ndarray
    """(N,) bool: the face can be scored."""
    reasons: list[str]
    """Why each face that does not fit was flagged ("" for those that fit)."""


def check_fit(gt: np.ndarray, width: int, height: int, detected: np.ndarray | None = None) -> FitCheck:
    """Which of ``gt``'s (N, K, 2) faces fit a ``width`` x ``height`` photo whose detector found
    ``detected`` (M, 4) boxes (None: no detector; an empty array: it found none, which proves nothing)."""
    gt = np.asarray(gt, np.float32)
    finite = np.isfinite(gt).all(-1)
    x, y = gt[..., 0], gt[..., 1]
    on = finite & (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    share = on.sum(-1) / np.maximum(finite.sum(-1), 1)
    reasons = [f"{100 * (1 - s):.0f}% of its points lie outside the {width}×{height} photo" if s < MIN_INSIDE else ""
               for s in share]
    if detected is not None and len(detected) and len(gt):
        iou = box_iou(landmark_box(gt), np.asarray(detected, np.float32).reshape(-1, 4)).max(axis=1)
        for n, v in enumerate(iou):
            if not reasons[n] and v < MIN_IOU:
                reasons[n] = "its box overlaps none of the faces found on the photo"
    return FitCheck(np.array([not r for r in reasons], bool), reasons)


@dataclass
class DatasetEval:
    results: dict[str, EvalResult]
    """Per subset (``source``), plus "all" when there are several."""
    curves: dict[str, np.ndarray]
    """Per-face errors to draw a CED of, per subset (and "all")."""
    overall: EvalResult
    n: int


def evaluate_dataset(rows: Iterable[dict], predict_in_boxes: Callable[[np.ndarray, np.ndarray, str], np.ndarray],
                     scheme_of: Callable[[dict, int], str], to_rgb: Callable[[object], np.ndarray]) -> DatasetEval:
    """NME of the model predicting in each face's ground-truth box over dataset ``rows`` (one face
    each: ``image``, ``landmarks``, optional ``source``)."""
    errors, point_errs, sources = [], [], []
    scheme = None
    for row in rows:
        img = to_rgb(row["image"])
        gt = np.asarray(row["landmarks"], np.float32)[None]
        scheme = scheme or scheme_of(row, gt.shape[1])
        pred = predict_in_boxes(img, landmark_box(gt), scheme)
        point_errs.append(point_errors(pred, gt, scheme)[0])
        errors.append(float(nme(pred, gt, scheme)[0]))
        sources.append(str(row.get("source") or "all"))
    errors_a = np.asarray(errors)
    results = per_subset(errors_a, sources, np.asarray(point_errs), norm="interocular",
                         all_label="all" if len(set(sources)) > 1 else None)
    curves = {name: errors_a[np.asarray(sources) == name] for name in dict.fromkeys(sources)}
    if len(curves) > 1:
        curves["all"] = errors_a
    return DatasetEval(results, curves, EvalResult.from_errors(errors_a), len(errors))
