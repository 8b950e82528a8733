"""Row-per-face tables: the keypoint CSV, CelebA's landmark lists and Kaggle's facial-keypoints CSV.

- Keypoint CSV (``ytf68/keypoints.csv``): ``image,x0,y0,...,x67,y67``, 0-based. An image on several
  rows holds several faces (grouped in first-appearance order).
- CelebA CSV (``five_point/list_landmarks.csv``): ``image_id,lefteye_x,...,rightmouth_y``; also
  CelebA's original whitespace-separated ``list_landmarks_align_celeba.txt`` (a count line, a line
  of the 10 column names, then ``NAME x y ...`` rows).
- Kaggle facial-keypoints ``training.csv``: the 30 ``<point>_x``/``<point>_y`` columns of
  ``KAGGLE15`` plus ``Image``, the 96x96 grayscale pixels as space-separated integers. The image is
  embedded, so each row becomes an ``AnnotatedImage`` whose ``pixels`` hold a (96, 96) uint8 array
  and whose ``path`` is the synthetic ``rowNNNNN.png`` (NNNNN = 1-based data row); nothing exists at
  that path until ``facelm.io.save_embedded_images`` writes it. Kaggle's ``test.csv`` (``ImageId,Image``)
  reads as images without faces.

An empty field (or ``nan``) is a missing point (NaN), and NaN is written as an empty field.
Coordinates are taken to be 0-based pixel coordinates in every table.
Images of the keypoint and CelebA tables are looked up beside the file, or in its ``images/``
folder when that is where they are (``AnnotationSet.root`` says which).
"""
from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..annotation import AnnotatedImage, AnnotationSet, Face
from ..errors import AnnotationFormatError
from ..paths import atomic_write_text
from ..schemes import CELEBA5, KAGGLE15, Scheme
from ._common import (PathLike, SchemeLike, format_coords, group_rows, parse_numbers, read_text, resolve_scheme,
                      to_float32, writable_count)

__all__ = ["read_keypoint_csv", "write_keypoint_csv", "read_celeba", "write_celeba_csv", "write_celeba_txt",
           "read_kaggle_csv", "write_kaggle_csv", "table_format", "read_table"]

KAGGLE_SIZE = 96
_PIXELS = re.compile(r"[0-9 ]+")
_PIXEL_TEXT = [str(v) for v in range(256)]  # a lookup is 5x faster than str() on 9216 pixels a row
_KAGGLE_IMAGE = "Image"
_KAGGLE_ID = "ImageId"


def _xy_columns(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"{n}_{c}" for n in names for c in ("x", "y"))


CELEBA_COLUMNS = _xy_columns(CELEBA5.names)
KAGGLE_COLUMNS = _xy_columns(KAGGLE15.names)


@dataclass(frozen=True)
class _Table:
    """Where a table's image name and coordinates are (indices into a row)."""
    image: int | None
    coords: tuple[int, ...]
    names: tuple[str, ...]
    """Column names of ``coords``, for error messages."""
    width: int
    """Fields per row."""


# ---------------------------------------------------------------- reading

def table_format(path: PathLike) -> str:
    """``"keypoint_csv"``, ``"celeba_csv"``, ``"celeba_txt"`` or ``"kaggle_csv"``, from the first line
    only (Kaggle's files are hundreds of MB)."""
    source = str(path)
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except FileNotFoundError:
        raise AnnotationFormatError("file not found", source) from None
    first = head.decode("utf-8", "replace").lstrip("\ufeff").lstrip().split("\n", 1)[0].strip()
    if not first:
        raise AnnotationFormatError("empty file", source)
    if _is_count(first):  # CelebA's list starts with its row count
        return "celeba_txt"
    try:
        cols = [c.strip() for c in next(csv.reader([first]))]
    except csv.Error as e:  # a stray "\r" in the first line
        raise AnnotationFormatError(f"malformed CSV header: {e}", source, "line 1") from None
    if cols[0] == "image" and cols[1:3] == ["x0", "y0"]:
        return "keypoint_csv"
    if "image_id" in cols and "lefteye_x" in cols:
        return "celeba_csv"
    if _KAGGLE_IMAGE in cols:
        return "kaggle_csv"
    raise AnnotationFormatError(f"header {first[:60]!r} is none of the known tables (image,x0,y0,... / "
                                "image_id,lefteye_x,... / Kaggle's ...,Image)", source, "line 1")


def _rows(text: str, source: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank CSV row; csv's own errors name the line."""
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        for row in reader:
            if row and any(f.strip() for f in row):
                yield reader.line_num, row
    except csv.Error as e:
        raise AnnotationFormatError(f"malformed CSV: {e}", source, f"line {reader.line_num}") from None


def _layout(header: list[str], image_col: str | None, coord_cols: Sequence[str], source: str,
            extra: Sequence[str] = (), where: str = "line 1") -> _Table:
    """Map the header onto the expected columns (any order), refusing missing and unknown ones."""
    cols = [c.strip() for c in header]
    expected = ([image_col] if image_col else []) + list(coord_cols) + list(extra)
    missing = [c for c in expected if c not in cols]
    unknown = [c for c in cols if c not in expected]
    dupes = sorted(c for c, n in Counter(cols).items() if n > 1)  # Counter: a 100,000-column header stays fast
    if missing or unknown or dupes:
        what = "; ".join(f"{label}: {', '.join(v[:5])}{' ...' if len(v) > 5 else ''}"
                         for label, v in (("missing columns", missing), ("unknown columns", unknown),
                                          ("duplicate columns", dupes)) if v)
        raise AnnotationFormatError(f"unexpected header ({what})", source, where)
    return _Table(image=cols.index(image_col) if image_col else None,
                  coords=tuple(cols.index(c) for c in coord_cols), names=tuple(coord_cols), width=len(cols))


def _faces(rows: Iterator[tuple[int, list[str]]], table: _Table, source: str) -> list[tuple[str, Face]]:
    out = []
    for line, row in rows:
        if len(row) != table.width:
            raise AnnotationFormatError(f"{len(row)} fields, expected {table.width} (truncated row?)", source,
                                        f"line {line}")
        values = parse_numbers([row[i] for i in table.coords], table.names, source, f"line {line}",
                               allow_missing=True)
        name = row[table.image].strip() if table.image is not None else ""
        if table.image is not None and not name:
            raise AnnotationFormatError("empty image name", source, f"line {line}")
        out.append((name, Face(to_float32(values, source=source, where=f"line {line}").reshape(-1, 2))))
    return out


def _image_root(table_path: Path, first_image: str | None) -> Path:
    """The folder image names are relative to: beside the table, or its ``images/`` subfolder."""
    folder = table_path.parent
    if first_image and not (folder / first_image).exists() and (folder / "images" / first_image).exists():
        return folder / "images"
    return folder


def _assemble(faces: list[tuple[str, Face]], scheme: Scheme, path: Path) -> AnnotationSet:
    grouped = group_rows(faces)
    images = [AnnotatedImage(path=name, faces=fs) for name, fs in grouped.items()]
    root = _image_root(path, images[0].path if images else None)
    return AnnotationSet(images=images, scheme=scheme.name, name=path.parent.name, root=str(root))


def _header(text: str, source: str) -> tuple[Iterator[tuple[int, list[str]]], list[str]]:
    """The header row and an iterator over the rows after it."""
    rows = _rows(text, source)
    for _, header in rows:
        return rows, header
    raise AnnotationFormatError("empty file", source)


def read_keypoint_csv(path: PathLike, scheme: SchemeLike = None) -> AnnotationSet:
    """``image,x0,y0,...`` table; the point count comes from the header."""
    path, source = Path(path), str(path)
    rows, header = _header(read_text(path), source)
    if len(header) < 3 or len(header) % 2 != 1:
        raise AnnotationFormatError(f"header has {len(header)} columns; expected image and x/y pairs", source,
                                    "line 1")
    k = (len(header) - 1) // 2
    resolved = resolve_scheme(k, scheme, source, "line 1")
    coords = tuple(f"{c}{i}" for i in range(k) for c in ("x", "y"))
    table = _layout(header, "image", coords, source)
    return _assemble(_faces(rows, table, source), resolved, path)


def read_celeba(path: PathLike, scheme: SchemeLike = None) -> AnnotationSet:
    """CelebA landmarks: the CSV (``image_id,lefteye_x,...``) or the original whitespace ``.txt``."""
    path, source = Path(path), str(path)
    resolve_scheme(CELEBA5.num_points, scheme, source, None)
    text = read_text(path)
    if _is_count(text.lstrip().split("\n", 1)[0].strip()):
        faces = _celeba_txt_faces(text, source)
    else:
        rows, header = _header(text, source)
        faces = _faces(rows, _layout(header, "image_id", CELEBA_COLUMNS, source), source)
    return _assemble(faces, CELEBA5, path)


def _is_count(line: str) -> bool:
    """CelebA's first line: ASCII digits only ("²".isdigit() is true too, but int() refuses it)."""
    return line.isascii() and line.isdigit()


def _celeba_txt_faces(text: str, source: str) -> list[tuple[str, Face]]:
    lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if len(lines[0][1]) != 1 or not _is_count(lines[0][1][0]) or len(lines[0][1][0]) > 12:
        raise AnnotationFormatError(f"first line {' '.join(lines[0][1])[:40]!r} is not a row count", source,
                                    f"line {lines[0][0]}")
    count = int(lines[0][1][0])
    if len(lines) < 2:
        raise AnnotationFormatError("no header line after the count", source, f"line {lines[0][0]}")
    # The header names only the coordinates; the image name is the first field of each row.
    table = _layout(["image_id"] + lines[1][1], "image_id", CELEBA_COLUMNS, source, where=f"line {lines[1][0]}")
    faces = _faces(iter(lines[2:]), table, source)
    if len(faces) != count:
        raise AnnotationFormatError(f"first line says {count} rows, found {len(faces)} (truncated file?)", source,
                                    f"line {lines[-1][0]}")
    return faces


def read_kaggle_csv(path: PathLike, scheme: SchemeLike = None) -> AnnotationSet:
    """Kaggle facial-keypoints ``training.csv`` (or ``test.csv``) with the images embedded."""
    path, source = Path(path), str(path)
    rows, header = _header(read_text(path), source)
    cols = [c.strip() for c in header]
    if _KAGGLE_ID in cols:  # test.csv: images only
        table = _layout(header, None, (), source, extra=(_KAGGLE_ID, _KAGGLE_IMAGE))
    else:
        resolve_scheme(KAGGLE15.num_points, scheme, source, "line 1")
        table = _layout(header, None, KAGGLE_COLUMNS, source, extra=(_KAGGLE_IMAGE,))
    pixel_col = cols.index(_KAGGLE_IMAGE)
    images = []
    for n, (line, row) in enumerate(rows, 1):
        [(_, face)] = _faces(iter([(line, row)]), table, source)
        pixels = _kaggle_pixels(row[pixel_col], source, f"line {line}")
        images.append(AnnotatedImage(path=f"row{n:05d}.png", faces=[face] if table.coords else [],
                                     width=KAGGLE_SIZE, height=KAGGLE_SIZE, pixels=pixels))
    return AnnotationSet(images=images, scheme=KAGGLE15.name, name=path.parent.name, root=str(path.parent))


def _kaggle_pixels(text: str, source: str, where: str) -> np.ndarray:
    n = KAGGLE_SIZE * KAGGLE_SIZE
    # Pixels are most of a 7000-row file: parse them in C once the text is known to be only digits.
    if _PIXELS.fullmatch(text):
        values = np.fromstring(text, dtype=np.int64, sep=" ")
        if values.size == n and values.max() <= 255:
            return values.astype(np.uint8).reshape(KAGGLE_SIZE, KAGGLE_SIZE)
    fields = text.split()
    raise AnnotationFormatError(f"Image must hold {KAGGLE_SIZE}x{KAGGLE_SIZE} = {n} integers 0..255 separated by "
                                f"spaces; found {len(fields)} values", source, where)


def read_table(path: PathLike, scheme: SchemeLike = None) -> AnnotationSet:
    """Any of the three tables, told apart by ``table_format``."""
    reader = {"keypoint_csv": read_keypoint_csv, "celeba_csv": read_celeba, "celeba_txt": read_celeba,
              "kaggle_csv": read_kaggle_csv}[table_format(path)]
    return reader(path, scheme)


# ---------------------------------------------------------------- writing

def _fields(face: Face) -> list[str]:
    return format_coords(face.landmarks, missing="")


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)  # "\r\n" line ends, as csv (and ytf68/keypoints.csv) has them
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _face_rows(aset: AnnotationSet, target: str = "<csv>") -> list[list[str]]:
    for im in aset.images:
        # The readers strip fields and refuse empty names: such a name would not come back as it is.
        if im.faces and (not im.path.strip() or im.path != im.path.strip()):
            raise AnnotationFormatError(f"image name {im.path!r} is empty or starts or ends with white space, which "
                                        "a table cannot hold; nothing was written", target)
    return [[im.path] + _fields(face) for im in aset.images for face in im.faces]


def _require_scheme(aset: AnnotationSet, scheme: Scheme, target: str, fmt: str) -> None:
    if aset.scheme != scheme.name:
        raise AnnotationFormatError(f"{fmt} holds {scheme.name} points; this set is {aset.scheme!r} "
                                    "(convert it with facelm.schemes.convert first)", target)
    writable_count(aset, target)


def write_keypoint_csv(aset: AnnotationSet, path: PathLike) -> None:
    """``image,x0,y0,...``: one row per face, any scheme. Images without faces are not written."""
    k = writable_count(aset, str(path))
    header = ["image"] + [f"{c}{i}" for i in range(k) for c in ("x", "y")]
    atomic_write_text(path, _csv_text(header, _face_rows(aset, str(path))))


def write_celeba_csv(aset: AnnotationSet, path: PathLike) -> None:
    _require_scheme(aset, CELEBA5, str(path), "the CelebA table")
    atomic_write_text(path, _csv_text(["image_id", *CELEBA_COLUMNS], _face_rows(aset, str(path))))


def write_celeba_txt(aset: AnnotationSet, path: PathLike) -> None:
    """CelebA's original layout. Names with spaces cannot be written (spaces separate fields)."""
    _require_scheme(aset, CELEBA5, str(path), "the CelebA list")
    rows = _face_rows(aset, str(path))
    for row in rows:
        if not row[0] or any(ch.isspace() for ch in row[0]) or "" in row[1:]:
            raise AnnotationFormatError(f"row {row[0]!r}: names with spaces and missing points cannot be written "
                                        "to CelebA's whitespace-separated list", str(path))
    lines = [str(len(rows)), " ".join(CELEBA_COLUMNS)] + [" ".join(r) for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_kaggle_csv(aset: AnnotationSet, path: PathLike) -> None:
    """Kaggle's ``training.csv``: one face per image; the pixels come from ``AnnotatedImage.pixels``, or
    from the image file when that is a 96x96 picture (converted to grayscale)."""
    target = str(path)
    _require_scheme(aset, KAGGLE15, target, "Kaggle's table")
    rows = []
    for i, im in enumerate(aset.images, 1):
        if len(im.faces) != 1:
            raise AnnotationFormatError(f"image {i} ({im.path!r}) has {len(im.faces)} faces; Kaggle's table has "
                                        "exactly one per image", target)
        pixels = _kaggle_image(aset, im, target)
        rows.append(_fields(im.faces[0]) + [" ".join([_PIXEL_TEXT[v] for v in pixels.reshape(-1).tolist()])])
    atomic_write_text(path, _csv_text([*KAGGLE_COLUMNS, _KAGGLE_IMAGE], rows))


def _kaggle_image(aset: AnnotationSet, im: AnnotatedImage, target: str) -> np.ndarray:
    pixels = im.pixels
    if pixels is None:
        from . import image_file  # late: the package imports this module
        from PIL import Image
        with Image.open(image_file(aset, im, allow_absolute=True)) as img:
            pixels = np.asarray(img.convert("L"))
    if pixels.shape != (KAGGLE_SIZE, KAGGLE_SIZE) or pixels.dtype != np.uint8:
        raise AnnotationFormatError(f"{im.path!r}: Kaggle's table embeds {KAGGLE_SIZE}x{KAGGLE_SIZE} 8-bit "
                                    f"grayscale images, this one is {pixels.shape} {pixels.dtype}", target)
    return pixels
