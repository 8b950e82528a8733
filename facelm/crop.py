"""The face crop rule, shared by training and inference so that both see faces framed the same way.

A face box (x1, y1, x2, y2) in 0-based pixel coordinates becomes a square crop centred on the box
(moved down by ``shift_y`` box heights), with side ``scale * max(width, height)``, resampled to
``size`` x ``size``. Points map with a 2x3 affine matrix in the pixel-centre convention that
cv2.warpAffine uses, so a landmark at pixel (x, y) lands on the crop pixel that shows it.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

DEFAULT_SCALE = 1.3
"""Crop side over the larger side of the tight landmark box: room for box jitter and head pose."""


def crop_matrix(box: np.ndarray, size: int, scale: float = DEFAULT_SCALE, shift_y: float = 0.0,
                rotation_deg: float = 0.0) -> np.ndarray:
    """(2, 3) float64 matrix from image pixels to crop pixels (optionally rotated about the centre)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    side = scale * max(w, h)
    # Work in continuous coordinates (pixel i spans [i, i+1)) so that centres line up exactly.
    cx = (x1 + x2) / 2 + 0.5
    cy = (y1 + y2) / 2 + 0.5 + shift_y * h
    k = size / side
    a = math.radians(rotation_deg)
    c, s = k * math.cos(a), k * math.sin(a)
    # x_crop + 0.5 = rot @ (x + 0.5 - c) + size / 2, with rot = [[c, s], [-s, c]]
    dx, dy = 0.5 - cx, 0.5 - cy
    half = size / 2 - 0.5
    return np.array([[c, s, c * dx + s * dy + half], [-s, c, -s * dx + c * dy + half]])


def invert(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))


def transform_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to (…, 2) points; NaN stays NaN."""
    pts = np.asarray(points, dtype=np.float64)
    out = pts @ m[:, :2].T + m[:, 2]
    return out.astype(np.float32)


def uncrop_points(points: np.ndarray, mats: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """(N, K, 2) points in N crops -> float32 image pixels, by the inverses of the crops' (2, 3)
    image->crop matrices: one batched product, as a face is on the inference hot path."""
    inv = np.stack([invert(m) for m in mats]) if len(mats) else np.zeros((0, 2, 3))
    return (np.asarray(points, np.float64) @ inv[:, :, :2].transpose(0, 2, 1) + inv[:, None, :, 2]).astype(np.float32)


def warp(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """Resample the crop. Area averaging first when shrinking a lot, so small crops are not aliased."""
    shrink = 1.0 / max(math.sqrt(abs(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0])), 1e-9)
    f = int(shrink // 1.5)
    if f >= 2:
        # Only the part of the photo that the crop shows is shrunk, so a face in a big photo costs what
        # a face in a small one does; its sides are cut to multiples of f because OpenCV's area
        # resize is several times faster for whole-number factors.
        image, m = _source_region(image, m, size, f)
        small = cv2.resize(image, (max(image.shape[1] // f, 1), max(image.shape[0] // f, 1)),
                           interpolation=cv2.INTER_AREA)
        # Points scale by the real size ratio (the integer division can round off a pixel).
        sx, sy = small.shape[1] / image.shape[1], small.shape[0] / image.shape[0]
        pre = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]])
        m = compose(m, invert(pre))
        image = small
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)


def _source_region(image: np.ndarray, m: np.ndarray, size: int, multiple: int) -> tuple[np.ndarray, np.ndarray]:
    """The part of ``image`` under the crop (plus a pixel of context for interpolation), with sides
    that are multiples of ``multiple`` where the image allows, and ``m`` re-based onto it."""
    corners = transform_points(np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64) - 0.5, invert(m))
    h, w = image.shape[:2]
    lo, hi = [], []
    for axis, n in ((0, w), (1, h)):
        a = int(np.clip(np.floor(corners[:, axis].min()) - 1, 0, n))
        b = int(np.clip(np.ceil(corners[:, axis].max()) + 2, 0, n))
        span = -(-(b - a) // multiple) * multiple
        a = max(min(a, n - span), 0)  # widen to a whole multiple, leftwards at the image's far edge
        lo.append(a)
        hi.append(min(a + span, n))
    (x0, y0), (x1, y1) = lo, hi
    if x1 <= x0 or y1 <= y0:
        return image, m
    shifted = m.copy()
    shifted[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    return image[y0:y1, x0:x1], shifted


def compose(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Matrix of applying ``first`` then ``second``."""
    a = np.vstack([second, [0, 0, 1]])
    b = np.vstack([first, [0, 0, 1]])
    return (a @ b)[:2]


def crop_face(image: np.ndarray, box: np.ndarray, size: int, scale: float = DEFAULT_SCALE,
              shift_y: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Crop one face: returns (crop HxWxC uint8, image->crop matrix)."""
    m = crop_matrix(box, size, scale, shift_y)
    return warp(image, m, size), m


LUMA = (0.299, 0.587, 0.114)
"""RGB weights of the one channel that grayscale (``in_chans=1``) models see, in training and inference
(ITU-R 601 luma)."""


def crops_to_input(crops: np.ndarray, in_chans: int, dtype: type = np.float32) -> np.ndarray:
    """(B, S, S, 3) uint8 crops -> (B, in_chans, S, S) in [0, 255], what the models take: float32, or
    the uint8 pixels themselves for a model file that takes them (3 channels only)."""
    if dtype == np.uint8 and in_chans != 3:
        raise ValueError("only 3-channel models take uint8 crops")
    x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=dtype)
    if in_chans == 1:
        x = (x * np.array(LUMA, np.float32)[None, :, None, None]).sum(1, keepdims=True)
    return x
