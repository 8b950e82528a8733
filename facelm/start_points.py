"""Where the annotation editor starts a photo: the model's points and how unsure the model is of them.

The photo and its mirror image are both predicted; the mirrored prediction is turned back
(``Scheme.mirror_points``) and the two are averaged for the start (a flip test). How much they
disagree (the NME between them) is the face's uncertainty: faces the model sees differently from
left and right are the ones most worth a human look, and the queue puts them first.

A photo where no face is found starts with no face at all (people add the faces the detector
missed by drawing a box), and its uncertainty is None: there is nothing to be unsure about, and a
made-up number would sort and display as if it meant something.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .metrics import nme

__all__ = ["StartPoints", "predict_with_uncertainty"]


@dataclass
class StartPoints:
    points: np.ndarray
    """(N, K, 2) float32: the mean of the prediction and its mirrored counterpart."""
    boxes: np.ndarray
    """(N, 4) float32: the boxes the model predicted in."""
    uncertainty: np.ndarray
    """(N,) float64: each face's flip disagreement (NME); NaN where it cannot be measured."""

    def __len__(self) -> int:
        return len(self.points)

    @property
    def photo_uncertainty(self) -> float | None:
        """The worst face's uncertainty, or None for a photo without a measurable face."""
        finite = self.uncertainty[np.isfinite(self.uncertainty)]
        return float(finite.max()) if len(finite) else None

    def face_uncertainty(self) -> list[float | None]:
        return [float(u) if np.isfinite(u) else None for u in self.uncertainty]


def predict_with_uncertainty(landmarker, img: np.ndarray, boxes: np.ndarray | None = None,
                             predict: Callable | None = None) -> StartPoints:
    """Starting points for the faces of ``img`` (RGB, HxWx3): in ``boxes`` when given (an empty
    array gives no face), else in the faces ``landmarker`` detects (none without a detector).
    ``predict`` replaces ``landmarker.predict`` (the app passes one that serialises calls)."""
    predict = predict or landmarker.predict
    scheme = landmarker.scheme
    h, w = img.shape[:2]
    if boxes is None:
        boxes = predict(img).boxes if landmarker.detector is not None else np.zeros((0, 4), np.float32)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    k = scheme.num_points
    if not len(boxes):
        return StartPoints(np.zeros((0, k, 2), np.float32), boxes, np.zeros(0))
    pts = predict(img, boxes=boxes).landmarks
    mirrored = boxes.copy()
    mirrored[:, 0], mirrored[:, 2] = w - 1 - boxes[:, 2], w - 1 - boxes[:, 0]
    back = scheme.mirror_points(predict(np.ascontiguousarray(img[:, ::-1]), boxes=mirrored).landmarks, w)
    start = ((pts + back) / 2).astype(np.float32)
    return StartPoints(start, boxes, np.asarray(nme(pts, back, scheme), np.float64))
