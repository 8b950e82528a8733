"""In-memory annotations: what every format reads into and writes from.

Coordinates are always 0-based pixel coordinates of the image, float32, x then y.
Missing points (allowed by some formats, e.g. Kaggle's CSV) are NaN.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Face:
    landmarks: np.ndarray
    """(K, 2) float32, 0-based pixel coordinates; NaN where a point is missing."""
    box: np.ndarray | None = None
    """(4,) float32 x1, y1, x2, y2, or None when the source has no box."""
    ignore: bool = False
    """dlib's ``ignore`` flag on a box."""
    occluded: np.ndarray | None = None
    """(K,) bool: points that are labelled but hidden (COCO visibility 1); None: none are."""

    def __post_init__(self) -> None:
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(-1, 2)
        if self.box is not None:
            self.box = np.asarray(self.box, dtype=np.float32).reshape(4)
        if self.occluded is not None:
            self.occluded = np.asarray(self.occluded, dtype=bool).reshape(-1)
            if self.occluded.shape[0] != self.landmarks.shape[0]:
                raise ValueError(f"occluded has {self.occluded.shape[0]} flags for {self.landmarks.shape[0]} points")

    def occluded_flags(self) -> np.ndarray:
        """(K,) bool, all False when the source has no flags."""
        return self.occluded if self.occluded is not None else np.zeros(self.num_points, bool)

    @property
    def num_points(self) -> int:
        return int(self.landmarks.shape[0])

    def landmark_box(self) -> np.ndarray:
        """Tight box of the landmarks (300-W's ``bb_ground_truth``)."""
        return landmark_box(self.landmarks)

    def box_or_landmark_box(self) -> np.ndarray:
        return self.box if self.box is not None else self.landmark_box()

    def __eq__(self, other: object) -> bool:
        # The generated __eq__ would compare arrays elementwise and fail; NaN (a missing point) equals NaN.
        if not isinstance(other, Face):
            return NotImplemented
        return (self.ignore == other.ignore and _arrays_equal(self.landmarks, other.landmarks)
                and _arrays_equal(self.box, other.box)
                and _arrays_equal(self.occluded_flags(), other.occluded_flags()))


@dataclass
class AnnotatedImage:
    path: str
    """Image path as the source gives it (relative to the annotation file's folder, or absolute)."""
    faces: list[Face] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    pixels: np.ndarray | None = None
    """The image itself where the annotation file embeds it (Kaggle's CSV: (96, 96) uint8 grayscale);
    ``None`` when the image lives in a file at ``path``."""
    status: str | None = None
    """The annotation app's review status ("predicted", "edited", "done") where the file records it."""
    sha256: str | None = None
    """SHA-256 of the image file's bytes where the file records it (to find a photo whose name clashes)."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AnnotatedImage):
            return NotImplemented
        return (self.path == other.path and self.width == other.width and self.height == other.height
                and self.faces == other.faces and _arrays_equal(self.pixels, other.pixels)
                and self.status == other.status and self.sha256 == other.sha256)


@dataclass
class AnnotationSet:
    images: list[AnnotatedImage] = field(default_factory=list)
    scheme: str = "ibug68"
    name: str = ""
    comment: str = ""
    root: str | None = None
    """Folder that relative image paths are relative to."""

    def num_faces(self) -> int:
        return sum(len(im.faces) for im in self.images)


def _arrays_equal(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """(…, K, 2) -> (…, 4) tight x1, y1, x2, y2 ignoring NaN points."""
    pts = np.asarray(landmarks, dtype=np.float32)
    lo = np.nanmin(pts, axis=-2)
    hi = np.nanmax(pts, axis=-2)
    return np.concatenate([lo, hi], axis=-1).astype(np.float32)
