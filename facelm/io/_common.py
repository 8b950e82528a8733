"""Helpers every format module shares: reading text safely, parsing and printing numbers, schemes."""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..annotation import AnnotationSet
from ..errors import AnnotationFormatError, SchemeError
from ..schemes import Scheme, get_scheme, scheme_for_count

PathLike = str | os.PathLike
SchemeLike = str | int | Scheme | None

IMAGE_EXTENSIONS = (".jpg", ".png", ".jpeg", ".bmp", ".JPG", ".PNG", ".JPEG", ".BMP")
"""Looked for, in this order, beside a ``.pts`` file (300-W uses .jpg and .png)."""


class AnnotationSchemeError(AnnotationFormatError, SchemeError):
    """A file whose point count fits no known scheme: both a format error (it names the file and the
    line or element) and a ``SchemeError``, so either ``except`` catches it."""


def read_bytes(path: PathLike) -> bytes:
    """The file's bytes; a missing, unreadable or empty file is an ``AnnotationFormatError``."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise AnnotationFormatError("file not found", str(path)) from None
    except IsADirectoryError:
        raise AnnotationFormatError("is a folder, expected a file", str(path)) from None
    except OSError as e:
        raise AnnotationFormatError(f"cannot read: {e.strerror or e}", str(path)) from None
    if not data.strip():
        raise AnnotationFormatError("empty file", str(path))
    return data


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 (a BOM is dropped); anything else is refused with the line of the first bad byte, because
    guessing a legacy encoding would silently turn names into mojibake."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise AnnotationFormatError(f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})",
                                    source, f"line {line}") from None


def read_text(path: PathLike) -> str:
    return decode_text(read_bytes(path), str(path))


# Plain decimals only: float() alone would also take "1_000", "infinity" and non-ASCII digits.
_NUMBER = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")


def parse_number(text: str, source: str, where: str, *, allow_missing: bool = False) -> float:
    """A finite decimal number; with ``allow_missing``, an empty field or ``nan`` is NaN (a missing point)."""
    t = text.strip()
    if allow_missing and (t == "" or t.lower() == "nan"):
        return math.nan
    if not _NUMBER.fullmatch(t):
        kind = "a finite number" if t.lower().lstrip("+-") in ("inf", "infinity", "nan") else "a number"
        raise AnnotationFormatError(f"{text!r} is not {kind}", source, where)
    v = float(t)
    if not math.isfinite(v):  # 1e999
        raise AnnotationFormatError(f"{text!r} is not a finite number", source, where)
    return v


def parse_numbers(fields: Sequence[str], names: Sequence[str], source: str, where: str,
                  *, allow_missing: bool = False) -> np.ndarray:
    """Parse a row of numbers to float64; ``names`` label the fields in error messages."""
    # Fast path for the common all-clean row; the slow path below finds and names the culprit.
    if all(_NUMBER.fullmatch(f) for f in fields):
        # strip() first: the regex's \s (like str.strip) takes separators such as "\x1e" that float() refuses.
        values = np.array([float(f.strip()) for f in fields], dtype=np.float64)
        if np.isfinite(values).all():
            return values
    return np.array([parse_number(f, source, f"{where}, column {n!r}", allow_missing=allow_missing)
                     for f, n in zip(fields, names)], dtype=np.float64)


def to_float32(values: np.ndarray | float, offset: float = 0.0, source: str | None = None,
               where: str | None = None) -> np.ndarray:
    """How every reader turns parsed float64 numbers into coordinates: subtract in float64, then round
    once to float32. ``format_coord`` relies on readers doing exactly this.

    A finite number beyond float32's range (about 3.4e38, e.g. "1e300") would silently become
    infinity, which no writer can spell: it is an ``AnnotationFormatError`` naming ``source``/``where``.
    """
    wide = np.asarray(values, dtype=np.float64) - offset
    with np.errstate(over="ignore", invalid="ignore"):
        out = wide.astype(np.float32)
    if np.isinf(out).any():  # parsed numbers are finite: infinity can only come from overflow
        raise AnnotationFormatError("a coordinate is beyond the float32 range (about ±3.4e38)", source, where)
    return out


def format_coord(value: float, offset: float = 0.0) -> str:
    """Shortest decimal text ``s`` with ``float32(float(s) - offset) == float32(value)``.

    So that written-then-read is exact in float32 while values read from a file come back as the
    file spelled them ("132.372", not "132.37199401855469"). ``offset`` is what the reader
    subtracts (1 for the 1-based .pts files).
    """
    v = np.float32(value)
    if not np.isfinite(v):
        raise ValueError(f"cannot format {value!r} as a coordinate")
    target = float(v) + offset + 0.0  # "+ 0.0" turns -0.0 into 0.0

    def exact(s: str) -> bool:
        return np.float32(float(s) - offset) == v

    if target.is_integer() and exact(s := str(int(target))):
        return s
    for decimals in range(10):
        s = f"{target:.{decimals}f}"
        if exact(s):
            return s.rstrip("0").rstrip(".") if "." in s else s
    return repr(target)  # tiny values: float64's shortest repr is exact


def format_coords(values: np.ndarray, offset: float = 0.0, missing: str | None = None) -> list[str]:
    """``format_coord`` over an array, fast: guess each text (float32's own shortest repr, which is the
    answer for ``offset=0`` and nearly always for 1), then verify all guesses at once.

    NaN becomes ``missing``; without it NaN is refused (``ValueError``).
    """
    v = np.asarray(values, dtype=np.float32).reshape(-1)
    nan = np.isnan(v)
    if (nan.any() and missing is None) or np.isinf(v).any():
        raise ValueError("cannot format missing or infinite coordinates in this format")
    target = v.astype(np.float64) + offset + 0.0
    out = [missing if t != t else str(int(t)) if t.is_integer()  # type: ignore[misc]
           else np.format_float_positional(np.float32(t), unique=True, trim="-") for t in target.tolist()]
    parsed = np.array([0.0 if n else float(s) for s, n in zip(out, nan.tolist())], dtype=np.float64)
    wrong = ((parsed - offset).astype(np.float32) != v) & ~nan
    for i in np.flatnonzero(wrong):
        out[i] = format_coord(float(v[i]), offset)
    return out  # type: ignore[return-value]


def resolve_scheme(count: int, scheme: SchemeLike, source: str, where: str | None) -> Scheme:
    """The scheme for a face of ``count`` points: the caller's (the count must fit it) or the one
    known scheme with that many points."""
    if scheme is not None:
        s = get_scheme(scheme)
        if count != s.num_points:
            raise AnnotationSchemeError(f"{count} points, but scheme {s.name!r} has {s.num_points}", source, where)
        return s
    try:
        return scheme_for_count(count)
    except SchemeError as e:
        raise AnnotationSchemeError(f"{e} (pass scheme= to read other point counts)", source, where) from None


def known_scheme(name: str) -> Scheme | None:
    """The built-in scheme called ``name``, or None for a caller's own (read with ``scheme=Scheme(...)``)."""
    try:
        return get_scheme(name)
    except SchemeError:
        return None


def writable_count(aset: AnnotationSet, target: str, *, allow_empty: bool = False) -> int:
    """Check that every face has the set's point count before a writer commits anything to disk, and
    return that count (the scheme's, or the faces' own for a scheme that is not built in).

    ``allow_empty`` lets faces without points through (dlib XML boxes used for detection only).
    """
    scheme = known_scheme(aset.scheme)
    expected = scheme.num_points if scheme else None
    for i, im in enumerate(aset.images, 1):
        for j, face in enumerate(im.faces, 1):
            k = face.num_points
            if k == 0 and allow_empty:
                continue
            if expected is None:
                expected = k
            if k != expected:
                raise AnnotationFormatError(
                    f"image {i} ({im.path!r}) face {j} has {k} points, expected {expected} for scheme "
                    f"{aset.scheme!r}; nothing was written", target)
    return expected or 0


def check_finite(landmarks: np.ndarray, target: str, what: str) -> None:
    """Formats without a way to spell a missing point refuse NaN instead of writing "nan"."""
    if not np.isfinite(landmarks).all():
        raise AnnotationFormatError(f"{what} has missing (NaN) points, which this format cannot hold", target)


def group_rows(rows: Iterable[tuple[str, object]]) -> dict[str, list]:
    """Rows ``(image, face)`` -> ``{image: [faces]}`` in first-appearance order: in the row formats an
    image that appears on several rows holds several faces."""
    out: dict[str, list] = {}
    for image, face in rows:
        out.setdefault(image, []).append(face)
    return out
