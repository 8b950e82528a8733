"""FaceLandmarker: photo in, faces with landmarks out. The one object most users need.

    fl = FaceLandmarker.from_pretrained()       # bundled default model, offline
    faces = fl.predict("photo.jpg")             # detector finds the faces
    faces = fl.predict(img, boxes=[[x1, y1, x2, y2]])
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from .annotation import AnnotatedImage, Face
from .crop import crop_matrix, crops_to_input, uncrop_points, warp
from .face_box import face_box, upright_face_box
from .hub import load_model, local_folder
from .image import ImageLike, MAX_PIXELS, to_rgb_array
from .models import LandmarkModel
from .schemes import Scheme, convert, get_scheme

Backend = Literal["torch", "onnx"]
Refine = bool | Literal["auto"]


def flip_test_mean(points: np.ndarray, on_mirrored: np.ndarray, scheme: Scheme, width: float,
                   mirror_offset: np.ndarray) -> np.ndarray:
    """The flip test's answer, (B, K, 2) crop pixels: the mean of the points on crops ``width`` pixels
    wide and of those on the mirrored crops, mirrored back plus ``mirror_offset`` (what mirroring
    turns around of the labels' convention, LandmarkModel.mirror_offset, in these crops' pixels)."""
    return (points + scheme.mirror_points(on_mirrored, width) + mirror_offset) / 2


@dataclass
class Faces:
    """Faces found in one image. Arrays are numpy; coordinates are 0-based image pixels."""
    landmarks: np.ndarray
    """(N, K, 2) float32."""
    boxes: np.ndarray
    """(N, 4) float32 x1, y1, x2, y2: the boxes the crops were made from."""
    scores: np.ndarray
    """(N,) float32 detection scores (1.0 for boxes given by the caller)."""
    scheme: str
    image_size: tuple[int, int] = (0, 0)
    """(width, height) of the image."""
    extras: dict = field(default_factory=dict)
    detector: str | None = None
    """Name of the face detector that found the faces ("yunet", "haar", ...); None for given boxes."""

    def __len__(self) -> int:
        return int(self.landmarks.shape[0])

    def to_annotation(self, path: str) -> AnnotatedImage:
        return AnnotatedImage(path=path, faces=[Face(l, b) for l, b in zip(self.landmarks, self.boxes)],
                              width=self.image_size[0], height=self.image_size[1])

    def take(self, keep: object) -> "Faces":
        """The faces at the indices (or boolean mask) ``keep``, e.g. to drop faces from a result."""
        idx = np.asarray(keep)
        idx = idx.astype(np.int64) if idx.dtype != bool else idx
        return Faces(self.landmarks[idx], self.boxes[idx], self.scores[idx], self.scheme, self.image_size,
                     dict(self.extras), self.detector)


def _as_boxes(boxes: object, width: int, height: int) -> np.ndarray:
    try:
        b = np.asarray(boxes, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"boxes must be numbers shaped (N, 4) as x1, y1, x2, y2; got {boxes!r:.80}") from None
    if b.size == 0:
        return np.zeros((0, 4), np.float32)
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4) as x1, y1, x2, y2; got shape {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError("boxes contain NaN or infinite values")
    if (b[:, 2:] <= b[:, :2]).any():
        raise ValueError("each box needs x2 > x1 and y2 > y1")
    outside = (b[:, 2:] < 0).any(1) | (b[:, :2] >= (width, height)).any(1)
    if outside.any():
        raise ValueError(f"box {int(np.argmax(outside))} lies entirely outside the {width}x{height} image")
    return b


def _check_refine(refine: object) -> Refine:
    if refine not in (True, False, "auto"):
        raise ValueError(f"refine must be True, False or 'auto'; got {refine!r}")
    return refine  # type: ignore[return-value]


def _check_min(name: str, value: object, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number >= 0{' or None' if allow_none else ''}; got {value!r}")
    return float(value)


class FaceLandmarker:
    """A landmark model plus a face detector. ``flip_test`` averages with the mirrored crop;
    ``refine`` adds a second stage framed on the first prediction (3x the model time; more accurate
    with any box, and robust to loose boxes and tilted heads). ``"auto"`` (the default) refines the
    faces the detector found and not the boxes a caller gives: a detector's boxes are loose.
    ``upright_first`` frames the first pass with the eyes level for detectors that find five points
    (YuNet); off by default, as it measured no better than the detector's box (docs/detection.md).

    ``min_score`` keeps the detector's faces scoring at least that (None: the detector's own
    default, ``detector.min_score``); ``min_face`` those whose box's short side is at least that many
    pixels. Both can be changed per :meth:`predict` call. Accuracy and speed: docs/detection.md.

    ``backend``: "torch" runs the PyTorch model (the default for a model built in memory), "onnx" runs
    onnxruntime (the default of ``from_pretrained``; see facelm.onnx_files)."""

    def __init__(self, model: LandmarkModel, detector: object | None = "default", backend: Backend = "torch",
                 flip_test: bool = False, refine: Refine = "auto", num_threads: int | None = None,
                 max_pixels: int = MAX_PIXELS, onnx_file: str | os.PathLike | None = None,
                 min_score: float | None = None, min_face: float = 0.0, upright_first: bool = False):
        self.model = model.eval()
        self.scheme = get_scheme(model.scheme)
        if isinstance(detector, str):  # "default", "yunet", "haar", "dlib", ...
            from .detect import get_detector
            detector = get_detector(detector)
        self.detector = detector
        self.flip_test = flip_test
        self.refine = _check_refine(refine)
        self.min_score = _check_min("min_score", min_score, allow_none=True)
        self.min_face = _check_min("min_face", min_face, allow_none=False)
        self.upright_first = bool(upright_first)
        self.max_pixels = max_pixels
        self.backend = backend
        self.num_threads = num_threads
        self._onnx = None
        if onnx_file is not None and backend != "onnx":
            raise ValueError("onnx_file needs backend='onnx'")
        if backend == "onnx":
            from .onnx_files import open_onnx
            # onnx_file: an export of this model, e.g. the int8 one of ``export-onnx --int8``; without
            # one, the model is exported once and the file cached by the weights' hash.
            self._onnx = open_onnx(model, onnx_file, num_threads)
        elif backend != "torch":
            raise ValueError(f"unknown backend {backend!r}; use 'torch' or 'onnx'")

    @classmethod
    def from_pretrained(cls, id_or_dir: str | os.PathLike | None = None, detector: object | None = "default",
                        backend: Backend = "onnx", **kwargs) -> "FaceLandmarker":
        """The bundled default model (None), a local model folder, or a Hugging Face Hub repo id, run by
        onnxruntime: the ONNX file shipped with the model (``facelm.onnx_files.ONNX_FILES``) or else an
        export cached on first use. ``backend="torch"`` runs the PyTorch model instead."""
        model = load_model(id_or_dir)
        if backend == "onnx" and kwargs.get("onnx_file") is None:
            from .onnx_files import onnx_beside
            folder = local_folder(id_or_dir)
            kwargs["onnx_file"] = onnx_beside(folder, None if folder is not None else str(id_or_dir))
        return cls(model, detector=detector, backend=backend, **kwargs)

    @property
    def input_size(self) -> int:
        return self.model.input_size

    # -- the model on crops ---------------------------------------------------------------------
    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 crops -> (B, K, 2) landmarks in crop pixels."""
        x = crops_to_input(crops, self.model.in_chans, np.float32 if self._onnx is None else self._onnx.input_dtype)
        pts = self._run(x)
        if self.flip_test:
            pts = flip_test_mean(pts, self._run(np.ascontiguousarray(x[..., ::-1])), self.scheme, self.input_size,
                                 self.model.mirror_offset.numpy())
        return pts.astype(np.float32)

    def _run(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros((0, self.scheme.num_points, 2), np.float32)
        if self._onnx is not None:
            return self._onnx(x)
        threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            with torch.inference_mode():
                return self.model.predict(torch.from_numpy(x)).numpy()
        finally:
            torch.set_num_threads(threads)

    def _landmarks_from_boxes(self, img: np.ndarray, boxes: np.ndarray,
                              rolls: np.ndarray | None = None) -> np.ndarray:
        s, scale, shift = self.input_size, self.model.crop_scale, self.model.crop_shift_y
        rolls = np.zeros(len(boxes)) if rolls is None else rolls
        mats = [crop_matrix(b, s, scale, shift, float(r)) for b, r in zip(boxes, rolls)]
        crops = np.stack([warp(img, m, s) for m in mats]) if mats else np.zeros((0, s, s, 3), np.uint8)
        return uncrop_points(self.predict_crops(crops), mats)

    def refine_points(self, img: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The refine stage: (N, K, 2) points in the HxWx3 RGB ``img`` -> new points, the mean of two
        crops framed on ``first`` (one axis-aligned, one turned so that the eyes are level), and the
        axis-aligned boxes (N, 4). Also how a video tracker follows a face from its last points."""
        n = len(first)
        box = face_box(first, self.scheme)
        upright, roll = upright_face_box(first, self.scheme)
        pts = self._landmarks_from_boxes(img, np.concatenate([box, upright]), np.concatenate([np.zeros(n), roll]))
        return (pts[:n] + pts[n:]) / 2, box

    # -- the public call --------------------------------------------------------------------------
    def detect(self, image: ImageLike, min_score: float | None = None, min_face: float | None = None):
        """The detector's faces (:class:`facelm.detect.DetectedFaces`) that pass the score and size
        thresholds (arguments override the landmarker's own, see the class docstring)."""
        if self.detector is None:
            raise ValueError("no face detector configured: pass boxes=")
        from .detect import DetectedFaces
        if hasattr(self.detector, "find"):
            found = self.detector.find(image)
        else:  # any object with detect(image) -> (boxes, scores) will do
            boxes, scores = self.detector.detect(image)
            found = DetectedFaces(np.asarray(boxes, np.float32).reshape(-1, 4),
                                  np.asarray(scores, np.float32).reshape(-1))
        score = self.min_score if min_score is None else _check_min("min_score", min_score, allow_none=False)
        if score is None:
            score = getattr(self.detector, "min_score", None)
        size = self.min_face if min_face is None else _check_min("min_face", min_face, allow_none=False)
        short_side = np.minimum(found.boxes[:, 2] - found.boxes[:, 0], found.boxes[:, 3] - found.boxes[:, 1])
        keep = short_side >= size
        if score is not None:
            keep &= found.scores >= score
        return found.take(keep)

    def predict(self, image: ImageLike, boxes: object | None = None, scheme: str | None = None,
                refine: Refine | None = None, min_score: float | None = None,
                min_face: float | None = None) -> Faces:
        """Landmarks of every face. ``boxes`` (N, 4) x1, y1, x2, y2 skip the detector; boxes are
        best given as a tight box around the face from brows to chin (as 300-W's bb_ground_truth).
        ``refine``, ``min_score`` and ``min_face`` override the landmarker's settings for this call;
        refined faces report the box the second stage was framed on (the first answer's face box),
        not the detector's."""
        img = to_rgb_array(image, self.max_pixels)
        h, w = img.shape[:2]
        rolls = None
        detector = None
        if boxes is None:
            found = self.detect(img, min_score, min_face)
            b, scores = found.boxes, found.scores
            detector = getattr(self.detector, "name", type(self.detector).__name__)
            first, rolls = found.upright if self.upright_first and found.upright is not None else (b, None)
        else:
            b = first = _as_boxes(boxes, w, h)
            scores = np.ones(len(b), np.float32)
        pts = self._landmarks_from_boxes(img, first, rolls)
        mode = self.refine if refine is None else _check_refine(refine)
        if (boxes is None if mode == "auto" else mode) and len(b):
            pts, b = self.refine_points(img, pts)
        out_scheme = self.scheme.name
        if scheme is not None and get_scheme(scheme).name != self.scheme.name:
            pts = convert(pts, self.scheme, scheme)
            out_scheme = get_scheme(scheme).name
        return Faces(pts.astype(np.float32), b.astype(np.float32), scores, out_scheme, (w, h), detector=detector)
