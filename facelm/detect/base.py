"""What every face detector shares: the box convention, calibration, downscaling and box merging.

Box convention: a detector returns boxes as the landmark model wants them, the tight box of the 68
landmarks (brows to chin, jaw side to side; 300-W's ``bb_ground_truth``), x1, y1, x2, y2 in 0-based
pixel coordinates. The model was trained on crops made from such boxes (:mod:`facelm.crop`), so a
box framed differently (a Haar box reaches the forehead and stops at the lips) would feed it faces
shifted and scaled unlike anything it saw. Each detector's raw boxes go through a
:class:`BoxCalibration` fitted on 300-W faces (``python -m facelm.detect calibrate``).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import cv2
import numpy as np

from ..image import ImageLike, to_rgb_array

Detections = tuple[np.ndarray, np.ndarray]
"""(boxes (N, 4) float32 x1, y1, x2, y2; scores (N,) float32, higher is more confident)."""


def empty_detections() -> Detections:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)


@dataclass(frozen=True)
class BoxCalibration:
    """Maps a detector's raw box to the landmark box: the centre moves by (dx, dy) raw box widths /
    heights and the size scales by (sx, sy)."""
    dx: float = 0.0
    dy: float = 0.0
    sx: float = 1.0
    sy: float = 1.0

    def apply(self, boxes: np.ndarray) -> np.ndarray:
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        cx = (b[:, 0] + b[:, 2]) / 2 + self.dx * w
        cy = (b[:, 1] + b[:, 3]) / 2 + self.dy * h
        hw, hh = self.sx * w / 2, self.sy * h / 2
        return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1).astype(np.float32)

    @classmethod
    def fit(cls, raw: np.ndarray, target: np.ndarray, outlier_sd: float = 3.0) -> BoxCalibration:
        """Least squares in raw-box units (so big and small faces weigh the same), over matched
        (raw, target) box pairs; pairs more than ``outlier_sd`` robust SDs off the first fit (wrong
        matches, a box on the neighbouring face) are dropped and the fit redone."""
        raw = np.asarray(raw, np.float64).reshape(-1, 4)
        target = np.asarray(target, np.float64).reshape(-1, 4)
        if len(raw) == 0 or len(raw) != len(target):
            raise ValueError(f"need matched box pairs to fit a calibration, got {len(raw)} and {len(target)}")
        w, h = raw[:, 2] - raw[:, 0], raw[:, 3] - raw[:, 1]
        # Each column is one parameter's per-face estimate; its least-squares fit is the mean.
        samples = np.stack([
            ((target[:, 0] + target[:, 2]) - (raw[:, 0] + raw[:, 2])) / 2 / w,
            ((target[:, 1] + target[:, 3]) - (raw[:, 1] + raw[:, 3])) / 2 / h,
            (target[:, 2] - target[:, 0]) / w,
            (target[:, 3] - target[:, 1]) / h,
        ], axis=1)
        keep = np.ones(len(samples), bool)
        if len(samples) >= 10:
            med = np.median(samples, axis=0)
            mad = np.median(np.abs(samples - med), axis=0) * 1.4826 + 1e-9
            keep = (np.abs(samples - med) <= outlier_sd * mad).all(axis=1)
        dx, dy, sx, sy = samples[keep].mean(axis=0)
        return cls(round(float(dx), 4), round(float(dy), 4), round(float(sx), 4), round(float(sy), 4))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) -> (N, M) intersection over union."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def _overlap_of_smaller(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over the smaller box's area: 1 where one box lies inside the other."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return iw * ih / np.maximum(np.minimum(area_a, area_b), 1e-9)


def suppress(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.3, nested: float = 0.7) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the boxes kept, best score first. A box is dropped
    when it overlaps a better one by more than ``iou``, or lies mostly (``nested``) inside or around
    it: detectors often fire once on a face and once on its inner part."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    if len(order) == 0:
        return order
    ious = box_iou(boxes, boxes)
    inside = _overlap_of_smaller(boxes, boxes)
    keep: list[int] = []
    for i in order:
        if all(ious[i, j] <= iou and inside[i, j] <= nested for j in keep):
            keep.append(int(i))
    return np.asarray(keep, dtype=np.int64)


def group_windows(boxes: np.ndarray, weights: np.ndarray, min_neighbors: int, iou: float = 0.5, score: str = 'sumw') -> Detections:
    """Merge a sliding-window detector's raw hits into one box per face.

    Hits overlapping by more than ``iou`` (transitively) form a group; a group needs more than
    ``min_neighbors`` hits (a real face fires at many nearby positions and scales, a false alarm at
    few). Its box is the mean of its hits; its score adds the hits' confidences, so it grows with
    both the number of hits and how surely each passed the cascade."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    weights = np.asarray(weights, np.float64).reshape(-1)
    n = len(boxes)
    if n == 0:
        return empty_detections()
    adjacent = box_iou(boxes, boxes) > iou
    labels = np.arange(n)
    while True:  # connected components by label propagation; converges in a few rounds
        new = np.where(adjacent, labels[None, :], n).min(axis=1)
        new = new[new]
        if np.array_equal(new, labels):
            break
        labels = new
    out_boxes, out_scores = [], []
    for lab in np.unique(labels):
        members = labels == lab
        if members.sum() <= min_neighbors:
            continue
        out_boxes.append(boxes[members].mean(axis=0))
        out_scores.append(members.sum() if score == 'count' else np.clip(weights[members] + 3, 0, None).sum())
    if not out_boxes:
        return empty_detections()
    b, s = np.asarray(out_boxes, np.float32), np.asarray(out_scores, np.float32)
    keep = suppress(b, s)
    return b[keep], s[keep]


class FaceDetector(ABC):
    """Photo -> face boxes in the landmark-box convention (see the module docstring).

    Photos larger than ``max_side`` on their longest side are shrunk for detection (detectors slow
    down with the pixel count, and faces in big photos are big), and boxes are mapped back."""

    name: str = "detector"

    def __init__(self, calibration: BoxCalibration, max_side: int | None):
        self.calibration = calibration
        self.max_side = max_side

    def detect(self, image: ImageLike) -> Detections:
        """``image`` HxWx3 uint8 RGB (or anything :func:`facelm.image.to_rgb_array` takes) ->
        (boxes (N, 4) float32 x1, y1, x2, y2 landmark boxes, scores (N,) float32), best first."""
        boxes, scores = self.detect_raw(image)
        return self.calibration.apply(boxes), scores

    def detect_raw(self, image: ImageLike) -> Detections:
        """Like :meth:`detect` but the detector's own boxes, before calibration."""
        img = to_rgb_array(image)
        h, w = img.shape[:2]
        scale = 1.0
        if self.max_side and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            img = cv2.resize(img, (max(round(w * scale), 1), max(round(h * scale), 1)), interpolation=cv2.INTER_AREA)
        boxes, scores = self._detect(img)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        # Pixel edges (pixel i spans [i, i+1)) scale exactly; -0.5 converts back to pixel centres.
        sx, sy = w / img.shape[1], h / img.shape[0]
        boxes = (boxes + 0.5) * np.array([sx, sy, sx, sy]) - 0.5
        order = np.argsort(-np.asarray(scores, np.float32), kind="stable")
        return boxes[order].astype(np.float32), np.asarray(scores, np.float32).reshape(-1)[order]

    @abstractmethod
    def _detect(self, image: np.ndarray) -> Detections:
        """Raw boxes in the (possibly shrunk) image's pixel-centre coordinates, and scores."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(calibration={self.calibration}, max_side={self.max_side})"
