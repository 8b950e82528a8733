"""Pluggable face detectors: ``detect(image HxWx3 uint8 RGB) -> (boxes (N, 4) float32, scores (N,) float32)``.

Boxes come out in the landmark model's convention, the tight box of the 68 landmarks (see
:mod:`facelm.detect.base`), so they can go straight to ``FaceLandmarker.predict(img, boxes=...)``.

    det = get_detector()          # OpenCV Haar cascades (frontal + profile), always available
    det = get_detector("dlib")    # dlib HOG, when `pip install dlib-bin` is done
    boxes, scores = det.detect(img)

Refit the calibrations and measure detection rates: ``python -m facelm.detect calibrate --data DIR``.

Measured on 300-W's 1207 AFW + HELEN-train photos (faces given a box with IoU > 0.5 to their
landmark box; ms per photo of about 450 x 450 px, one thread of a shared AMD EPYC, from
``python -m facelm.bench``):

    =============  ==========  ======  ========
    detector       300-W all   AFW     ms/photo
    =============  ==========  ======  ========
    haar_frontal   88.7%       84.9%   112
    haar           91.1%       90.5%   293
    dlib           94.9%       92.0%    71
    =============  ==========  ======  ========
"""
from __future__ import annotations

from typing import Any

from ..errors import FacelmError
from .base import (BoxCalibration, CalibratedDetector, CombinedDetector, Detections, FaceDetector, RawDetections,
                   box_iou, greedy_matches, group_windows, suppress)
from .dlib_hog import DlibHogDetector, dlib_available
from .haar import HaarDetector

__all__ = ["FaceDetector", "CalibratedDetector", "CombinedDetector", "BoxCalibration", "Detections", "RawDetections",
           "HaarDetector", "DlibHogDetector", "get_detector", "available_detectors", "box_iou", "greedy_matches",
           "group_windows", "suppress"]

DEFAULT = "haar"


def haar_frontal(**kw: Any) -> HaarDetector:
    return HaarDetector("frontalface_alt2", name="haar_frontal", **kw)


def haar_profile(**kw: Any) -> HaarDetector:
    # The profile cascade is slow (and runs twice, once mirrored); skipping faces under 10% of the
    # photo's short side halves its time and loses little: small faces in group photos are mostly frontal.
    kw.setdefault("min_face", 0.1)
    return HaarDetector("profileface", both_sides=True, name="haar_profile", **kw)


def haar(**kw: Any) -> CombinedDetector:
    """Frontal plus profile cascades: on 300-W's AFW + HELEN-train photos 91.1% of faces found
    against 88.7% frontal only (AFW alone, with more turned heads: 90.5% against 84.9%), at about
    three times the time (see calibrate.py)."""
    return CombinedDetector([haar_frontal(**kw), haar_profile(**kw)], name="haar")


_FACTORIES = {
    "haar": haar,
    "haar_frontal": haar_frontal,
    "haar_profile": haar_profile,
    "dlib": DlibHogDetector,
}


def available_detectors() -> list[str]:
    """Names :func:`get_detector` can build here (``dlib`` only when its module imports)."""
    return [n for n in _FACTORIES if n != "dlib" or dlib_available()]


def get_detector(name: str | FaceDetector | None = "default", **kwargs: Any) -> FaceDetector | None:
    """A detector by name: ``"default"`` (= ``"haar"``), ``"haar"`` (OpenCV's frontal alt2 and profile
    cascades), ``"haar_frontal"`` (frontal only, 3x faster), ``"haar_profile"``, ``"dlib"`` (dlib's HOG
    detector; needs ``pip install dlib-bin``); ``None`` gives None (no detector: callers pass boxes).
    A detector object passes through. ``kwargs`` go to the detector's constructor."""
    if name is None or isinstance(name, FaceDetector):
        return name
    if not isinstance(name, str):
        raise TypeError(f"detector must be a name, a FaceDetector or None, not {type(name).__name__}")
    key = DEFAULT if name == "default" else name.lower()
    if key not in _FACTORIES:
        raise FacelmError(f"unknown face detector {name!r}; choose one of default, {', '.join(_FACTORIES)}")
    return _FACTORIES[key](**kwargs)
