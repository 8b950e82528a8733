"""One face-box convention for every scheme: the tight box of the 68 iBUG points (300-W's
bb_ground_truth). Models, detectors (after calibration) and the crop rule all speak it.

For schemes with fewer points the box is estimated from their own tight box with constants fitted on
the 300-W + ytf68 ground truth (68 points converted to the scheme; medians over 4,644 faces):
    centre = own centre + (ax, ay) * s,   size = (kw, kh) * s,   s = larger side of the own box.
How far the estimate is off: docs/results.md#face-boxes-from-fewer-points (well inside the training box jitter).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .annotation import landmark_box
from .schemes import Scheme, get_scheme

_FROM_OWN_BOX: dict[str, tuple[float, float, float, float]] = {
    "celeba5": (-0.0137, 0.1357, 2.0, 1.9302),
    "kaggle15": (0.0, 0.1316, 1.2903, 1.2619),
}


def face_box(points: np.ndarray, scheme: str | Scheme) -> np.ndarray:
    """(…, K, 2) landmarks -> (…, 4) face box in the 68-point convention."""
    scheme = get_scheme(scheme)
    box = landmark_box(points)
    if scheme.name not in _FROM_OWN_BOX:
        return box
    ax, ay, kw, kh = _FROM_OWN_BOX[scheme.name]
    s = np.maximum(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1])
    cx = (box[..., 0] + box[..., 2]) / 2 + ax * s
    cy = (box[..., 1] + box[..., 3]) / 2 + ay * s
    return np.stack([cx - kw * s / 2, cy - kh * s / 2, cx + kw * s / 2, cy + kh * s / 2], axis=-1).astype(np.float32)


def upright_box(points: np.ndarray, eyes: np.ndarray,
                box_of: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The box ``box_of`` draws around (…, K, 2) ``points`` in the frame where ``eyes`` (…, 2, 2),
    the subject's right eye first, are level, and the (…,) roll in degrees that
    :func:`facelm.crop.crop_matrix` takes as ``rotation_deg`` to cut the face upright. ``box_of``
    maps level points (about their centre) to (…, 4) boxes in that frame. Missing eyes give roll 0."""
    pts = np.asarray(points, dtype=np.float64)
    d = np.asarray(eyes, np.float64)[..., 1, :] - np.asarray(eyes, np.float64)[..., 0, :]
    roll = np.nan_to_num(np.arctan2(d[..., 1], d[..., 0]))
    c, s = np.cos(roll), np.sin(roll)
    centre = np.nanmean(pts, axis=-2)
    qx, qy = pts[..., 0] - centre[..., 0, None], pts[..., 1] - centre[..., 1, None]
    # The same rotation as crop_matrix's, [[c, s], [-s, c]], about the points' centre.
    cp, sp = c[..., None], s[..., None]
    level = np.stack([cp * qx + sp * qy, -sp * qx + cp * qy], axis=-1)
    box = np.asarray(box_of(level), np.float64)
    mx, my = (box[..., 0] + box[..., 2]) / 2, (box[..., 1] + box[..., 3]) / 2
    cx, cy = centre[..., 0] + c * mx - s * my, centre[..., 1] + s * mx + c * my
    hw, hh = (box[..., 2] - box[..., 0]) / 2, (box[..., 3] - box[..., 1]) / 2
    out = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=-1).astype(np.float32)
    return out, np.degrees(roll).astype(np.float32)


def upright_face_box(points: np.ndarray, scheme: str | Scheme) -> tuple[np.ndarray, np.ndarray]:
    """The face box of (…, K, 2) landmarks in the frame where the eyes are level.

    Returns the (…, 4) box, axis-aligned in that frame (its centre and size are what the crop rule
    reads), and the (…,) roll in degrees that :func:`facelm.crop.crop_matrix` takes as
    ``rotation_deg`` to cut the face upright. A face whose eyes are missing gets roll 0."""
    scheme = get_scheme(scheme)
    pts = np.asarray(points, dtype=np.float64)
    return upright_box(pts, scheme.pupil_points(pts), lambda level: face_box(level, scheme))
