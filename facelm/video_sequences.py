"""Short test videos made from one annotated photo, with the true points of every frame known.

- :func:`still_sequence`: a still scene as a camera sees it: the same photo in every frame, moved by
  a random sub-pixel shift, with sensor noise and a fresh JPEG encoding per frame. Ideal output:
  points that move exactly with the shift.
- :func:`pan_sequence`: the photo panned across a static canvas at a constant speed (the same noise
  and JPEG), for the lag of a filter.

The benchmark (:mod:`facelm.video_bench`) and the tests build their videos with these.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .face_box import face_box

CANVAS = (640, 480)
"""(width, height) of the frames: 640 px video."""
BACKGROUND = 110


@dataclass
class Sequence:
    frames: list[np.ndarray]
    """RGB uint8 frames."""
    truth: np.ndarray
    """(T, K, 2) float32: the annotated points where each frame shows them."""
    shift: np.ndarray
    """(T, 2) float32: the photo's offset in each frame (the truth minus the photo's own points)."""
    fps: float = 30.0


def fit_face(photo: np.ndarray, points: np.ndarray, face_size: float) -> tuple[np.ndarray, np.ndarray]:
    """The photo scaled so that the face box of ``points`` (68, 2) is ``face_size`` px on its larger side."""
    box = face_box(points, "ibug68")
    k = face_size / max(float(box[2] - box[0]), float(box[3] - box[1]))
    h, w = photo.shape[:2]
    size = (max(1, round(w * k)), max(1, round(h * k)))
    scaled = cv2.resize(photo, size, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    # Pixel-centre convention: x' + 0.5 = k' (x + 0.5), with k' the exact per-axis factor.
    kx, ky = size[0] / w, size[1] / h
    pts = (points.astype(np.float64) + 0.5) * [kx, ky] - 0.5
    return scaled, pts.astype(np.float32)


def _camera(frame: np.ndarray, rng: np.random.Generator, noise: float, jpeg: tuple[int, int]) -> np.ndarray:
    noisy = np.clip(frame.astype(np.float32) + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
    quality = int(rng.integers(jpeg[0], jpeg[1] + 1))
    ok, data = cv2.imencode(".jpg", noisy[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])


def _place(photo: np.ndarray, offset: np.ndarray, canvas: tuple[int, int]) -> np.ndarray:
    out = np.full((canvas[1], canvas[0], 3), BACKGROUND, np.uint8)
    m = np.array([[1.0, 0.0, offset[0]], [0.0, 1.0, offset[1]]])
    cv2.warpAffine(photo, m, canvas, dst=out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    return out


def _render(photo: np.ndarray, points: np.ndarray, offsets: np.ndarray, rng: np.random.Generator, noise: float,
            jpeg: tuple[int, int], canvas: tuple[int, int], fps: float) -> Sequence:
    frames = [_camera(_place(photo, o, canvas), rng, noise, jpeg) for o in offsets]
    truth = points[None] + offsets[:, None].astype(np.float32)
    return Sequence(frames, truth.astype(np.float32), offsets.astype(np.float32), fps)


def still_sequence(photo: np.ndarray, points: np.ndarray, frames: int = 60, face_size: float = 150.0,
                   max_shift: float = 0.5, noise: float = 2.0, jpeg: tuple[int, int] = (75, 95),
                   canvas: tuple[int, int] = CANVAS, seed: int = 0, fps: float = 30.0) -> Sequence:
    """The photo, its face ``face_size`` px, centred on the canvas; per frame a uniform random shift
    of up to ``max_shift`` px each way, Gaussian noise of ``noise`` grey levels and JPEG quality
    drawn from ``jpeg``."""
    rng = np.random.default_rng(seed)
    img, pts = fit_face(photo, points, face_size)
    centre = np.array(canvas, np.float64) / 2 - np.array(img.shape[1::-1]) / 2
    offsets = centre + rng.uniform(-max_shift, max_shift, (frames, 2))
    return _render(img, pts, offsets, rng, noise, jpeg, canvas, fps)


def pan_sequence(photo: np.ndarray, points: np.ndarray, speed: float, frames: int = 60, face_size: float = 150.0,
                 noise: float = 2.0, jpeg: tuple[int, int] = (75, 95), canvas: tuple[int, int] = CANVAS,
                 seed: int = 0, fps: float = 30.0) -> Sequence:
    """The photo moving left to right at ``speed`` px per frame for ``frames`` frames, its path
    centred on the canvas (the photo may be cut by the canvas edges at the ends of a long pan)."""
    rng = np.random.default_rng(seed)
    img, pts = fit_face(photo, points, face_size)
    travel = speed * (frames - 1)
    x0 = canvas[0] / 2 - img.shape[1] / 2 - travel / 2
    y0 = canvas[1] / 2 - img.shape[0] / 2
    offsets = np.stack([x0 + speed * np.arange(frames), np.full(frames, y0)], axis=1)
    return _render(img, pts, offsets, rng, noise, jpeg, canvas, fps)
