"""Predictions to files, in one layout shared by the command line (``python -m facelm predict``) and
the app's downloads: facelm's JSON, and per-face 300-W ``.pts`` files named by one rule.

JSON layout (0-based pixels, x then y; boxes x1, y1, x2, y2; an image is named by "image", not
"path", which Gradio's client would take for a file to download)::

    {"facelm": "0.1.0", "model": ..., "scheme": "ibug68", "detector": "yunet", ...settings...,
     "coordinates": "...",
     "images": [{"image": "a.jpg", "width": 640, "height": 480, "detector": "yunet",
                 "faces": [{"box": [x1, y1, x2, y2], "score": 0.93, "landmarks": [[x, y], ...]}]}],
     "errors": [{"image": "b.jpg", "error": "..."}]}
"""
from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .annotation import AnnotationSet
from .io.pts import format_pts, pts_file_name

if TYPE_CHECKING:  # importing the landmarker loads torch
    from .landmarker import Faces

COORDINATES = "0-based pixels, x then y; box x1, y1, x2, y2"
DECIMALS = 2
"""Coordinates are written to 1/100 px."""


def rounded(faces: Faces) -> Faces:
    """``faces`` with boxes and landmarks rounded as the JSON writes them, so that every file written
    from the result (JSON, XML, COCO, .pts) reads back the same numbers."""
    return replace(faces, boxes=np.round(faces.boxes.astype(np.float64), DECIMALS).astype(np.float32),
                   landmarks=np.round(faces.landmarks.astype(np.float64), DECIMALS).astype(np.float32))


def face_record(faces: Faces, i: int) -> dict:
    return {"box": [round(float(v), DECIMALS) for v in faces.boxes[i]], "score": round(float(faces.scores[i]), 4),
            "landmarks": np.round(faces.landmarks[i].astype(np.float64), DECIMALS).tolist()}


def image_record(path: str, faces: Faces) -> dict:
    return {"image": str(path), "width": faces.image_size[0], "height": faces.image_size[1],
            "detector": faces.detector, "faces": [face_record(faces, i) for i in range(len(faces))]}


def prediction_document(images: Sequence[tuple[str, Faces]], meta: dict,
                        errors: Sequence[tuple[str, str]] = ()) -> dict:
    """The JSON document of the module docstring: ``meta`` (model, scheme, settings) first."""
    return {**meta, "coordinates": COORDINATES, "images": [image_record(p, f) for p, f in images],
            "errors": [{"image": str(p), "error": msg} for p, msg in errors]}


def write_json(doc: dict, path: str | Path) -> Path:
    from .paths import atomic_write_text
    path = Path(path)
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    return path


def write_pts_files(folder: str | Path, name: str, faces: Faces) -> list[Path]:
    """One ``.pts`` per face of the image ``name`` (a relative path: subfolders are kept) in ``folder``."""
    from .io import write_pts
    from .paths import safe_join
    stem = Path(name).with_suffix("").as_posix()
    written = []
    for i, lm in enumerate(faces.landmarks, 1):
        target = safe_join(folder, pts_file_name(stem, i, len(faces)))
        target.parent.mkdir(parents=True, exist_ok=True)
        write_pts(target, lm)
        written.append(target)
    return written


def annotation_set(images: Sequence[tuple[str, Faces]], name: str = "facelm predictions",
                   root: str | None = None) -> AnnotationSet:
    """The predictions as an :class:`AnnotationSet` (for dlib XML, COCO, ...); the scheme is the first
    image's (every image of one run has the same)."""
    scheme = images[0][1].scheme if images else "ibug68"
    return AnnotationSet(images=[f.to_annotation(str(p)) for p, f in images], scheme=scheme, name=name,
                         comment="predicted by facelm", root=root)


def prediction_files(folder: str | Path, name: str, faces: Faces, meta: dict) -> list[Path]:
    """The downloads of one photo's prediction in ``folder``: ``NAME_landmarks.json`` (the JSON
    layout), ``NAME.xml`` (dlib), ``NAME_coco.json``, and ``NAME.pts`` for one face or
    ``NAME_pts.zip`` of per-face ``.pts`` files for several. Nothing for no face."""
    from .io import write_annotations
    if not len(faces):
        return []
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(name).stem or "image"
    faces = rounded(faces)
    aset = annotation_set([(name, faces)], "facelm prediction")
    out = [write_json(prediction_document([(name, faces)], meta), folder / f"{stem}_landmarks.json")]
    write_annotations(aset, folder / f"{stem}.xml", precision=None)
    write_annotations(aset, folder / f"{stem}_coco.json")
    out += [folder / f"{stem}.xml", folder / f"{stem}_coco.json"]
    if len(faces) == 1:
        out += write_pts_files(folder, f"{stem}.pts", faces)
    else:
        with zipfile.ZipFile(folder / f"{stem}_pts.zip", "w") as z:
            for i, lm in enumerate(faces.landmarks, 1):
                z.writestr(pts_file_name(stem, i, len(faces)), format_pts(lm))
        out.append(folder / f"{stem}_pts.zip")
    return sorted(out)
