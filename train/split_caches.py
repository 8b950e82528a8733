"""Training and validation crop caches: any mix of sources the data layer loads, split by identity and cropped once."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from facelm.crop_cache import CropCache, build_cache, cache_key
from facelm.data import DEFAULT_VAL_FRACTION
from facelm.face_box import face_box
from facelm.paths import cache_dir as default_cache_dir
from facelm.schemes import Scheme


@dataclass
class DataSpec:
    data: list[str]
    val_data: list[str] = field(default_factory=list)
    val_fraction: float = DEFAULT_VAL_FRACTION
    split_seed: int = 0
    """seed of the validation split (not of training: TrainConfig.seed)"""
    max_faces: int | None = None


def _concat(caches: list[CropCache]) -> CropCache:
    c0 = caches[0]
    return CropCache(np.concatenate([c.images for c in caches]), np.concatenate([c.landmarks for c in caches]),
                     np.concatenate([c.sources for c in caches]), c0.input_size, c0.margin)


def _rows(ds, scheme: Scheme):
    for row in ds:
        pts = np.asarray(row["landmarks"], dtype=np.float32)
        if pts.shape[0] != scheme.num_points:
            raise ValueError(f"data has {pts.shape[0]} points per face, the model's scheme {scheme.name} has "
                             f"{scheme.num_points}")
        # Training frames faces by the box their landmarks imply (jittered by augmentation), never by a
        # box from the file: detectors are calibrated to that same convention at inference.
        yield {"image": row["image"], "landmarks": pts, "box": face_box(pts, scheme), "source": row.get("source", "")}


def _cached(spec_parts: list[str], split: str, spec: DataSpec, input_size: int, crop_scale: float,
            cache_dir: str, scheme: Scheme) -> CropCache:
    from facelm.data import load_dataset, split_dataset
    key = cache_key(sorted(spec_parts), split, spec.val_fraction, spec.split_seed, spec.max_faces, input_size,
                    crop_scale, scheme.name, 2)
    path = Path(cache_dir) / f"{split}-{key}.npz"
    if path.exists():
        return CropCache.load(path)
    parts = []
    for s in spec_parts:
        ds = load_dataset(s, scheme=scheme.name)
        if split != "all":
            ds = split_dataset(ds, val_fraction=spec.val_fraction, seed=spec.split_seed)[split]
        if spec.max_faces:
            ds = ds.select(range(min(spec.max_faces, len(ds))))
        parts.append(build_cache(_rows(ds, scheme), input_size, crop_scale, total=len(ds), desc=f"caching {split} {s}"))
    cache = _concat(parts)
    cache.save(path)
    return cache


Side = Literal["train", "validation"]


def _parts_and_split(spec: DataSpec, side: Side) -> tuple[list[str], str]:
    """Which entries feed ``side``, and which split of them: separate validation data is taken whole."""
    if spec.val_data and sorted(spec.val_data) != sorted(spec.data):
        return (spec.data if side == "train" else spec.val_data), "all"
    return spec.data, side


def load_split(spec: DataSpec, side: Side, input_size: int, crop_scale: float, scheme: Scheme,
               cache_dir: str | Path | None = None) -> CropCache:
    """The crop cache of one side (only that side is decoded and cached). ``.npz`` entries are ready
    caches; other entries go through ``facelm.data.load_dataset`` and, without ``val_data``, a
    deterministic identity-aware split. ``cache_dir`` defaults to ``facelm.paths.cache_dir("crops")``."""
    parts, split = _parts_and_split(spec, side)
    folder = str(cache_dir) if cache_dir else str(default_cache_dir("crops"))
    ready = [CropCache.load(p) for p in parts if p.endswith(".npz")]
    rest = [p for p in parts if not p.endswith(".npz")]
    if rest:
        ready.append(_cached(rest, split, spec, input_size, crop_scale, folder, scheme))
    for c in ready:
        if c.input_size != input_size:
            raise ValueError(f"crop cache made for {c.input_size}px input, model wants {input_size}px")
    return _concat(ready)


def load_caches(spec: DataSpec, input_size: int, crop_scale: float, cache_dir: str | Path | None,
                scheme: Scheme) -> tuple[CropCache, CropCache]:
    """(train, validation) caches: :func:`load_split` of each side."""
    return tuple(load_split(spec, side, input_size, crop_scale, scheme, cache_dir)  # type: ignore[return-value]
                 for side in ("train", "validation"))
