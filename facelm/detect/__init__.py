"""Pluggable face detectors: ``detect(image HxWx3 uint8 RGB) -> (boxes (N, 4) float32, scores (N,) float32)``.

Boxes come out in the landmark model's convention, the tight box of the 68 landmarks (see
:mod:`facelm.detect.base`), so they can go straight to ``FaceLandmarker.predict(img, boxes=...)``.

    det = get_detector()          # YuNet when its weights are found, else OpenCV's Haar cascades
    det = get_detector("yunet", model_file="face_detection_yunet_2023mar.onnx")
    det = get_detector("dlib")    # dlib HOG, when `pip install dlib-bin` is done
    boxes, scores = det.detect(img)
    list_detectors()              # every registered name; available_detectors(): those usable here

Benchmark: ``python -m facelm.detect evaluate --wider DIR --data DIR``; refit the box calibrations:
``python -m facelm.detect calibrate --data DIR``. Figures and the protocol: docs/detection.md.
"""
from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from typing import Any

from ..errors import FacelmError
from .base import (BoxCalibration, CalibratedDetector, CombinedDetector, DetectedFaces, Detections, FaceDetector,
                   RawDetections, box_iou, greedy_matches, group_windows, suppress)
from .dlib_hog import DlibHogDetector, dlib_available
from .haar import HaarDetector
from .yunet import YuNetDetector
from .yunet_weights import HOW_TO_GET, YuNetWeightsError, yunet_model_file

__all__ = ["FaceDetector", "CalibratedDetector", "CombinedDetector", "BoxCalibration", "DetectedFaces", "Detections",
           "RawDetections", "HaarDetector", "DlibHogDetector", "YuNetDetector", "YuNetWeightsError", "get_detector",
           "list_detectors", "available_detectors", "register_detector", "box_iou", "greedy_matches",
           "group_windows", "suppress"]

log = logging.getLogger("facelm")

_REGISTRY: dict[str, Callable[..., FaceDetector]] = {}
_AVAILABLE: dict[str, Callable[[], bool]] = {}


def register_detector(name: str, available: Callable[[], bool] = lambda: True):
    """Decorator: register a detector factory under ``name`` (as timm's ``register_model``).
    ``available`` says whether it can be built on this machine (an optional module, weights)."""
    def add(fn: Callable[..., FaceDetector]) -> Callable[..., FaceDetector]:
        _REGISTRY[name] = fn
        _AVAILABLE[name] = available
        return fn
    return add


@register_detector("haar_frontal")
def haar_frontal(**kw: Any) -> HaarDetector:
    return HaarDetector("frontalface_alt2", name="haar_frontal", **kw)


@register_detector("haar_profile")
def haar_profile(**kw: Any) -> HaarDetector:
    # The profile cascade is slow (and runs twice, once mirrored); skipping faces under 10% of the
    # photo's short side halves its time and loses little: small faces in group photos are mostly frontal.
    kw.setdefault("min_face", 0.1)
    return HaarDetector("profileface", both_sides=True, name="haar_profile", **kw)


@register_detector("haar")
def haar(**kw: Any) -> CombinedDetector:
    """Frontal plus profile cascades: finds more turned heads than the frontal one alone, at about
    three times its time (docs/detection.md)."""
    return CombinedDetector([haar_frontal(**kw), haar_profile(**kw)], name="haar")


def _yunet_found() -> bool:
    try:
        yunet_model_file(download=False)
    except FacelmError:
        return False
    return True


@register_detector("yunet", available=_yunet_found)
def yunet(**kw: Any) -> YuNetDetector:
    return YuNetDetector(**kw)


register_detector("dlib", available=dlib_available)(DlibHogDetector)


@register_detector("default")
def default(**kw: Any) -> FaceDetector:
    """YuNet when its weights are found (``FACELM_YUNET``, the Hugging Face cache, or the Hub when it
    is reachable), else the Haar cascades, with one logged line saying why and how to get YuNet.
    ``kw`` go to YuNet."""
    try:
        return YuNetDetector(**kw)
    except FacelmError as e:
        log.warning("face detector: using haar, not yunet: %s", e if HOW_TO_GET in str(e) else f"{e}; {HOW_TO_GET}")
        det = haar()
        det.fallback_reason = str(e)
        return det


def list_detectors(filter: str = "", available_only: bool = False) -> list[str]:
    """Registered detector names matching the glob ``filter`` (as timm's ``list_models``), sorted;
    ``available_only`` keeps those :func:`get_detector` can build here."""
    names = sorted(n for n in _REGISTRY if not filter or fnmatch.fnmatch(n, filter))
    return [n for n in names if _AVAILABLE[n]()] if available_only else names


def available_detectors() -> list[str]:
    """The detectors :func:`get_detector` can build here, "default" aside (``dlib`` when its module
    imports, ``yunet`` when its weights are on this machine)."""
    return [n for n in list_detectors(available_only=True) if n != "default"]


def get_detector(name: str | FaceDetector | None = "default", **kwargs: Any) -> FaceDetector | None:
    """A detector by name (see :func:`list_detectors`): ``"default"`` (YuNet when its weights are
    found, else ``"haar"``), ``"yunet"``, ``"haar"`` (OpenCV's frontal alt2 and profile cascades),
    ``"haar_frontal"`` (frontal only, 3x faster), ``"haar_profile"``, ``"dlib"`` (dlib's HOG detector;
    needs ``pip install dlib-bin``); ``None`` gives None (no detector: callers pass boxes). A detector
    object passes through. ``kwargs`` go to the detector's constructor."""
    if name is None or isinstance(name, FaceDetector):
        return name
    if not isinstance(name, str):
        raise TypeError(f"detector must be a name, a FaceDetector or None, not {type(name).__name__}")
    key = name.lower()
    if key not in _REGISTRY:
        raise FacelmError(f"unknown face detector {name!r}; choose one of {', '.join(list_detectors())}")
    return _REGISTRY[key](**kwargs)
