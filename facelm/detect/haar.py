"""OpenCV Haar cascade face detector: ships with opencv-python, needs no extra download."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import FacelmError
from .base import BoxCalibration, CalibratedDetector, RawDetections, group_windows, suppress

CASCADE_WINDOW = 20
"""Smallest face (px, in the possibly shrunk image) the frontal cascades can see: their window is 20-24 px."""

# Fitted with `python -m facelm.detect calibrate --data <shared>/300w` on the 1054 photos of the 300-W
# AFW + HELEN-train TRAINING split (the held-out validation photos take no part; raw box matched to
# the GT landmark box when each contains the other's centre, least squares in raw-box units after
# dropping 3-robust-SD outliers). Detection rates with them: docs/detection.md. Refit when the
# detector parameters below change.
CALIBRATIONS: dict[str, BoxCalibration] = {
    "frontalface_alt2": BoxCalibration(dx=0.0079, dy=0.1475, sx=0.8771, sy=0.8488),
    "profileface": BoxCalibration(dx=-0.0963, dy=0.1532, sx=0.7835, sy=0.7533),
}


def cascade_path(name: str) -> Path:
    path = Path(cv2.data.haarcascades) / f"haarcascade_{name}.xml"
    if not path.is_file():
        known = sorted(p.stem.removeprefix("haarcascade_")
                       for p in Path(cv2.data.haarcascades).glob("haarcascade_*face*.xml"))
        raise FacelmError(f"no Haar cascade {name!r} in this OpenCV build ({path}); known face cascades: {known}")
    return path


class HaarDetector(CalibratedDetector):
    """One Haar cascade, with our own merging of its raw windows.

    OpenCV's grouping is replaced: we ask for every raw window (``minNeighbors=0``), group
    overlapping windows, keep groups of more than ``min_neighbors`` windows, score them by their
    window count, and suppress nested and overlapping duplicates. ``both_sides`` also runs the
    cascade on the mirrored photo, for cascades that see faces turned one way only (the profile one).
    Defaults were picked by measurement on 300-W and dlib's example photos (see calibrate.py and
    docs/detection.md): alt2 beat frontalface_default (as many faces found, far fewer false alarms)
    and alt; a scale step of 1.05 found a few more 300-W faces at twice the time.
    """

    def __init__(self, cascade: str = "frontalface_alt2", scale_factor: float = 1.1, min_neighbors: int = 2,
                 min_face: float = 0.03, max_side: int | None = 640, both_sides: bool = False,
                 calibration: BoxCalibration | None = None, name: str | None = None):
        super().__init__(calibration if calibration is not None else CALIBRATIONS.get(cascade, BoxCalibration()),
                         max_side)
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor}")
        self.name = name or f"haar_{cascade}"
        self.cascade_name = cascade
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face = min_face
        self.both_sides = both_sides
        self._cascade = cv2.CascadeClassifier(str(cascade_path(cascade)))
        if self._cascade.empty():
            raise FacelmError(f"cannot load the Haar cascade {cascade!r}")

    def _detect(self, image: np.ndarray) -> RawDetections:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        parts = [self._one_side(gray, mirrored=False)]
        if self.both_sides:
            parts.append(self._one_side(np.ascontiguousarray(gray[:, ::-1]), mirrored=True))
        raw = RawDetections.concat(parts)
        return raw.take(suppress(raw.boxes, raw.scores))

    def _one_side(self, gray: np.ndarray, mirrored: bool) -> RawDetections:
        # The smallest face worth finding scales with the photo; tiny windows in a big photo are
        # slow and mostly false alarms.
        side = max(CASCADE_WINDOW, int(self.min_face * min(gray.shape)))
        if min(gray.shape) < side:
            return RawDetections.of(np.zeros((0, 4)), np.zeros(0))
        rects = self._cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=0,
                                               minSize=(side, side))
        rects = np.asarray(rects, np.float64).reshape(-1, 4)
        # (x, y, w, h) covers pixels x .. x+w-1: its edges are half a pixel outside the pixel centres.
        boxes = np.stack([rects[:, 0] - 0.5, rects[:, 1] - 0.5, rects[:, 0] + rects[:, 2] - 0.5,
                          rects[:, 1] + rects[:, 3] - 0.5], axis=1)
        boxes, scores = group_windows(boxes, self.min_neighbors)
        if mirrored:  # x -> (W - 1) - x in pixel-centre coordinates
            boxes = np.stack([gray.shape[1] - 1 - boxes[:, 2], boxes[:, 1], gray.shape[1] - 1 - boxes[:, 0],
                              boxes[:, 3]], axis=1)
        return RawDetections.of(boxes, scores, mirrored)

    def __repr__(self) -> str:
        return (f"HaarDetector(cascade={self.cascade_name!r}, scale_factor={self.scale_factor}, "
                f"min_neighbors={self.min_neighbors}, min_face={self.min_face}, max_side={self.max_side}, "
                f"both_sides={self.both_sides}, calibration={self.calibration})")
