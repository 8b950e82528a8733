"""300-W ``.pts`` files: one face per file, beside its image (``NAME.jpg`` + ``NAME.pts``).

::

    version: 1
    n_points: 68
    {
    132.372 170.909
    ...
    }

Coordinates in the file are 1-based (MATLAB's convention, which 300-W uses); in memory they are
0-based, so reading subtracts 1 and writing adds 1. The format has no way to say "missing", so
writing refuses NaN points, and no box (readers leave ``Face.box`` None; use ``landmark_box``).

Numbers are written as the shortest decimals that read back to the same float32, so reading and
writing a 300-W file keeps its values ("171.540" comes back as "171.54"). That is exact for every
coordinate except non-zero ones within ~2e-9 of 0, which 1-based text parsed as float64 cannot
tell apart.
"""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np

from ..annotation import AnnotatedImage, AnnotationSet, Face
from ..errors import AnnotationFormatError
from ..paths import atomic_write_bytes, atomic_write_text, safe_join
from ._common import (IMAGE_EXTENSIONS, PathLike, SchemeLike, check_finite, parse_numbers, read_text,
                      resolve_scheme, to_float32, format_coords, writable_count)

__all__ = ["read_pts", "parse_pts", "format_pts", "write_pts", "pts_file_name", "read_pts_folder",
           "read_pts_annotation", "write_pts_folder", "image_for_pts"]

_OFFSET = 1.0  # file = memory + 1


def parse_pts(text: str, source: str = "<pts>", scheme: SchemeLike = None) -> np.ndarray:
    """Parse the text of a ``.pts`` file to (K, 2) float32 0-based points.

    Without ``scheme``, K must be a built-in scheme's count (68, 15 or 5); with it, K must be its count.
    """
    lines = text.splitlines()
    header: dict[str, tuple[str, int]] = {}
    i = 0
    # Header: "key: value" lines up to the opening brace.
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line:
            continue
        if line == "{":
            break
        key, sep, value = line.partition(":")
        if not sep:
            raise AnnotationFormatError(f"expected a 'key: value' header line or '{{', found {line!r}", source,
                                        f"line {i}")
        header[key.strip().lower()] = (value.strip(), i)
    else:
        raise AnnotationFormatError("no '{' line: not a .pts file, or truncated", source, f"line {len(lines)}")
    if "version" in header and header["version"][0] != "1":
        raise AnnotationFormatError(f"unsupported version {header['version'][0]!r} (only 1 exists)", source,
                                    f"line {header['version'][1]}")
    if "n_points" not in header:
        raise AnnotationFormatError("header has no 'n_points:' line", source, f"line {i}")
    n_text, n_line = header["n_points"]
    try:
        n = int(n_text)
    except ValueError:
        n = -1
    if n < 0:
        raise AnnotationFormatError(f"n_points {n_text!r} is not a count", source, f"line {n_line}")

    rows: list[np.ndarray] = []
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line:
            continue
        if line == "}":
            break
        if len(rows) == n:
            raise AnnotationFormatError(f"more points than n_points: {n} (no '}}' after point {n})", source,
                                        f"line {i}")
        fields = line.split()
        if len(fields) != 2:
            raise AnnotationFormatError(f"expected 'x y', found {line!r}", source, f"line {i}")
        rows.append(parse_numbers(fields, ("x", "y"), source, f"line {i}"))
    else:
        raise AnnotationFormatError(f"no closing '}}' (truncated file? {len(rows)} of {n} points read)", source,
                                    f"line {len(lines)}")
    if len(rows) != n:
        raise AnnotationFormatError(f"n_points says {n}, but {len(rows)} points are listed", source, f"line {i}")
    for j in range(i, len(lines)):
        if lines[j].strip():
            raise AnnotationFormatError(f"unexpected text after '}}': {lines[j].strip()!r}", source, f"line {j + 1}")
    resolve_scheme(n, scheme, source, f"line {n_line}")
    if not rows:
        return np.zeros((0, 2), np.float32)
    return to_float32(np.stack(rows), _OFFSET, source, "points")


def read_pts(path: PathLike, scheme: SchemeLike = None) -> np.ndarray:
    """(K, 2) float32 0-based points of a ``.pts`` file."""
    return parse_pts(read_text(path), str(path), scheme)


def format_pts(landmarks: np.ndarray, source: str = "<pts>") -> str:
    pts = np.asarray(landmarks, dtype=np.float32).reshape(-1, 2)
    check_finite(pts, source, "face")
    texts = format_coords(pts, _OFFSET)
    body = "".join(f"{x} {y}\n" for x, y in zip(texts[::2], texts[1::2]))
    return f"version: 1\nn_points: {len(pts)}\n{{\n{body}}}\n"


def pts_file_name(stem: str, index: int, count: int) -> str:
    """The ``.pts`` file of face ``index`` (1-based) of ``count`` in the image ``stem``: ``NAME.pts``
    for a single face, ``NAME_1.pts``, ``NAME_2.pts``, ... for several (as 300-W names its crops)."""
    return f"{stem}.pts" if count == 1 else f"{stem}_{index}.pts"


def write_pts(path: PathLike, landmarks: np.ndarray) -> None:
    """Write (K, 2) 0-based points as a 1-based ``.pts`` file (atomically)."""
    atomic_write_text(path, format_pts(landmarks, str(path)))


def image_for_pts(pts_path: PathLike) -> Path:
    """The image beside a ``.pts`` file (same name, an image extension)."""
    pts_path = Path(pts_path)
    for ext in IMAGE_EXTENSIONS:
        candidate = pts_path.with_suffix(ext)
        if candidate.is_file():
            return candidate
    raise AnnotationFormatError(f"no image beside it (looked for {pts_path.stem}{{{','.join(IMAGE_EXTENSIONS)}}})",
                                str(pts_path))


def read_pts_folder(folder: PathLike, scheme: SchemeLike = None, recursive: bool = False) -> AnnotationSet:
    """Every ``NAME.pts`` in ``folder`` (and its subfolders with ``recursive``), one image per file.

    Image paths are relative to ``folder`` (``AnnotationSet.root``); boxes are None.
    """
    folder = Path(folder)
    files = sorted(folder.rglob("*.pts") if recursive else folder.glob("*.pts"))
    if not files:
        raise AnnotationFormatError("no .pts files in this folder", str(folder))
    return _read_set(files, folder, scheme)


def read_pts_annotation(path: PathLike, scheme: SchemeLike = None) -> AnnotationSet:
    """One ``.pts`` file and its image as a one-image set."""
    path = Path(path)
    return _read_set([path], path.parent, scheme)


def _read_set(files: list[Path], folder: Path, scheme: SchemeLike) -> AnnotationSet:
    images = []
    resolved = None
    for f in files:
        # The first file fixes the scheme for the rest: a 5-point file among 68-point ones is an error.
        landmarks = read_pts(f, resolved or scheme)
        resolved = resolved or resolve_scheme(len(landmarks), scheme, str(f), None)
        image = image_for_pts(f)
        images.append(AnnotatedImage(path=image.relative_to(folder).as_posix(), faces=[Face(landmarks)]))
    return AnnotationSet(images=images, scheme=resolved.name, name=folder.name, root=str(folder))


def write_pts_folder(aset: AnnotationSet, folder: PathLike, copy_images: bool = False) -> None:
    """One ``.pts`` per image, named after the image (``a/b.jpg`` -> ``folder/a/b.pts``).

    With ``copy_images`` the images are copied beside them (embedded pixels are saved as PNG), making
    a self-contained 300-W style folder that ``read_pts_folder`` reads back; without, only ``.pts``
    files are written. Images without faces are skipped (the format cannot say "no face"); an image
    with several faces is refused, since ``.pts`` holds one face per file.
    """
    folder = Path(folder)
    writable_count(aset, str(folder))
    planned = []
    for i, im in enumerate(aset.images, 1):
        if len(im.faces) > 1:
            raise AnnotationFormatError(f"image {i} ({im.path!r}) has {len(im.faces)} faces; .pts holds one "
                                        "face per file (300-W makes one crop per face)", str(folder))
        if im.faces:
            target = safe_join(folder, Path(im.path).with_suffix(".pts").as_posix())
            planned.append((im, target, format_pts(im.faces[0].landmarks, str(target))))
    # Everything is checked before the first file is written.
    for im, target, text in planned:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, text)
        if copy_images:
            _copy_image(aset, im, safe_join(folder, im.path))


def _copy_image(aset: AnnotationSet, im: AnnotatedImage, target: Path) -> None:
    if im.pixels is not None:
        from PIL import Image
        buf = io.BytesIO()
        Image.fromarray(im.pixels).save(buf, format="PNG")
        atomic_write_bytes(target, buf.getvalue())
        return
    from . import image_file  # late: the package imports this module
    source = image_file(aset, im, allow_absolute=True)
    if source.resolve() != target.resolve():
        shutil.copyfile(source, target)
