"""Drawing landmarks onto images: numpy RGB uint8 in, a new numpy RGB uint8 out (input never modified).

Points are 0-based pixel coordinates (pixel centres at integers), drawn anti-aliased at sub-pixel
precision. NaN points are skipped, as are lines that touch them.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .errors import ImageError, SchemeError
from .schemes import Scheme, get_scheme

__all__ = [
    "Color", "DEFAULT_COLOR", "GT_COLOR", "PRED_COLOR", "ERROR_LINE_COLOR", "HIGHLIGHT_COLOR", "BOX_COLOR",
    "to_rgb", "draw_landmarks", "draw_comparison", "worst_points",
]

Color = tuple[int, int, int]
DEFAULT_COLOR: Color = (255, 0, 0)
GT_COLOR: Color = (0, 200, 0)
PRED_COLOR: Color = (230, 0, 0)
ERROR_LINE_COLOR: Color = (255, 220, 0)
HIGHLIGHT_COLOR: Color = (255, 0, 255)
BOX_COLOR: Color = (0, 160, 255)

_SHIFT = 4                      # cv2 fixed-point fraction bits: coordinates in 1/16 px
_SCALE = 1 << _SHIFT
_MAX_COORD = 1e6                # beyond this a point is nonsense, and x*16 would overflow cv2's int32
_HIGHLIGHT_RING = 2.5           # ring radius, in point radii

Highlight = Sequence[int] | Sequence[Sequence[int]] | np.ndarray | None


def to_rgb(image: np.ndarray) -> np.ndarray:
    """A new contiguous (H, W, 3) uint8 copy of a gray (H, W) / (H, W, 1), RGB or RGBA uint8 image.

    RGBA drops its alpha: landmark overlays are for looking at, not compositing.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ImageError(f"expected a uint8 image, got dtype {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if img.ndim == 3 and img.shape[2] in (3, 4):
        return np.array(img[:, :, :3], order="C", copy=True)
    raise ImageError(f"expected a (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got shape {img.shape}")


def _as_faces(landmarks: np.ndarray) -> np.ndarray:
    """(K, 2) or (N, K, 2) -> (N, K, 2) float64."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim == 2:
        pts = pts[None]
    if pts.ndim != 3 or pts.shape[-1] != 2:
        raise ValueError(f"landmarks must have shape (K, 2) or (N, K, 2), got {np.shape(landmarks)}")
    return pts


def _as_boxes(boxes: np.ndarray | None, n: int) -> np.ndarray | None:
    if boxes is None:
        return None
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if arr.shape[0] != n:
        raise ValueError(f"expected {n} boxes (x1, y1, x2, y2), got {arr.shape[0]}")
    return arr


def _per_face_indices(highlight: Highlight, n: int, k: int) -> list[np.ndarray]:
    """One index array per face: a flat list applies to every face, a nested one is per face."""
    if highlight is None or len(highlight) == 0:
        return [np.empty(0, dtype=int)] * n
    if all(np.ndim(h) == 0 for h in highlight):
        per_face = [np.asarray(highlight, dtype=int).ravel()] * n
    elif len(highlight) == n:
        per_face = [np.asarray(h, dtype=int).ravel() for h in highlight]
    else:
        raise ValueError(f"highlight has {len(highlight)} per-face lists for {n} faces")
    for idx in per_face:
        if idx.size and (idx.min() < -k or idx.max() >= k):
            raise ValueError(f"highlight index out of range for {k} points: {idx.tolist()}")
    return per_face


def _drawable(p: np.ndarray) -> bool:
    return bool(np.isfinite(p).all() and np.abs(p).max() < _MAX_COORD)


def _fixed(p: np.ndarray) -> tuple[int, int]:
    return int(round(p[0] * _SCALE)), int(round(p[1] * _SCALE))


def _auto_radius(face: np.ndarray, box: np.ndarray | None, image_shape: tuple[int, ...]) -> float:
    """About 0.8% of the face diagonal, at least 1 px. Capped at 1% of the image diagonal so that a
    wild prediction far outside the image cannot blow the dots up; from the image when the face has
    no extent."""
    image_diag = float(np.hypot(image_shape[0], image_shape[1]))
    if box is not None and _drawable(box):
        diag = float(np.hypot(box[2] - box[0], box[3] - box[1]))
    else:
        ok = [_drawable(p) for p in face]
        diag = float(np.hypot(*np.ptp(face[ok], axis=0))) if sum(ok) >= 2 else 0.0
    if diag <= 0:
        diag = 0.5 * image_diag
    return max(1.0, min(0.008 * diag, 0.01 * image_diag))


def _thickness(radius: float) -> int:
    return max(1, int(round(radius / 2)))


def _circle(canvas: np.ndarray, p: np.ndarray, radius: float, color: Color, thickness: int = -1) -> None:
    if _drawable(p):
        cv2.circle(canvas, _fixed(p), max(1, int(round(radius * _SCALE))), color, thickness, cv2.LINE_AA, _SHIFT)


def _line(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, color: Color, thickness: int) -> None:
    if _drawable(a) and _drawable(b):
        cv2.line(canvas, _fixed(a), _fixed(b), color, thickness, cv2.LINE_AA, _SHIFT)


def _draw_connections(canvas: np.ndarray, face: np.ndarray, scheme: Scheme, color: Color, thickness: int) -> None:
    for _, idx, closed in scheme.connections:
        path = list(idx) + ([idx[0]] if closed and len(idx) > 2 else [])
        for a, b in zip(path[:-1], path[1:]):
            _line(canvas, face[a], face[b], color, thickness)


def _draw_label(canvas: np.ndarray, p: np.ndarray, text: str, radius: float, color: Color) -> None:
    if not _drawable(p):
        return
    # HERSHEY_SIMPLEX is ~22 px tall at scale 1; aim for text about three point radii tall.
    scale = max(0.3, 3.0 * radius / 22.0)
    org = (int(round(p[0] + radius + 1)), int(round(p[1] - radius - 1)))
    cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def _draw_face(canvas: np.ndarray, face: np.ndarray, scheme: Scheme | None, color: Color, radius: float,
               lines: bool, highlight: np.ndarray, highlight_color: Color, labels: bool) -> None:
    """Draw one face in place: lines under points, highlights on top."""
    thickness = _thickness(radius)
    if lines and scheme is not None:
        _draw_connections(canvas, face, scheme, color, thickness)
    for p in face:
        _circle(canvas, p, radius, color)
    for i in highlight:
        _circle(canvas, face[i], radius * 1.5, highlight_color)
        _circle(canvas, face[i], radius * _HIGHLIGHT_RING, highlight_color, thickness)
    if labels:
        for i, p in enumerate(face):
            _draw_label(canvas, p, str(i), radius, color)


def _check_points(faces: np.ndarray, scheme: Scheme | None) -> None:
    if scheme is not None and faces.shape[1] != scheme.num_points:
        raise SchemeError(f"scheme {scheme.name} has {scheme.num_points} points, landmarks have {faces.shape[1]}")


def _radii(faces: np.ndarray, boxes: np.ndarray | None, radius: float | Sequence[float] | None,
           image_shape: tuple[int, ...]) -> list[float]:
    n = faces.shape[0]
    if radius is None:
        return [_auto_radius(faces[j], None if boxes is None else boxes[j], image_shape) for j in range(n)]
    r = np.broadcast_to(np.asarray(radius, dtype=np.float64), (n,))
    return [max(0.5, float(v)) for v in r]


def _draw_into(canvas: np.ndarray, faces: np.ndarray, scheme: Scheme | None, color: Color,
               boxes: np.ndarray | None, radius: float | Sequence[float] | None, lines: bool,
               highlight: Highlight, highlight_color: Color | None, labels: bool) -> None:
    """Draw every face into ``canvas`` (in place). ``radius`` may be one value or one per face."""
    n = faces.shape[0]
    radii = _radii(faces, boxes, radius, canvas.shape)
    marks = _per_face_indices(highlight, n, faces.shape[1])
    for j in range(n):
        if boxes is not None and _drawable(boxes[j]):
            cv2.rectangle(canvas, _fixed(boxes[j][:2]), _fixed(boxes[j][2:]), BOX_COLOR,
                          _thickness(radii[j]), cv2.LINE_AA, _SHIFT)
        _draw_face(canvas, faces[j], scheme, color, radii[j], lines, marks[j],
                   highlight_color or color, labels)


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray, scheme: str | Scheme | None = None,
                   color: Color = DEFAULT_COLOR, boxes: np.ndarray | None = None, radius: float | None = None,
                   lines: bool = True, highlight: Highlight = None, highlight_color: Color | None = None,
                   labels: bool = False) -> np.ndarray:
    """A new RGB uint8 image with the landmarks drawn on.

    ``landmarks``: (K, 2) or (N, K, 2). ``scheme`` gives the connecting lines (none when None).
    ``boxes``: (4,) or (N, 4) x1, y1, x2, y2. ``radius``: point radius in px, default ~0.8% of each
    face's size. ``highlight``: point indices to emphasise (bigger dot plus a ring), either one list
    for every face or one list per face. ``labels``: write each point's index next to it.
    """
    canvas = to_rgb(image)
    faces = _as_faces(landmarks)
    sch = None if scheme is None else get_scheme(scheme)
    _check_points(faces, sch)
    _draw_into(canvas, faces, sch, tuple(color), _as_boxes(boxes, faces.shape[0]), radius, lines,
               highlight, highlight_color, labels)
    return canvas


def draw_captions(image: np.ndarray, boxes: np.ndarray, texts: Sequence[str], color: Color = BOX_COLOR) -> np.ndarray:
    """A new RGB uint8 image with ``texts[i]`` written just above box i (x1, y1, x2, y2), e.g. each
    face's number and detection score; the text is sized to the box, outlined to stay legible."""
    canvas = to_rgb(image)
    for box, text in zip(np.asarray(boxes, np.float64).reshape(-1, 4), texts):
        if not np.isfinite(box).all() or np.abs(box).max() > _MAX_COORD:
            continue
        scale = float(np.clip((box[2] - box[0]) / 110.0, 0.35, 1.2))
        (_, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        x = int(round(max(box[0], 0)))
        y = int(round(box[1] - 4)) if box[1] - 4 - th >= 0 else int(round(box[1] + th + 4))
        cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, tuple(color), 1, cv2.LINE_AA)
    return canvas


def worst_points(gt: np.ndarray, pred: np.ndarray, k: int) -> list[np.ndarray]:
    """Per face, the indices of the ``k`` points with the largest pixel error (points without GT excluded)."""
    dist = np.linalg.norm(_as_faces(pred) - _as_faces(gt), axis=-1)
    out = []
    for d in dist:
        order = [i for i in np.argsort(-np.nan_to_num(d, nan=-np.inf), kind="stable") if not np.isnan(d[i])]
        out.append(np.asarray(order[:max(0, k)], dtype=int))
    return out


def draw_comparison(image: np.ndarray, gt: np.ndarray, pred: np.ndarray, scheme: str | Scheme | None = None,
                    boxes: np.ndarray | None = None, radius: float | None = None, lines: bool = True,
                    worst_k: int = 3, error_lines: bool = True, labels: bool = False) -> np.ndarray:
    """A new RGB uint8 image with ground truth (green) and prediction (red) drawn on, a line from each
    GT point to its prediction, and the ``worst_k`` worst predicted points of each face ringed.

    Both sets use the GT's size for the radius so that they look alike and comparable.
    """
    canvas = to_rgb(image)
    gt_f, pred_f = _as_faces(gt), _as_faces(pred)
    if gt_f.shape != pred_f.shape:
        raise ValueError(f"gt and pred shapes differ: {gt_f.shape} vs {pred_f.shape}")
    sch = None if scheme is None else get_scheme(scheme)
    _check_points(gt_f, sch)
    box_arr = _as_boxes(boxes, gt_f.shape[0])
    radii = _radii(gt_f, box_arr, radius, canvas.shape)
    if error_lines:
        for face_gt, face_pred, r in zip(gt_f, pred_f, radii):
            for a, b in zip(face_gt, face_pred):
                _line(canvas, a, b, ERROR_LINE_COLOR, _thickness(r))
    _draw_into(canvas, gt_f, sch, GT_COLOR, box_arr, radii, lines, None, None, labels)
    _draw_into(canvas, pred_f, sch, PRED_COLOR, None, radii, lines,
               worst_points(gt_f, pred_f, worst_k), HIGHLIGHT_COLOR, False)
    return canvas
