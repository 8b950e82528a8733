"""Decoded, pre-cropped faces for training: JPEG decoding and big-image warps happen once, not every epoch.

Each face is stored as a uint8 crop ``margin`` times wider than the model input, at the input's pixel
density and centred like the inference crop (see ``facelm.crop``), so that the centre
``input_size`` square of a cached crop *is* the inference crop of the face's box.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm.auto import tqdm

from .crop import crop_matrix, transform_points, warp
from .image import to_rgb_array


@dataclass
class CropCache:
    images: np.ndarray
    """(N, C, C, 3) uint8 crops."""
    landmarks: np.ndarray
    """(N, K, 2) float32 in crop pixels."""
    sources: np.ndarray
    """(N,) str: which subset each face came from (for per-subset figures)."""
    input_size: int
    margin: float

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, keep: np.ndarray) -> "CropCache":
        """The faces at ``keep`` (indices or a boolean mask)."""
        return CropCache(self.images[keep], self.landmarks[keep], self.sources[keep], self.input_size, self.margin)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, images=self.images, landmarks=self.landmarks, sources=self.sources,
                 meta=np.array(json.dumps({"input_size": self.input_size, "margin": self.margin})))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> "CropCache":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return cls(z["images"], z["landmarks"], z["sources"], meta["input_size"], meta["margin"])


def cache_size(input_size: int, margin: float) -> int:
    c = int(round(input_size * margin))
    return c + (c - input_size) % 2  # even border, so the centre crop is whole pixels


def build_cache(rows: Iterable[dict], input_size: int, crop_scale: float, crop_shift_y: float = 0.0,
                margin: float = 1.75, total: int | None = None, desc: str = "caching crops") -> CropCache:
    """rows: dicts with ``image`` (PIL or array), ``landmarks`` (K, 2), ``box`` (4,), ``source``."""
    c = cache_size(input_size, margin)
    images, points, sources = [], [], []
    for row in tqdm(rows, total=total, desc=desc, unit="face"):
        img = to_rgb_array(row["image"])
        m = crop_matrix(np.asarray(row["box"], dtype=np.float64), c, crop_scale * c / input_size, crop_shift_y)
        images.append(warp(img, m, c))
        points.append(transform_points(np.asarray(row["landmarks"], dtype=np.float32), m))
        sources.append(str(row.get("source", "")))
    k = points[0].shape[0] if points else 0
    return CropCache(np.stack(images) if images else np.zeros((0, c, c, 3), np.uint8),
                     np.stack(points).astype(np.float32) if points else np.zeros((0, k, 2), np.float32),
                     np.array(sources), input_size, margin)


def cache_key(*parts: object) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
