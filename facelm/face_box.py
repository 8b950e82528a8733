"""One face-box convention for every scheme: the tight box of the 68 iBUG points (300-W's
bb_ground_truth). Models, detectors (after calibration) and the crop rule all speak it.

For schemes with fewer points the box is estimated from their own tight box with constants fitted on
the 300-W + ytf68 ground truth (68 points converted to the scheme; medians over 4,644 faces):
    centre = own centre + (ax, ay) * s,   size = (kw, kh) * s,   s = larger side of the own box.
Median error of the estimate is 2-8 % of the face size, well inside the training box jitter.
"""
from __future__ import annotations

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
