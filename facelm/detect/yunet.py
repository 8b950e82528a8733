"""OpenCV Zoo's YuNet face detector (MIT; a small CNN trained on WIDER FACE), run by OpenCV's own
``cv2.FaceDetectorYN``. Its weights are one ONNX file: see :mod:`facelm.detect.yunet_weights`.

Besides a box and a score, YuNet finds five points per face (eyes, nose tip, mouth corners). They give
each face a frame with its eyes level (:attr:`DetectedFaces.upright`), so that the landmark model's
first pass sees the face upright, as it was trained.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np

from ..annotation import landmark_box
from ..face_box import upright_box
from .base import BoxCalibration, CalibratedDetector, DetectedFaces, RawDetections
from .yunet_weights import HUB_FILE, KNOWN, YuNetWeightsError, yunet_model_file

# Fitted with `python -m facelm.detect calibrate --data <shared>/300w --detector yunet` on the 300-W
# TRAINING split (same protocol as haar.py's; the 2026may weights). CALIBRATION maps YuNet's box to
# the landmark box; FRAME_CALIBRATION maps the tight box of its five points, in the frame where the
# eyes are level, to the landmark box in that frame. Refit when the detector parameters below change.
CALIBRATION = BoxCalibration(dx=0.0029, dy=0.1177, sx=1.0282, sy=0.7567)
FRAME_CALIBRATION = BoxCalibration(dx=0.009, dy=0.1784, sx=2.294, sy=2.1103)

MIN_SCORE = 0.58
"""The default threshold: see docs/detection.md for how it was chosen."""
MIN_SIDE = 16
"""Photos narrower than this (px) hold no face YuNet can find; they are not run."""
CANDIDATE_SCORE = 0.3
"""Candidates below this never leave OpenCV (the precision/recall curve is drawn above it)."""


def five_point_frames(points: np.ndarray, calibration: BoxCalibration = FRAME_CALIBRATION
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5, 2) five points (CelebA's order) -> ((N, 4) landmark boxes in the eyes-level frame,
    (N,) roll degrees), as :func:`facelm.face_box.upright_face_box` gives them for 68 points."""
    pts = np.asarray(points, np.float64).reshape(-1, 5, 2)
    return upright_box(pts, pts[:, :2], lambda level: calibration.apply(landmark_box(level)))


class YuNetDetector(CalibratedDetector):
    """YuNet through ``cv2.FaceDetectorYN``. ``model_file``, ``filename``, ``revision``, ``sha256``,
    ``download`` and ``cache_dir`` choose its weights (:func:`facelm.detect.yunet_weights.yunet_model_file`);
    a file that is missing, altered or not a YuNet model raises :class:`YuNetWeightsError`."""

    name = "yunet"

    def __init__(self, model_file: str | os.PathLike | None = None, filename: str = HUB_FILE,
                 revision: str | None = None, sha256: str | None = KNOWN, download: bool = True,
                 cache_dir: str | os.PathLike | None = None, min_score: float | None = MIN_SCORE,
                 nms_iou: float = 0.3, max_side: int | None = 640,
                 calibration: BoxCalibration | None = None, frame_calibration: BoxCalibration | None = None):
        super().__init__(calibration if calibration is not None else CALIBRATION, max_side)
        self.model_file: Path = yunet_model_file(model_file, filename, revision, sha256, download, cache_dir)
        self.min_score = min_score
        self.frame_calibration = frame_calibration if frame_calibration is not None else FRAME_CALIBRATION
        candidates = CANDIDATE_SCORE if min_score is None else min(CANDIDATE_SCORE, min_score)
        self._lock = threading.Lock()  # the OpenCV object holds the input size of its last call
        try:
            self._net = cv2.FaceDetectorYN.create(str(self.model_file), "", (64, 64), candidates, nms_iou, 5000)
            self._net.detect(np.zeros((64, 64, 3), np.uint8))  # a model that loads but is not YuNet fails here
        except cv2.error as e:
            reason = str(e).strip().splitlines()[-1][:200]
            raise YuNetWeightsError(f"the file {self.model_file} is not a YuNet model OpenCV can run ({reason})") \
                from None

    def _detect(self, image: np.ndarray) -> RawDetections:
        h, w = image.shape[:2]
        if min(h, w) < MIN_SIDE:
            return RawDetections.of(np.zeros((0, 4)), np.zeros(0), False, np.zeros((0, 5, 2)))
        # The network's strides need sides that are multiples of 32: pad with black at the right and
        # bottom ourselves (boxes keep their coordinates) rather than leave it to OpenCV.
        ph, pw = -h % 32, -w % 32
        bgr = np.pad(image[..., ::-1], ((0, ph), (0, pw), (0, 0)))
        with self._lock:
            self._net.setInputSize((w + pw, h + ph))
            _, out = self._net.detect(bgr)
        out = np.zeros((0, 15), np.float32) if out is None else np.asarray(out, np.float32).reshape(-1, 15)
        # A row: x, y, w, h, then the subject's right eye, left eye, nose tip, right and left mouth
        # corners (x, y each; the right eye lies on the left of the picture, CelebA's order), score.
        boxes = np.concatenate([out[:, :2], out[:, :2] + out[:, 2:4]], axis=1)
        return RawDetections.of(boxes, out[:, 14], False, out[:, 4:14].reshape(-1, 5, 2))

    def find(self, image) -> DetectedFaces:
        raw = self.detect_raw(image)
        boxes = self.calibration.apply(raw.boxes, raw.mirrored)
        upright = five_point_frames(raw.points, self.frame_calibration) if raw.points is not None else None
        return DetectedFaces(boxes, raw.scores, raw.points, upright)

    def __repr__(self) -> str:
        return (f"YuNetDetector(model_file={str(self.model_file)!r}, min_score={self.min_score}, "
                f"max_side={self.max_side}, calibration={self.calibration}, "
                f"frame_calibration={self.frame_calibration})")
