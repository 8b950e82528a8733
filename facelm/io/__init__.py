"""Annotation files in and out: one module per format, and one entry point for all of them.

======================  ===============================================  ==============================
format                  files                                            module
======================  ===============================================  ==============================
``pts``                 300-W ``NAME.pts`` beside ``NAME.jpg``           :mod:`facelm.io.pts`
``dlib_xml``            dlib imglab XML                                  :mod:`facelm.io.dlib_xml`
``keypoint_csv``        ``image,x0,y0,...``                              :mod:`facelm.io.csv_formats`
``celeba_csv``          ``image_id,lefteye_x,...``                       :mod:`facelm.io.csv_formats`
``celeba_txt``          CelebA's ``list_landmarks_*.txt``                :mod:`facelm.io.csv_formats`
``kaggle_csv``          Kaggle facial-keypoints ``training.csv``         :mod:`facelm.io.csv_formats`
``coco``                COCO keypoints JSON                              :mod:`facelm.io.coco`
======================  ===============================================  ==============================

Every reader raises ``AnnotationFormatError`` (naming the file and the line or element) for a
malformed file, and every writer replaces its file atomically. ``read(write(x)) == x`` for each
format, within what the format can hold (see each module's notes).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..annotation import AnnotatedImage, AnnotationSet
from ..errors import AnnotationFormatError, UnsafePathError
from ..paths import safe_join
from ._common import AnnotationSchemeError, PathLike, SchemeLike
from .coco import read_coco, write_coco
from .csv_formats import (read_celeba, read_kaggle_csv, read_keypoint_csv, table_format, write_celeba_csv,
                          write_celeba_txt, write_kaggle_csv, write_keypoint_csv)
from .dlib_xml import read_dlib_xml, write_dlib_xml
from .pts import read_pts, read_pts_annotation, read_pts_folder, write_pts, write_pts_folder

__all__ = ["FORMATS", "read_annotations", "write_annotations", "detect_format", "image_file",
           "save_embedded_images", "AnnotationSchemeError",
           "read_pts", "write_pts", "read_pts_folder", "read_pts_annotation", "write_pts_folder",
           "read_dlib_xml", "write_dlib_xml",
           "read_keypoint_csv", "write_keypoint_csv", "read_celeba", "write_celeba_csv", "write_celeba_txt",
           "read_kaggle_csv", "write_kaggle_csv", "read_coco", "write_coco"]

FORMATS = ("pts", "dlib_xml", "keypoint_csv", "celeba_csv", "celeba_txt", "kaggle_csv", "coco")


def detect_format(path: PathLike) -> str:
    """The format of an existing annotation file or folder (looks inside CSVs to tell them apart)."""
    path = Path(path)
    if path.is_dir():
        if any(path.glob("*.pts")) or any(path.glob("*/*.pts")):
            return "pts"
        raise AnnotationFormatError("folder holds no .pts files; pass the annotation file itself", str(path))
    if not path.exists():
        raise AnnotationFormatError("file not found", str(path))
    suffix = path.suffix.lower()
    if suffix in (".pts", ".xml", ".json"):
        return {".pts": "pts", ".xml": "dlib_xml", ".json": "coco"}[suffix]
    if suffix in (".csv", ".txt"):
        return table_format(path)
    raise AnnotationFormatError(f"unknown annotation format {suffix or '(no extension)'!r}; known: .pts files or a "
                                "folder of them, dlib .xml, .csv tables, CelebA .txt, COCO .json", str(path))


def read_annotations(path: PathLike, scheme: SchemeLike = None) -> AnnotationSet:
    """Read any supported annotation file, or a folder of ``.pts`` files (subfolders included when
    the folder itself has none, as in 300-W's ``afw/``, ``helen/``).

    Without ``scheme`` the point count must be a built-in scheme's (68, 15, 5).
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "pts" and path.is_dir():
        return read_pts_folder(path, scheme, recursive=not any(path.glob("*.pts")))
    reader = {"pts": read_pts_annotation, "dlib_xml": read_dlib_xml, "coco": read_coco,
              "keypoint_csv": read_keypoint_csv, "celeba_csv": read_celeba, "celeba_txt": read_celeba,
              "kaggle_csv": read_kaggle_csv}[fmt]
    return reader(path, scheme)


def write_annotations(aset: AnnotationSet, path: PathLike, format: str | None = None, **options) -> None:
    """Write ``aset`` in ``format`` (one of ``FORMATS``), or the one ``path``'s extension implies:
    ``.xml`` dlib, ``.json`` COCO, ``.txt`` CelebA list, ``.csv`` the table that fits the scheme
    (CelebA for celeba5, Kaggle for kaggle15, else keypoint), ``.pts`` a single face, and a path
    without extension a folder of ``.pts``. ``options`` go to the writer: ``precision=`` for XML,
    ``copy_images=`` for a folder of ``.pts``."""
    path = Path(path)
    fmt = format or _format_for(path, aset)
    if fmt not in FORMATS:
        raise AnnotationFormatError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}", str(path))
    if fmt == "pts":
        if path.suffix.lower() == ".pts":
            faces = [f for im in aset.images for f in im.faces]
            if len(faces) != 1:
                raise AnnotationFormatError(f"a .pts file holds one face, this set has {len(faces)}; write a "
                                            "folder instead", str(path))
            write_pts(path, faces[0].landmarks)
        else:
            write_pts_folder(aset, path, **options)
        return
    writer = {"dlib_xml": write_dlib_xml, "keypoint_csv": write_keypoint_csv, "celeba_csv": write_celeba_csv,
              "celeba_txt": write_celeba_txt, "kaggle_csv": write_kaggle_csv, "coco": write_coco}[fmt]
    writer(aset, path, **options)


def _format_for(path: Path, aset: AnnotationSet) -> str:
    suffix = path.suffix.lower()
    by_suffix = {".xml": "dlib_xml", ".json": "coco", ".txt": "celeba_txt", ".pts": "pts"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    if suffix == ".csv":
        return {"celeba5": "celeba_csv", "kaggle15": "kaggle_csv"}.get(aset.scheme, "keypoint_csv")
    if not suffix or path.is_dir():
        return "pts"
    raise AnnotationFormatError(f"cannot tell the format from {suffix!r}; pass format= one of {', '.join(FORMATS)}",
                                str(path))


def image_file(aset: AnnotationSet, image: AnnotatedImage, allow_absolute: bool = False) -> Path:
    """Where ``image``'s file is: its path under ``aset.root``, refusing names that escape the root
    (an annotation file must not make us open files elsewhere). ``allow_absolute`` lets absolute
    paths through, for annotation files the user wrote."""
    if Path(image.path).is_absolute():
        if not allow_absolute:
            raise UnsafePathError(f"absolute image path {image.path!r} in an annotation file")
        return Path(image.path)
    return safe_join(aset.root or ".", image.path)


def save_embedded_images(aset: AnnotationSet, folder: PathLike) -> AnnotationSet:
    """Write embedded pixels (Kaggle's) as PNG files under ``folder`` and return the set pointing at
    them (``root = folder``, ``pixels = None``), ready for formats that reference image files."""
    from PIL import Image

    folder = Path(folder)
    images = []
    for im in aset.images:
        if im.pixels is not None:
            target = safe_join(folder, im.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(im.pixels).save(target, format="PNG")
            im = dataclasses.replace(im, pixels=None)
        elif not Path(im.path).is_absolute() and aset.root:
            im = dataclasses.replace(im, path=str(image_file(aset, im).resolve()))
        images.append(im)
    return dataclasses.replace(aset, images=images, root=str(folder))
