"""What every face detector shares: the box convention, calibration, downscaling and box merging.

Box convention: a detector returns boxes as the landmark model wants them, the tight box of the 68
landmarks (brows to chin, jaw side to side; 300-W's ``bb_ground_truth``), x1, y1, x2, y2 in 0-based
pixel coordinates. The model was trained on crops made from such boxes (:mod:`facelm.crop`), so a
box framed differently (a Haar box reaches up the forehead and stops above the chin) would feed it faces
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


@dataclass
class RawDetections:
    """A detector's own boxes, before calibration."""
    boxes: np.ndarray
    """(N, 4) float32 x1, y1, x2, y2 in image pixels."""
    scores: np.ndarray
    mirrored: np.ndarray
    """(N,) bool: found on the mirrored photo (a profile cascade looks one way; run on the mirror
    it finds faces looking the other way, and its box sits off the face centre the other way)."""
    points: np.ndarray | None = None
    """(N, 5, 2) float32 eyes, nose tip, mouth corners in CelebA's order (the subject's right eye, on
    the left of the picture, first), for detectors that find them; else None."""

    @classmethod
    def of(cls, boxes: np.ndarray, scores: np.ndarray, mirrored: bool | np.ndarray = False,
           points: np.ndarray | None = None) -> RawDetections:
        b = np.asarray(boxes, np.float32).reshape(-1, 4)
        flags = np.broadcast_to(np.asarray(mirrored, bool), len(b)).copy()
        pts = None if points is None else np.asarray(points, np.float32).reshape(len(b), 5, 2)
        return cls(b, np.asarray(scores, np.float32).reshape(-1), flags, pts)

    @classmethod
    def concat(cls, parts: list[RawDetections]) -> RawDetections:
        points = None
        if parts and all(p.points is not None for p in parts):
            points = np.concatenate([p.points for p in parts]).reshape(-1, 5, 2)
        return cls(np.concatenate([p.boxes for p in parts]).reshape(-1, 4),
                   np.concatenate([p.scores for p in parts]), np.concatenate([p.mirrored for p in parts]), points)

    def __len__(self) -> int:
        return len(self.boxes)

    def take(self, idx: np.ndarray) -> RawDetections:
        return RawDetections(self.boxes[idx], self.scores[idx], self.mirrored[idx],
                             None if self.points is None else self.points[idx])


@dataclass
class DetectedFaces:
    """What :meth:`FaceDetector.find` returns: landmark boxes and scores, best first, and for
    detectors that find five points (YuNet), a frame per face with its eyes level."""
    boxes: np.ndarray
    """(N, 4) float32 landmark boxes, x1, y1, x2, y2."""
    scores: np.ndarray
    """(N,) float32, higher is more confident; on the detector's own scale."""
    points: np.ndarray | None = None
    """(N, 5, 2) float32 eyes, nose tip, mouth corners (CelebA's order), or None."""
    upright: tuple[np.ndarray, np.ndarray] | None = None
    """((N, 4) boxes, (N,) roll degrees): each face's landmark box in the frame where its eyes are
    level, as :func:`facelm.face_box.upright_face_box` gives it; None without five points."""

    def __len__(self) -> int:
        return len(self.boxes)

    def take(self, keep: np.ndarray) -> DetectedFaces:
        return DetectedFaces(self.boxes[keep], self.scores[keep], None if self.points is None else self.points[keep],
                             None if self.upright is None else (self.upright[0][keep], self.upright[1][keep]))


@dataclass(frozen=True)
class BoxCalibration:
    """Maps a detector's raw box to the landmark box: the centre moves by (dx, dy) raw box widths /
    heights (dx the other way for boxes found on the mirrored photo) and the size scales by (sx, sy)."""
    dx: float = 0.0
    dy: float = 0.0
    sx: float = 1.0
    sy: float = 1.0

    def apply(self, boxes: np.ndarray, mirrored: np.ndarray | None = None) -> np.ndarray:
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        dx = self.dx if mirrored is None else np.where(mirrored, -self.dx, self.dx)
        cx = (b[:, 0] + b[:, 2]) / 2 + dx * w
        cy = (b[:, 1] + b[:, 3]) / 2 + self.dy * h
        hw, hh = self.sx * w / 2, self.sy * h / 2
        return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1).astype(np.float32)

    def inverse(self) -> BoxCalibration:
        """The mapping back: a landmark box to the box this detector would draw (for tools, such as
        dlib's shape predictor, that expect their own detector's framing)."""
        return BoxCalibration(-self.dx / self.sx, -self.dy / self.sy, 1 / self.sx, 1 / self.sy)

    @classmethod
    def fit(cls, raw: np.ndarray, target: np.ndarray, mirrored: np.ndarray | None = None,
            outlier_sd: float = 3.0) -> BoxCalibration:
        """Least squares in raw-box units (so big and small faces weigh the same), over matched
        (raw, target) box pairs; pairs more than ``outlier_sd`` robust SDs off the first fit (wrong
        matches, a box on the neighbouring face) are dropped and the fit redone."""
        raw = np.asarray(raw, np.float64).reshape(-1, 4)
        target = np.asarray(target, np.float64).reshape(-1, 4)
        if len(raw) == 0 or len(raw) != len(target):
            raise ValueError(f"need matched box pairs to fit a calibration, got {len(raw)} and {len(target)}")
        w, h = raw[:, 2] - raw[:, 0], raw[:, 3] - raw[:, 1]
        # Each column is one parameter's per-face estimate; its least-squares fit is the mean.
        sign = 1.0 if mirrored is None else np.where(np.asarray(mirrored, bool), -1.0, 1.0)
        samples = np.stack([
            sign * ((target[:, 0] + target[:, 2]) - (raw[:, 0] + raw[:, 2])) / 2 / w,
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


def _intersections(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 4) x (M, 4) -> (N, M) intersection areas, (N, 1) areas of a, (1, M) areas of b."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    return iw * ih, (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]), (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) -> (N, M) intersection over union."""
    inter, area_a, area_b = _intersections(a, b)
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def greedy_matches(det: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int]]:
    """(detection, face) index pairs matched one-to-one with IoU above ``threshold``, best pairs first."""
    if len(det) == 0 or len(gt) == 0:
        return []
    iou = box_iou(det, gt)
    pairs = []
    while True:
        n, m = np.unravel_index(int(np.argmax(iou)), iou.shape)
        if iou[n, m] <= threshold:
            return pairs
        pairs.append((int(n), int(m)))
        iou[n, :] = -1
        iou[:, m] = -1


def _overlap_of_smaller(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over the smaller box's area: 1 where one box lies inside the other."""
    inter, area_a, area_b = _intersections(a, b)
    return inter / np.maximum(np.minimum(area_a, area_b), 1e-9)


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


def group_windows(boxes: np.ndarray, min_neighbors: int, iou: float = 0.5) -> Detections:
    """Merge a sliding-window detector's raw hits into one box per face.

    Hits overlapping by more than ``iou`` (transitively) form a group; a group needs more than
    ``min_neighbors`` hits (a real face fires at many nearby positions and scales, a false alarm at
    few). Its box is the mean of its hits and its score the number of hits: unlike a cascade's stage
    sums, that means the same for every cascade, so boxes from several cascades can be ranked
    together (summing the stage sums instead ranked no better on 300-W and dlib's photos)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
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
        out_scores.append(members.sum())
    if not out_boxes:
        return empty_detections()
    b, s = np.asarray(out_boxes, np.float32), np.asarray(out_scores, np.float32)
    keep = suppress(b, s)
    return b[keep], s[keep]


class FaceDetector(ABC):
    """Anything with ``detect(image) -> (boxes, scores)`` in the landmark-box convention.

    ``min_score`` is the score a caller should keep faces from (``FaceLandmarker`` does, unless told
    otherwise); ``detect`` itself returns every candidate, so that a threshold can be moved after the
    fact. None keeps all."""

    name: str = "detector"
    min_score: float | None = None
    fallback_reason: str | None = None
    """Set on the detector ``"default"`` falls back to: why the preferred one could not be built."""

    @abstractmethod
    def detect(self, image: ImageLike) -> Detections:
        """``image`` HxWx3 uint8 RGB (or anything :func:`facelm.image.to_rgb_array` takes) ->
        (boxes (N, 4) float32 x1, y1, x2, y2 landmark boxes, scores (N,) float32), best first."""

    def find(self, image: ImageLike) -> DetectedFaces:
        """:meth:`detect`'s faces, with five points and upright frames where the detector has them."""
        boxes, scores = self.detect(image)
        return DetectedFaces(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32).reshape(-1))


class CalibratedDetector(FaceDetector):
    """A detector whose raw boxes go through one :class:`BoxCalibration`.

    Photos larger than ``max_side`` on their longest side are shrunk for detection (detectors slow
    down with the pixel count, and faces in big photos are big), and boxes are mapped back."""

    def __init__(self, calibration: BoxCalibration, max_side: int | None):
        self.calibration = calibration
        self.max_side = max_side

    def detect(self, image: ImageLike) -> Detections:
        raw = self.detect_raw(image)
        return self.calibration.apply(raw.boxes, raw.mirrored), raw.scores

    def detect_raw(self, image: ImageLike) -> RawDetections:
        """The detector's own boxes, before calibration, best first."""
        img = to_rgb_array(image)
        h, w = img.shape[:2]
        if self.max_side and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            img = cv2.resize(img, (max(round(w * scale), 1), max(round(h * scale), 1)), interpolation=cv2.INTER_AREA)
        raw = self._detect(img)
        # Pixel edges (pixel i spans [i, i+1)) scale exactly; -0.5 converts back to pixel centres.
        sx, sy = w / img.shape[1], h / img.shape[0]
        raw.boxes = ((raw.boxes.astype(np.float64) + 0.5) * np.array([sx, sy, sx, sy]) - 0.5).astype(np.float32)
        if raw.points is not None:
            raw.points = ((raw.points.astype(np.float64) + 0.5) * np.array([sx, sy]) - 0.5).astype(np.float32)
        return raw.take(np.argsort(-raw.scores, kind="stable"))

    @abstractmethod
    def _detect(self, image: np.ndarray) -> RawDetections:
        """Raw boxes in the (possibly shrunk) image's pixel-centre coordinates."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(calibration={self.calibration}, max_side={self.max_side})"


class CombinedDetector(FaceDetector):
    """Several detectors on the same photo (e.g. a frontal and a profile cascade): their calibrated
    boxes are pooled and duplicates of one face suppressed, the higher score winning."""

    def __init__(self, detectors: list[FaceDetector], name: str = "combined"):
        self.detectors = list(detectors)
        self.name = name

    def detect(self, image: ImageLike) -> Detections:
        img = to_rgb_array(image)
        return self.merge([d.detect(img) for d in self.detectors])

    @staticmethod
    def merge(parts: list[Detections]) -> Detections:
        boxes = np.concatenate([b for b, _ in parts]).reshape(-1, 4).astype(np.float32)
        scores = np.concatenate([s for _, s in parts]).astype(np.float32)
        keep = suppress(boxes, scores)
        return boxes[keep], scores[keep]

    def __repr__(self) -> str:
        return f"CombinedDetector({self.detectors!r}, name={self.name!r})"
