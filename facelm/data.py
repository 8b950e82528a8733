"""Annotations as Hugging Face ``datasets``: one row per face.

Columns (``features(k)``):

- ``image``: ``datasets.Image()``, stored as the file's absolute path (or PNG bytes for images
  embedded in the annotation file, like Kaggle's); several faces of one image share it.
- ``landmarks``: ``Array2D((K, 2), float32)``, 0-based pixel coordinates, NaN where missing (a
  detection-only face, e.g. a dlib box without parts, is all NaN). K is fixed per dataset.
- ``box``: 4 float32 ``x1, y1, x2, y2``: the annotation's box, else the landmarks' tight box.
- ``scheme``, ``source`` (e.g. ``"afw"``, ``"ytf68"``), ``image_path`` (as the annotation names it),
  ``identity`` (``identity_of(image_path)``, what ``split_dataset`` groups by), ``face_index``
  (the face's position in its image).
"""
from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path, PurePath
from typing import Literal

import datasets
import numpy as np

from .annotation import AnnotatedImage, AnnotationSet, Face
from .errors import AnnotationFormatError, SchemeError
from .io import image_file, read_annotations
from .io._common import SchemeLike, writable_count
from .schemes import get_scheme

__all__ = ["features", "to_hf_dataset", "load_dataset", "push_dataset_to_hub", "split_dataset", "in_validation", "identity_of",
           "landmarks_array"]

SPLITS = ("train", "validation")
_ANNOTATION_SUFFIXES = (".csv", ".txt", ".xml", ".json")


def features(num_points: int) -> datasets.Features:
    return datasets.Features({
        "image": datasets.Image(),
        "landmarks": datasets.Array2D(shape=(num_points, 2), dtype="float32"),
        "box": datasets.List(datasets.Value("float32"), length=4),
        "scheme": datasets.Value("string"),
        "source": datasets.Value("string"),
        "image_path": datasets.Value("string"),
        "identity": datasets.Value("string"),
        "face_index": datasets.Value("int32"),
    })


DEFAULT_VAL_FRACTION = 0.15
"""The validation share ``train.train`` uses, and what the benchmarks evaluate on."""


def identity_of(path: str) -> str:
    """Who a face is, from its file name: the name without extension and without a trailing ``_N``
    of 1 to 4 digits (a frame or face number): ``Abdel_Aziz_Al-Hakim_00.jpg`` -> ``Abdel_Aziz_Al-Hakim``,
    300-W's ``1051618982_1.jpg`` -> ``1051618982`` (faces of one photo stay together), LFW's
    ``Aaron_Eckhart_0001.jpg`` -> ``Aaron_Eckhart``. Longer numbers are ids, not counters, and stay
    (``2007_007763.jpg`` -> ``2007_007763``)."""
    stem = PurePath(path.replace("\\", "/")).stem
    return re.sub(r"_\d{1,4}$", "", stem) or stem


def to_hf_dataset(aset: AnnotationSet, source: str) -> datasets.Dataset:
    """One row per face of ``aset`` (images without faces give no rows)."""
    k = writable_count(aset, source, allow_empty=True) or get_scheme(aset.scheme).num_points
    cols: dict[str, list] = {name: [] for name in features(k)}
    for im in aset.images:
        if not im.faces:
            continue
        image = _image_value(aset, im)
        for j, face in enumerate(im.faces):
            cols["image"].append(image)
            cols["landmarks"].append(face.landmarks if face.num_points else np.full((k, 2), np.nan, np.float32))
            cols["box"].append(_box(face))
            cols["scheme"].append(aset.scheme)
            cols["source"].append(source)
            cols["image_path"].append(im.path)
            cols["identity"].append(identity_of(im.path))
            cols["face_index"].append(j)
    return datasets.Dataset.from_dict(cols, features=features(k))


def _box(face: Face) -> np.ndarray:
    if face.box is not None:
        return face.box
    if np.isfinite(face.landmarks).any():
        return face.landmark_box()
    return np.full(4, np.nan, np.float32)  # a face with no box and no points: nothing to say


def landmarks_array(ds: datasets.Dataset) -> np.ndarray:
    """All rows' landmarks as one (N, K, 2) float32 array, without decoding any image."""
    return np.asarray(ds.select_columns(["landmarks"]).with_format("numpy")[:]["landmarks"], dtype=np.float32)


def _image_value(aset: AnnotationSet, im: AnnotatedImage) -> dict:
    if im.pixels is not None:
        from PIL import Image
        buf = io.BytesIO()
        Image.fromarray(im.pixels).save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": im.path}
    # Absolute, so the dataset works from any working directory.
    return {"bytes": None, "path": os.path.abspath(image_file(aset, im, allow_absolute=True))}


def load_dataset(spec: str | os.PathLike, split: str | None = None,
                 scheme: SchemeLike = None) -> datasets.Dataset | datasets.DatasetDict:
    """Load faces from wherever ``spec`` points:

    - a folder written by ``save_to_disk`` / ``push_dataset_to_hub(ds, local_dir)``;
    - an annotation file or a folder of ``.pts`` (``read_annotations`` + ``to_hf_dataset``, with the
      folder's name as ``source``);
    - a folder holding exactly one annotation file (``ytf68/`` -> ``keypoints.csv``);
    - a folder of ``.pts`` folders (``300w/``): all of them, ``source`` = each subfolder's name;
    - anything else is a Hub dataset id for ``datasets.load_dataset``.

    For local annotations ``split="train"`` or ``"validation"`` returns that part of
    ``split_dataset(ds)`` (by identity); for saved ``DatasetDict`` folders, that split.
    ``scheme`` is passed to the annotation readers, and checked against the data otherwise.
    """
    path = Path(os.fspath(spec)).expanduser()
    if path.exists():
        ds = _load_local(path, scheme)
    elif _looks_local(os.fspath(spec)):
        raise FileNotFoundError(f"no such file or folder: {spec}")
    else:
        ds = datasets.load_dataset(os.fspath(spec), split=split)
        split = None
    if split is not None:
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise KeyError(f"{spec} has no split {split!r}; it has {sorted(ds)}")
            ds = ds[split]
        elif split in SPLITS:
            ds = split_dataset(ds)[split]
        elif split != "all":
            raise ValueError(f"split {split!r}: local annotations split into {SPLITS} (or 'all')")
    _check_scheme(ds, scheme)
    return ds


def _load_local(path: Path, scheme: SchemeLike) -> datasets.Dataset | datasets.DatasetDict:
    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
        return datasets.load_from_disk(str(path))
    if path.is_file():
        return to_hf_dataset(read_annotations(path, scheme), source=path.parent.name)
    if any(path.glob("*.pts")):
        return to_hf_dataset(read_annotations(path, scheme), source=path.name)
    subsets = sorted(p for p in path.iterdir() if p.is_dir() and any(p.glob("*.pts")))
    if subsets:
        return datasets.concatenate_datasets([to_hf_dataset(read_annotations(p, scheme), source=p.name)
                                              for p in subsets])
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _ANNOTATION_SUFFIXES)
    if len(files) == 1:
        return to_hf_dataset(read_annotations(files[0], scheme), source=path.name)
    raise AnnotationFormatError(
        "found no single annotation source here; pass one of its files" +
        (f" ({', '.join(p.name for p in files)})" if files else " (no .pts, .csv, .txt, .xml or .json files)"),
        str(path))


def _check_scheme(ds: datasets.Dataset | datasets.DatasetDict, scheme: SchemeLike) -> None:
    if scheme is None:
        return
    want = get_scheme(scheme).name
    for part in ds.values() if isinstance(ds, datasets.DatasetDict) else [ds]:
        if "scheme" in part.column_names and len(part):
            got = set(part.unique("scheme"))
            if got != {want}:
                raise SchemeError(f"dataset holds scheme(s) {sorted(got)}, expected {want!r}")


def _looks_local(spec: str) -> bool:
    """Local paths vs Hub ids ("user/name"): a relative local path must start with ./ or ../ to be
    told apart from a Hub id, unless it exists."""
    return (os.path.isabs(spec) or spec.startswith((".", "~")) or os.path.exists(spec)
            or spec.count("/") > 1 or "\\" in spec)


def push_dataset_to_hub(ds: datasets.Dataset | datasets.DatasetDict, repo_id_or_local_dir: str | os.PathLike,
                        *, private: bool | None = None, token: str | None = None,
                        embed_images: bool = True) -> str:
    """Publish ``ds``: ``push_to_hub`` for a Hub id, ``save_to_disk`` for a local folder (see
    ``_looks_local``: absolute, ``./``, ``../``, ``~``, or existing). Locally, ``embed_images`` copies
    image bytes into the dataset, as a Hub push does, so the folder is self-contained. Returns where
    it went; ``load_dataset`` reads either back."""
    target = os.fspath(repo_id_or_local_dir)
    if _looks_local(target):
        if embed_images:
            ds = _embedded(ds)
        ds.save_to_disk(os.path.expanduser(target))
        return os.path.expanduser(target)
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", target):
        raise ValueError(f"{target!r} is neither a Hub repo id (user/name) nor a local folder (./name, /abs/name)")
    ds.push_to_hub(target, private=private, token=token)
    return target


def _embedded(ds: datasets.Dataset | datasets.DatasetDict) -> datasets.Dataset | datasets.DatasetDict:
    if isinstance(ds, datasets.DatasetDict):
        return datasets.DatasetDict({name: _embedded(part) for name, part in ds.items()})
    from datasets.table import embed_table_storage

    fmt = ds.format
    out = ds.with_format("arrow").map(embed_table_storage, batched=True)
    return out.with_format(**fmt)


def split_dataset(ds: datasets.Dataset, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0,
                  by: Literal["identity", "face"] = "identity") -> datasets.DatasetDict:
    """``train`` / ``validation`` split that depends only on each row's key, never on row order:
    a key goes to validation when ``sha1(seed, key)``, read as a fraction of 2**64, is below
    ``val_fraction``. So an identity always lands on the same side, in any subset or order of
    the data, and the validation share is ``val_fraction`` only on average.

    ``by="identity"`` keys on the ``identity`` column (ytf68: never split a person's frames);
    ``by="face"`` on ``source/image_path#face_index`` (300-W).
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    if by == "identity":
        keys = list(ds["identity"])
    elif by == "face":
        keys = [f"{s}/{p}#{i}" for s, p, i in zip(ds["source"], ds["image_path"], ds["face_index"])]
    else:
        raise ValueError(f"by must be 'identity' or 'face', got {by!r}")
    val = [in_validation(key, val_fraction, seed) for key in keys]
    return datasets.DatasetDict({
        "train": ds.select([i for i, v in enumerate(val) if not v]),
        "validation": ds.select([i for i, v in enumerate(val) if v]),
    })


def in_validation(key: str, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0) -> bool:
    """Whether ``split_dataset`` puts the faces with this key (an identity) in validation."""
    return _hash64(seed, key) < int(val_fraction * 2 ** 64)


def _hash64(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha1(f"{seed}\0{key}".encode()).digest()[:8], "big")
