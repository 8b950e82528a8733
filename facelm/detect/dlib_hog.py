"""dlib's HOG + linear SVM face detector (``dlib.get_frontal_face_detector``), used when the optional
``dlib`` module imports (``pip install dlib-bin``). It finds more turned and tilted faces than the
Haar cascade (its five filters cover frontal, both half-profiles and in-plane tilt)."""
from __future__ import annotations

import numpy as np

from ..errors import FacelmError
from .base import BoxCalibration, CalibratedDetector, RawDetections

# Fitted with `python -m facelm.detect calibrate --data <shared>/300w --detector dlib` on the 300-W
# training split (same protocol as the Haar calibration in haar.py). Detection rates: docs/detection.md.
CALIBRATION = BoxCalibration(dx=0.0094, dy=0.0785, sx=0.9604, sy=0.934)

MIN_FACE = 80
"""dlib's HOG window: faces smaller than this (px, after upsampling) are not found."""


def dlib_available() -> bool:
    try:
        import dlib  # noqa: F401
    except ImportError:
        return False
    return True


class DlibHogDetector(CalibratedDetector):
    """``upsample``: times the photo is doubled before detection; None takes the fewest doublings
    that find faces down to ``min_face`` px in the (possibly shrunk) photo; each costs 4x the time."""

    name = "dlib"

    def __init__(self, upsample: int | None = None, min_face: int = 40, max_side: int | None = 640,
                 calibration: BoxCalibration | None = None):
        super().__init__(calibration if calibration is not None else CALIBRATION, max_side)
        try:
            import dlib
        except ImportError:
            raise FacelmError("the 'dlib' detector needs the dlib module: pip install dlib-bin") from None
        self._detector = dlib.get_frontal_face_detector()
        self.upsample = upsample
        self.min_face = min_face

    def _detect(self, image: np.ndarray) -> RawDetections:
        up = self.upsample
        if up is None:
            up = 0
            while MIN_FACE / 2 ** up > self.min_face and up < 2:
                up += 1
        rects, scores, _ = self._detector.run(np.ascontiguousarray(image), up, 0.0)
        # dlib's right/bottom are inclusive pixel indices; the box edges lie half a pixel beyond.
        boxes = np.array([[r.left() - 0.5, r.top() - 0.5, r.right() + 0.5, r.bottom() + 0.5] for r in rects],
                         np.float32).reshape(-1, 4)
        return RawDetections.of(boxes, np.asarray(scores, np.float32))

    def __repr__(self) -> str:
        return f"DlibHogDetector(upsample={self.upsample}, max_side={self.max_side}, calibration={self.calibration})"
