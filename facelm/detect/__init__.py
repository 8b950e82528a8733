"""Pluggable face detectors: ``detect(image HxWx3 uint8 RGB) -> (boxes (N, 4) float32, scores (N,) float32)``.

Boxes come out in the landmark model's convention, the tight box of the 68 landmarks (see
:mod:`facelm.detect.base`), so they can go straight to ``FaceLandmarker.predict(img, boxes=...)``.

    det = get_detector()          # OpenCV Haar cascade, always available
    det = get_detector("dlib")    # dlib HOG, when `pip install dlib-bin` is done
    boxes, scores = det.detect(img)

Refit the calibrations and measure detection rates: ``python -m facelm.detect calibrate --data DIR``.
"""
from __future__ import annotations

from typing import Any

from ..errors import FacelmError
from .base import BoxCalibration, Detections, FaceDetector, box_iou, group_windows, suppress
from .dlib_hog import DlibHogDetector, dlib_available
from .haar import HaarDetector

__all__ = ["FaceDetector", "BoxCalibration", "Detections", "HaarDetector", "DlibHogDetector", "get_detector",
           "available_detectors", "box_iou", "group_windows", "suppress"]

DEFAULT = "haar"


def _haar_default(**kw: Any) -> FaceDetector:
    return HaarDetector(cascade="frontalface_default", **kw)


_FACTORIES = {
    "haar": HaarDetector,
    "haar_default": _haar_default,
    "dlib": DlibHogDetector,
}


def available_detectors() -> list[str]:
    """Names :func:`get_detector` can build here (``dlib`` only when its module imports)."""
    return [n for n in _FACTORIES if n != "dlib" or dlib_available()]


def get_detector(name: str | FaceDetector | None = "default", **kwargs: Any) -> FaceDetector | None:
    """A detector by name: ``"default"`` (= ``"haar"``), ``"haar"`` (frontalface_alt2 cascade),
    ``"haar_default"`` (frontalface_default cascade), ``"dlib"``; ``None`` gives None (no detector:
    callers pass boxes). A detector object passes through. ``kwargs`` go to the detector's constructor."""
    if name is None or isinstance(name, FaceDetector):
        return name
    if not isinstance(name, str):
        raise TypeError(f"detector must be a name, a FaceDetector or None, not {type(name).__name__}")
    key = DEFAULT if name == "default" else name.lower()
    if key not in _FACTORIES:
        raise FacelmError(f"unknown face detector {name!r}; choose one of default, {', '.join(_FACTORIES)}")
    return _FACTORIES[key](**kwargs)
