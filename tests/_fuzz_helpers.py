"""Fuzzing machinery shared by ``tests/test_fuzz.py`` (a short CI run) and ``tests/tools/fuzz_parsers.py``
(the long run): per annotation format, a hypothesis strategy of valid annotation sets, seed files
(real files from ``../shared/data`` when present, plus synthetic ones), a byte mutator and the checks.

The checks are plain functions that raise on a finding:

- ``check_round_trip(target, aset)``: a valid set written and read back is exactly the same set.
- ``check_bytes(target, data)``: reading arbitrary bytes either raises one of facelm's own errors
  (``FacelmError`` subclasses) or gives a set that writes (or is refused with a ``FacelmError``) and
  reads back unchanged. Anything else (``TypeError``, ``RecursionError``, a plain ``ValueError``, a
  numpy overflow warning...) is a finding.
"""
from __future__ import annotations

import atexit
import dataclasses
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from hypothesis import strategies as st

from facelm.annotation import AnnotatedImage, AnnotationSet, Face
from facelm.errors import FacelmError
from facelm.io import read_annotations
from facelm.io.coco import read_coco, write_coco
from facelm.io.csv_formats import (read_celeba, read_kaggle_csv, read_keypoint_csv, write_celeba_csv,
                                   write_celeba_txt, write_kaggle_csv, write_keypoint_csv)
from facelm.io.dlib_xml import read_dlib_xml, write_dlib_xml
from facelm.io.pts import read_pts, write_pts
from facelm.schemes import get_scheme

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FACELM_SHARED_DATA", REPO.parent / "shared" / "data"))

# One scratch folder per process: hypothesis runs examples one after another, so fixed names inside
# it are fine (and function-scoped pytest fixtures do not mix with @given).
_WORK = Path(tempfile.mkdtemp(prefix="facelm-fuzz-"))
atexit.register(shutil.rmtree, _WORK, True)


# ---------------------------------------------------------------------------------------- targets

@dataclass(frozen=True)
class Target:
    """One annotation format: how to read and write it, and what it can hold."""
    name: str
    suffix: str
    read: Callable[[Path, str | None], AnnotationSet]
    write: Callable[[AnnotationSet, Path], None]
    keeps_text: bool = False
    """Whether the format keeps the set's name and comment (compared after a round trip)."""


def _read_pts(path: Path, scheme: str | None = None) -> AnnotationSet:
    pts = read_pts(path, scheme)
    return AnnotationSet([AnnotatedImage("face.jpg", [Face(pts)])], scheme=_scheme_name(len(pts), scheme))


def _scheme_name(k: int, scheme: str | None) -> str:
    return scheme or {68: "ibug68", 15: "kaggle15", 5: "celeba5"}[k]


def _write_pts(aset: AnnotationSet, path: Path) -> None:
    write_pts(path, aset.images[0].faces[0].landmarks)


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("pts", ".pts", _read_pts, _write_pts),
    Target("dlib_xml", ".xml", read_dlib_xml, lambda a, p: write_dlib_xml(a, p, precision=None), keeps_text=True),
    Target("keypoint_csv", ".csv", read_keypoint_csv, write_keypoint_csv),
    Target("celeba_csv", ".csv", read_celeba, write_celeba_csv),
    Target("celeba_txt", ".txt", read_celeba, write_celeba_txt),
    Target("kaggle_csv", ".csv", read_kaggle_csv, write_kaggle_csv),
    Target("coco", ".json", read_coco, write_coco, keeps_text=True),
]}


def same(target: Target, a: AnnotationSet, b: AnnotationSet) -> bool:
    ok = a.images == b.images and a.scheme == b.scheme
    if target.keeps_text:
        ok = ok and (a.name, a.comment) == (b.name, b.comment)
    return ok


def describe_difference(a: AnnotationSet, b: AnnotationSet) -> str:
    if a.scheme != b.scheme:
        return f"scheme {a.scheme!r} != {b.scheme!r}"
    if len(a.images) != len(b.images):
        return f"{len(a.images)} images != {len(b.images)}"
    for i, (x, y) in enumerate(zip(a.images, b.images)):
        if x != y:
            fields = {f.name: (getattr(x, f.name), getattr(y, f.name)) for f in dataclasses.fields(x)}
            diff = [k for k, (u, v) in fields.items() if not _eq(u, v)]
            if "faces" in diff and len(x.faces) == len(y.faces):
                for j, (f, g) in enumerate(zip(x.faces, y.faces)):
                    if f != g:
                        return f"image {i} face {j}: {f!r} != {g!r}"
            return f"image {i}: fields {diff} differ: {[fields[k] for k in diff if k != 'pixels']}"
    return f"name/comment {(a.name, a.comment)!r} != {(b.name, b.comment)!r}"


def _eq(u, v) -> bool:
    if isinstance(u, np.ndarray) or isinstance(v, np.ndarray):
        return u is not None and v is not None and np.array_equal(u, v)
    return u == v


# ---------------------------------------------------------------------------------------- checks

class Finding(AssertionError):
    """A fuzz case that broke a property (not one of facelm's own errors)."""


def _scratch(name: str) -> Path:
    folder = _WORK / name
    folder.mkdir(exist_ok=True)
    return folder


def check_round_trip(target: Target, aset: AnnotationSet) -> None:
    path = _scratch(target.name) / f"valid{target.suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy overflow and invalid-value warnings are findings
        target.write(aset, path)
        back = target.read(path, aset.scheme)
    if not same(target, aset, back):
        raise Finding(f"{target.name}: read(write(x)) != x: {describe_difference(aset, back)}")


def check_bytes(target: Target, data: bytes) -> str:
    """Read ``data`` as a ``target`` file. Returns what happened: "refused" (a FacelmError, as it
    should be for junk), "read" (then written and read back unchanged) or "read, not writable"."""
    folder = _scratch(target.name)
    path = folder / f"in{target.suffix}"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:  # through the auto-detecting entry point too (it looks inside tables)
            read_annotations(path)
        except FacelmError:
            pass
        try:
            aset = target.read(path, None)
        except FacelmError:
            return "refused"
        out = folder / f"out{target.suffix}"
        try:
            target.write(aset, out)
        except FacelmError:
            return "read, not writable"
        back = target.read(out, aset.scheme)
    if not same(target, aset, back):
        raise Finding(f"{target.name}: a file read, written and read again changed: {describe_difference(aset, back)}")
    return "read"


def run_guarded(check: Callable[[], object]) -> BaseException | None:
    """Run a check; any exception is the finding (returned, not raised), for the long fuzz run."""
    try:
        check()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - every exception type is what we are counting
        return e
    return None


# ------------------------------------------------------------------------------ valid annotation sets

# Coordinates as the formats promise to keep them (see each module's notes): any finite float32 for
# landmarks, except that .pts (1-based text) cannot hold non-zero values within ~2e-9 of 0; boxes
# (stored as corner + size) are kept for real pixel coordinates, not for 1e30 beside 1e-30.
_wide = st.floats(width=32, allow_nan=False, allow_infinity=False)
_pixel = st.floats(min_value=-2000, max_value=20000, width=32).filter(lambda v: v == 0 or abs(v) > 1e-3)
landmark_coords = st.one_of(_pixel, _wide)
pts_coords = st.one_of(_pixel, _wide.filter(lambda v: v == 0 or abs(v) > 1e-6))
box_coords = _pixel
NAN = float("nan")

SCHEMES = ("ibug68", "kaggle15", "celeba5")
XML_ILLEGAL = set(map(chr, [*range(0, 9), 11, 12, *range(14, 32), 0xFFFE, 0xFFFF]))

# Names: mostly plausible file names, sometimes anything the format can hold.
_plain_names = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_ .()-]{0,20}\.(jpg|png)", fullmatch=True)
_any_text = st.text(max_size=24)
_xml_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="".join(XML_ILLEGAL)),
                    max_size=24)
_csv_names = st.one_of(_plain_names, st.text(min_size=1, max_size=24).filter(lambda s: s.strip() == s and s))
_txt_names = st.one_of(_plain_names.filter(lambda s: " " not in s),
                       st.text(min_size=1, max_size=24).filter(lambda s: not any(c.isspace() for c in s)))


@st.composite
def landmarks(draw, k: int, coords=landmark_coords, missing: str = "none") -> np.ndarray:
    """(k, 2) float32. ``missing``: "none", "field" (x or y alone may be NaN) or "point" (both or neither)."""
    flat = draw(st.lists(coords, min_size=2 * k, max_size=2 * k))
    pts = np.asarray(flat, np.float32).reshape(k, 2)
    if missing != "none" and k and draw(st.booleans()):
        mask = np.asarray(draw(st.lists(st.booleans(), min_size=2 * k, max_size=2 * k))).reshape(k, 2)
        if missing == "point":
            mask = np.repeat(mask[:, :1], 2, axis=1)
        pts[mask] = np.nan
    return pts


@st.composite
def boxes(draw) -> np.ndarray:
    x1, y1, x2, y2 = (draw(box_coords) for _ in range(4))
    return np.array([min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)], np.float32)


def _unique_paths(names, min_size=0, max_size=3):
    return st.lists(names, min_size=min_size, max_size=max_size, unique=True)


@st.composite
def pts_sets(draw) -> AnnotationSet:
    scheme = draw(st.sampled_from(SCHEMES))
    pts = draw(landmarks(get_scheme(scheme).num_points, pts_coords))
    return AnnotationSet([AnnotatedImage("face.jpg", [Face(pts)])], scheme=scheme)


@st.composite
def xml_sets(draw) -> AnnotationSet:
    scheme = draw(st.sampled_from(SCHEMES))
    k = get_scheme(scheme).num_points
    images = []
    for path in draw(_unique_paths(st.one_of(_plain_names, _xml_text), max_size=3)):
        faces = []
        for _ in range(draw(st.integers(0, 2))):
            if draw(st.integers(0, 4)) == 0:  # a detection-only box (dlib's training.xml)
                pts = np.zeros((0, 2), np.float32)
            else:
                pts = draw(landmarks(k, missing="point"))
                if np.isnan(pts).all():  # a box without parts reads as a detection-only box
                    pts[0] = 0.0
            faces.append(Face(pts, box=draw(boxes()), ignore=draw(st.booleans())))
        size = draw(st.one_of(st.none(), st.tuples(st.integers(1, 100000), st.integers(1, 100000))))
        images.append(AnnotatedImage(path, faces, *(size or (None, None))))
    return AnnotationSet(images, scheme=scheme, name=draw(_xml_text), comment=draw(_xml_text))


@st.composite
def coco_sets(draw) -> AnnotationSet:
    scheme = draw(st.sampled_from(SCHEMES))
    k = get_scheme(scheme).num_points
    images = []
    for path in draw(_unique_paths(st.one_of(_plain_names, st.text(min_size=1, max_size=24)), max_size=3)):
        faces = [Face(draw(landmarks(k, missing="point")), box=draw(st.one_of(st.none(), boxes())),
                      ignore=draw(st.booleans())) for _ in range(draw(st.integers(0, 2)))]
        size = st.one_of(st.none(), st.integers(0, 10**6))
        width, height = draw(size), draw(size)
        images.append(AnnotatedImage(path, faces, width, height))
    return AnnotationSet(images, scheme=scheme, name=draw(_any_text), comment=draw(_any_text))


@st.composite
def table_sets(draw, schemes=SCHEMES, names=_csv_names, missing: str = "field") -> AnnotationSet:
    scheme = draw(st.sampled_from(schemes))
    k = get_scheme(scheme).num_points
    images = [AnnotatedImage(path, [Face(draw(landmarks(k, missing=missing))) for _ in range(draw(st.integers(1, 2)))])
              for path in draw(_unique_paths(names, max_size=3))]
    return AnnotationSet(images, scheme=scheme)


@st.composite
def kaggle_sets(draw) -> AnnotationSet:
    images = []
    for n in range(1, draw(st.integers(0, 3)) + 1):
        kind = draw(st.integers(0, 3))
        seed = draw(st.integers(0, 2**32 - 1))
        pixels = (np.random.default_rng(seed).integers(0, 256, (96, 96), dtype=np.uint8) if kind
                  else np.full((96, 96), seed % 256, np.uint8))
        pts = draw(landmarks(15, missing="field"))
        images.append(AnnotatedImage(f"row{n:05d}.png", [Face(pts)], 96, 96, pixels=pixels))
    return AnnotationSet(images, scheme="kaggle15")


VALID_SETS = {
    "pts": pts_sets(),
    "dlib_xml": xml_sets(),
    "keypoint_csv": table_sets(),
    "celeba_csv": table_sets(schemes=("celeba5",)),
    "celeba_txt": table_sets(schemes=("celeba5",), names=_txt_names, missing="none"),
    "kaggle_csv": kaggle_sets(),
    "coco": coco_sets(),
}


# ---------------------------------------------------------------------------------------- seed files

def _head(path: Path, lines: int) -> bytes:
    with open(path, "rb") as f:
        return b"".join(next(f) for _ in range(lines))


def _synthetic_set(target: str, seed: int) -> AnnotationSet:
    """A small deterministic valid set, for when the real data is absent (and as extra seeds)."""
    rng = np.random.default_rng(seed)
    scheme = {"celeba_csv": "celeba5", "celeba_txt": "celeba5", "kaggle_csv": "kaggle15"}.get(
        target, SCHEMES[seed % 3])
    k = get_scheme(scheme).num_points
    images = []
    for n in range(1, 3):
        pts = (rng.uniform(0, 480, (k, 2)) * 1000).round().astype(np.float32) / 1000
        pixels = rng.integers(0, 256, (96, 96), dtype=np.uint8) if target == "kaggle_csv" else None
        name = f"row{n:05d}.png" if target == "kaggle_csv" else f"img_{seed}_{n}.jpg"
        box = np.array([10, 20, 300, 310], np.float32) if target in ("dlib_xml", "coco") else None
        images.append(AnnotatedImage(name, [Face(pts, box=box)], 96 if pixels is not None else 480,
                                     96 if pixels is not None else 480, pixels=pixels))
    return AnnotationSet(images, scheme=scheme, name="seed", comment="synthetic seed")


def _written(target: str, aset: AnnotationSet) -> bytes:
    path = _scratch("seeds") / f"{target}{TARGETS[target].suffix}"
    TARGETS[target].write(aset, path)
    return path.read_bytes()


_SEEDS: dict[str, list[bytes]] = {}


def seeds(target: str) -> list[bytes]:
    """Seed files to mutate: real files (or their first rows) from ../shared/data where present,
    and files written from small synthetic sets."""
    if target not in _SEEDS:
        out = [_written(target, _synthetic_set(target, s)) for s in range(3)]
        d = SHARED_DATA
        if (d / "README.md").exists():
            out += _real_seeds(target, d)
        _SEEDS[target] = out
    return _SEEDS[target]


def _real_seeds(target: str, d: Path) -> list[bytes]:
    dlib = d / "dlib_examples_faces"
    if target == "pts":
        return [p.read_bytes() for p in sorted((d / "300w" / "afw").glob("*.pts"))[:4]]
    if target == "dlib_xml":
        return [(dlib / n).read_bytes() for n in ("training_with_face_landmarks.xml", "testing.xml", "training.xml")]
    if target == "keypoint_csv":
        return [_head(d / "ytf68" / "keypoints.csv", 4)]
    if target == "celeba_csv":
        return [_head(d / "five_point" / "list_landmarks.csv", 8)]
    if target == "celeba_txt":  # CelebA's own layout, written from real five_point rows
        path = _scratch("seeds") / "five.csv"
        path.write_bytes(_head(d / "five_point" / "list_landmarks.csv", 8))
        return [_written("celeba_txt", read_celeba(path))]
    if target == "coco":  # dlib's real annotations converted to COCO
        aset = read_dlib_xml(dlib / "training_with_face_landmarks.xml")
        aset = dataclasses.replace(aset, images=aset.images[:2])
        return [_written("coco", aset)]
    if target == "kaggle_csv":  # no Kaggle data here: real five_point crops, resized, with 15 made-up points
        from PIL import Image
        images = []
        for n, p in enumerate(sorted((d / "five_point" / "images").glob("*.jpg"))[:2], 1):
            px = np.asarray(Image.open(p).convert("L").resize((96, 96)))
            pts = np.linspace(10, 80, 30, dtype=np.float32).reshape(15, 2)
            pts[3] = np.nan
            images.append(AnnotatedImage(f"row{n:05d}.png", [Face(pts)], 96, 96, pixels=px))
        return [_written("kaggle_csv", AnnotationSet(images, scheme="kaggle15"))]
    return []


# ---------------------------------------------------------------------------------------- mutations

COMMON_TOKENS = [
    b"\x00", b"\xff", b"\xfe\xff", b"\xef\xbb\xbf", "\u00b2".encode(), "\u0663".encode(), "\uff15".encode(),
    "\u2028".encode(), "\u00e9".encode(), b"\xc3", b"\r", b"\n", b"\r\n", b" ", b"\t", b"\x0b", b"\x0c", b"\x1c",
    b"\xc2\x85", b"-", b"+", b".", b"e", b"E", b"_", b"nan", b"NaN", b"inf", b"-Infinity", b"1e999", b"1e39",
    b"-3.5e38", b"3.4028235e38", b"1e308", b"99999999999999999999", b"9" * 5000, b"0", b"-0", b"-1", b"1e-50",
    b"0x10", b"1_000", b"\xf0\x9f\x98\x80",
]
FORMAT_TOKENS = {
    "pts": [b"version: 1", b"version: 2", b"n_points: 68", b"n_points: 5", b"n_points: -1", b"n_points: 1e3",
            b"{", b"}", b":", b"\n1 2\n", b"\n1\n", b"\n1 2 3\n"],
    "dlib_xml": [b"<", b">", b"/>", b"</box>", b"</image>", b"<box top='1' left='2' width='3' height='4'>",
                 b"<part name='99' x='1' y='2'/>", b"<part name='" + b"1" * 5000 + b"' x='1' y='2'/>",
                 b"<part name='00' x='1e300' y='2'/>", b"&amp;", b"&#0;", b"&#xD800;", b"&#13;", b"&lt;",
                 b"<!DOCTYPE d [<!ENTITY a 'bbbbbbbb'><!ENTITY c '&a;&a;&a;&a;&a;&a;'>]>", b"&a;",
                 b"<!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>", b"&x;",
                 b"<?xml version='1.0' encoding='no-such-codec'?>", b"encoding='utf-16'", b"<![CDATA[", b"]]>",
                 b"'", b'"', b" ignore='1'", b" width='0'", b" height='-1'", b"<image file='../../etc/passwd'>",
                 b"<!-- -->", b"<?pi x?>", b"xmlns='urn:x'"],
    "coco": [b"[", b"]", b"{", b"}", b",", b":", b'"', b"null", b"true", b"false", b"NaN", b"Infinity", b"-Infinity",
             b"[" * 50, b"[" * 5000, b"1" * 5000, b'"id"', b'"image_id"', b'"keypoints"', b'"bbox"', b'"file_name"',
             b'"iscrowd"', b'"info"', b'{"a": [1]}', b"[1, 2, 0]", b"\\ud800", b"\\u0000", b"1e400", b"1.5"],
    "csv": [b",", b'"', b'""', b"\r\n", b",,,,", b"image", b"x0", b"image_id", b"lefteye_x", b"Image", b"ImageId",
            b"1 2 3", b"255 " * 50, b"256", b"\n5\n", b"\n", b"a" * 140000],
}


def tokens(target: str) -> list[bytes]:
    key = "csv" if target.endswith(("_csv", "_txt")) else target
    return COMMON_TOKENS + FORMAT_TOKENS[key]


def mutate(data: bytes, ops: list[tuple[int, float, int, bytes]]) -> bytes:
    """Apply ``ops`` (kind, where 0..1, length, payload) one after another."""
    b = bytearray(data)
    for kind, where, length, payload in ops:
        i = min(int(where * len(b)), len(b))
        j = min(i + length, len(b))
        if kind == 0:  # flip bits of one byte
            if i < len(b):
                b[i] ^= (length % 255) + 1
        elif kind == 1:  # insert
            b[i:i] = payload
        elif kind == 2:  # delete a span
            del b[i:j]
        elif kind == 3:  # replace a span
            b[i:j] = payload
        elif kind == 4:  # duplicate a span
            b[j:j] = b[i:j]
        elif kind == 5:  # truncate (a crash or a short download)
            del b[i:]
        elif kind == 6:  # swap two spans (lines out of order)
            k = min(int((1 - where) * len(b)), len(b))
            lo, hi = sorted((i, k))
            b[lo:hi] = b[lo:hi][::-1] if length % 7 == 0 else b[hi - (hi - lo) // 2:hi] + b[lo:hi - (hi - lo) // 2]
    return bytes(b)


def _token(target: str):
    """One of the format's tokens, drawn by index: hypothesis would print a sampled_from of 140 kB tokens."""
    toks = tokens(target)

    def token(i: int) -> bytes:
        return toks[i]
    return st.integers(0, len(toks) - 1).map(token)


def mutation_ops(target: str):
    payload = st.one_of(_token(target), st.binary(min_size=1, max_size=8))
    op = st.tuples(st.integers(0, 6), st.floats(0, 1), st.integers(1, 64), payload)
    return st.lists(op, min_size=1, max_size=6)


def mutated_seeds(target: str):
    """Real or synthetic seed files, mutated (drawn by index: the seeds are too big to print)."""
    files = seeds(target)
    return st.tuples(st.integers(0, len(files) - 1), mutation_ops(target)).map(lambda t: mutate(files[t[0]], t[1]))


def mutated_written(target: str):
    """Files freshly written from random valid sets, mutated."""
    return st.builds(lambda aset, ops: mutate(_written(target, aset), ops), VALID_SETS[target], mutation_ops(target))


def junk(target: str):
    """Random bytes, and "token soup": the format's own tokens in random order."""
    soup = st.lists(st.one_of(_token(target), st.binary(max_size=4)), max_size=40).map(b"".join)
    return st.one_of(st.binary(max_size=600), soup)
