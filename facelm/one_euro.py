"""The One Euro filter (Casiez, Roussel and Vogel, CHI 2012) on a set of 2-D points.

A low-pass filter whose cutoff rises with speed: still points are smoothed hard (little jitter),
moving points lightly (little lag). Per point, with ``dt`` the time since the last sample:

    alpha(fc)  = r / (r + 1),  r = 2 pi fc dt
    speed      = |low-pass of the point's velocity at d_cutoff|
    cutoff     = min_cutoff + beta * speed / scale
    x_filtered = low-pass of x at cutoff

``scale`` (the face's size in pixels) makes ``beta`` independent of the video's resolution: speed
is measured in face sizes per second, so one setting serves a face 60 px or 600 px tall.

One departure from the paper's reference code: the velocity's low-pass starts from the first
velocity measured rather than from zero, so that a face (re-)acquired while it moves is not held
back for the derivative filter's warm-up (docs/video.md: ytf68 frames, where faces jump).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroParams:
    """Cutoffs in Hz; ``beta`` in Hz per (face size per second). The defaults were tuned on sequences
    of 300-W AFW photos (``python -m facelm.video_bench --tune``; figures in docs/video.md)."""
    min_cutoff: float = 0.5
    beta: float = 20.0
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "d_cutoff"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number of Hz, got {v!r}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta must be >= 0, got {self.beta!r}")


def smoothing_factor(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    """The exponential smoothing weight of a first-order low-pass at ``cutoff`` Hz sampled every ``dt`` s."""
    r = 2 * np.pi * np.asarray(cutoff, np.float64) * dt
    return r / (r + 1)


class OneEuroFilter:
    """Filters successive (K, 2) point sets. The first sample passes through unchanged; so does the
    first after :meth:`reset`. Samples at the same or an earlier time than the last pass through
    and restart the filter (a timestamp that went backwards has no meaningful ``dt``)."""

    def __init__(self, params: OneEuroParams | None = None):
        self.params = params or OneEuroParams()
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, points: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(points, np.float64)
        if self._x is None or self._t is None or t <= self._t or self._x.shape != x.shape \
                or not np.isfinite(x).all():
            self._x, self._dx, self._t = x.copy(), None, float(t)
            return x.astype(np.float32)
        p = self.params
        dt = float(t) - self._t
        dx = (x - self._x) / dt
        # The velocity's low-pass starts from the first velocity measured, not from rest: a face
        # (re-)acquired while moving is not held back for the derivative filter's warm-up.
        self._dx = dx if self._dx is None else self._dx + smoothing_factor(p.d_cutoff, dt) * (dx - self._dx)
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True) / max(float(scale), 1e-6)
        a = smoothing_factor(p.min_cutoff + p.beta * speed, dt)
        self._x = self._x + a * (x - self._x)
        self._t = float(t)
        return self._x.astype(np.float32)
