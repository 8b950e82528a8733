from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from _io_helpers import raises_at, write
from facelm.annotation import AnnotatedImage, AnnotationSet, Face
from facelm.errors import AnnotationFormatError, SchemeError
from facelm.io import read_annotations, write_annotations
from facelm.io.pts import (format_pts, parse_pts, read_pts, read_pts_annotation, read_pts_folder, write_pts,
                           write_pts_folder)
from facelm.schemes import Scheme

HEADER = "version: 1\nn_points: {n}\n{{\n"


def pts_text(points: np.ndarray | list, n: int | None = None) -> str:
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    return HEADER.format(n=len(pts) if n is None else n) + "".join(f"{x} {y}\n" for x, y in pts) + "}\n"


# ------------------------------------------------------------------ real 300-W files

def test_every_afw_file_reads_and_writes_back(shared_data: Path) -> None:
    files = sorted((shared_data / "300w" / "afw").glob("*.pts"))
    assert len(files) == 337
    for f in files:
        text = f.read_text()
        pts = read_pts(f)
        assert pts.shape == (68, 2) and pts.dtype == np.float32
        original = np.array([line.split() for line in text.splitlines()[3:71]], dtype=np.float64)
        assert np.abs(pts.astype(np.float64) + 1 - original).max() < 1e-4  # 1-based in the file
        out = format_pts(pts)
        rewritten = np.array([line.split() for line in out.splitlines()[3:71]], dtype=np.float64)
        assert np.abs(rewritten - original).max() < 1e-4
        assert np.array_equal(parse_pts(out), pts)  # written-then-read: exact


def test_known_values_of_first_afw_file(shared_data: Path) -> None:
    pts = read_pts(shared_data / "300w" / "afw" / "1051618982_1.pts")
    assert pts[0].tolist() == pytest.approx([131.372, 169.909], abs=1e-4)
    assert pts[67].tolist() == pytest.approx([225.108, 268.971], abs=1e-4)
    # the shortest decimals are chosen, so the file's spelling comes back
    assert format_pts(pts).splitlines()[3] == "132.372 170.909"


def test_read_pts_folder(shared_data: Path) -> None:
    aset = read_pts_folder(shared_data / "300w" / "afw")
    assert len(aset.images) == 337 and aset.num_faces() == 337
    assert aset.scheme == "ibug68" and aset.name == "afw"
    first = aset.images[0]
    assert first.path == "1051618982_1.jpg" and first.faces[0].box is None
    assert (Path(aset.root) / first.path).is_file()


def test_read_annotations_on_300w_root_reads_both_subsets(shared_data: Path) -> None:
    aset = read_annotations(shared_data / "300w")
    assert aset.num_faces() == 337 + 870
    assert {im.path.split("/")[0] for im in aset.images} == {"afw", "helen_trainset"}


def test_single_pts_file_via_read_annotations(shared_data: Path) -> None:
    aset = read_annotations(shared_data / "300w" / "afw" / "111076519_2.pts")
    assert [im.path for im in aset.images] == ["111076519_2.jpg"]
    assert aset == read_pts_annotation(shared_data / "300w" / "afw" / "111076519_2.pts")


def test_folder_round_trip_with_images(shared_data: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for f in sorted((shared_data / "300w" / "helen_trainset").glob("*.pts"))[:4]:
        shutil.copy(f, src)
        shutil.copy(f.with_suffix(".jpg"), src)
    aset = read_pts_folder(src)
    write_annotations(aset, tmp_path / "out", copy_images=True)
    back = read_annotations(tmp_path / "out")
    assert back.images == aset.images
    assert [p.read_bytes() for p in sorted(src.glob("*.jpg"))] == \
        [p.read_bytes() for p in sorted((tmp_path / "out").glob("*.jpg"))]


# ------------------------------------------------------------------ exactness

coords = st.floats(min_value=-5000, max_value=5000, width=32, allow_nan=False).filter(
    lambda v: v == 0 or abs(v) > 1e-6)  # below ~2**-29 px, 1-based text cannot hold a float32 exactly


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, (68, 2), elements=coords))
def test_write_then_read_is_exact(points: np.ndarray) -> None:
    assert np.array_equal(parse_pts(format_pts(points)), points)


def test_write_pts_is_atomic_file(tmp_path: Path) -> None:
    pts = np.arange(10, dtype=np.float32).reshape(5, 2) * 1.1
    write_pts(tmp_path / "a.pts", pts)
    assert np.array_equal(read_pts(tmp_path / "a.pts"), pts)
    assert [p.name for p in tmp_path.iterdir()] == ["a.pts"]


def test_custom_scheme_allows_other_counts(tmp_path: Path) -> None:
    three = Scheme(name="tri", names=("a", "b", "c"), flip=(0, 1, 2), interocular=(0, 1), pupils=((0,), (1,)))
    f = write(tmp_path, "t.pts", pts_text([[1, 2], [3, 4], [5, 6]]))
    assert read_pts(f, scheme=three).tolist() == [[0, 1], [2, 3], [4, 5]]


def test_tolerates_crlf_and_blank_lines(tmp_path: Path) -> None:
    text = pts_text(np.ones((5, 2))).replace("\n", "\r\n").replace("{\r\n", "{\r\n\r\n")
    assert read_pts(write(tmp_path, "c.pts", text)).shape == (5, 2)


# ------------------------------------------------------------------ bad input

def test_empty_file(tmp_path: Path) -> None:
    f = write(tmp_path, "e.pts", "")
    with raises_at(f, match="empty"):
        read_pts(f)


@pytest.mark.parametrize("text, where, match", [
    ("n_points: 5\n" + "1 2\n" * 5 + "}\n", "line 2", "expected a 'key: value'"),    # no opening brace
    ("version: 1\n{\n" + "1 2\n" * 5 + "}\n", "line 2", "n_points"),                     # header missing
    ("version: 1\nn_points: 5\n{\n" + "1 2\n" * 5, "line 8", "no closing"),            # truncated
    ("version: 1\nn_points: 5\n", "line 2", "no '{'"),                                  # truncated header
    ("version: 1\nn_points: 5\n{\n" + "1 2\n" * 4 + "}\n", "line 8", "n_points says 5, but 4"),
    ("version: 1\nn_points: 5\n{\n" + "1 2\n" * 6 + "}\n", "line 9", "more points than n_points"),
    ("version: 1\nn_points: 5\n{\n1 2\n1 x\n" + "1 2\n" * 3 + "}\n", "line 5, column 'y'", "'x' is not a number"),
    ("version: 1\nn_points: 5\n{\n1 2 3\n" + "1 2\n" * 4 + "}\n", "line 4", "expected 'x y'"),
    ("version: 1\nn_points: 5\n{\n" + "1 inf\n" * 5 + "}\n", "line 4, column 'y'", "finite"),
    ("version: 2\nn_points: 5\n{\n" + "1 2\n" * 5 + "}\n", "line 1", "unsupported version"),
    ("version: 1\nn_points: five\n{\n" + "1 2\n" * 5 + "}\n", "line 2", "not a count"),
    ("version: 1\nn_points: 5\n{\n" + "1 2\n" * 5 + "}\nextra\n", "line 10", "after '}'"),
])
def test_malformed_files_name_file_and_line(tmp_path: Path, text: str, where: str, match: str) -> None:
    f = write(tmp_path, "bad.pts", text)
    with raises_at(f, where, match=match):
        read_pts(f)


def test_unknown_point_count_is_a_scheme_error(tmp_path: Path) -> None:
    f = write(tmp_path, "seven.pts", pts_text(np.zeros((7, 2))))
    with raises_at(f, "line 2", error=SchemeError, match="no landmark scheme has 7 points"):
        read_pts(f)
    with raises_at(f, "line 2", error=AnnotationFormatError):  # the same error is both
        read_pts(f)


def test_count_must_match_an_explicit_scheme(tmp_path: Path) -> None:
    f = write(tmp_path, "five.pts", pts_text(np.zeros((5, 2))))
    with raises_at(f, "line 2", match="scheme 'ibug68' has 68"):
        read_pts(f, scheme="ibug68")


def test_wrong_encoding(tmp_path: Path) -> None:
    f = write(tmp_path, "enc.pts", pts_text(np.zeros((5, 2))).encode() + b"\xe9\n")
    with raises_at(f, "line 10", match="not UTF-8"):
        read_pts(f)


def test_missing_file() -> None:
    with raises_at("/nonexistent/x.pts", match="not found"):
        read_pts("/nonexistent/x.pts")


def test_folder_problems(tmp_path: Path) -> None:
    with raises_at(tmp_path, match="no .pts files"):
        read_pts_folder(tmp_path)
    f = write(tmp_path, "lonely.pts", pts_text(np.zeros((5, 2))))
    with raises_at(f, match="no image beside it"):
        read_pts_folder(tmp_path)
    # A folder mixing schemes is refused rather than giving ragged faces.
    write(tmp_path, "lonely.jpg", b"")
    g = write(tmp_path, "other.pts", pts_text(np.zeros((68, 2))))
    write(tmp_path, "other.jpg", b"")
    with raises_at(g, "line 2", match="68 points, but scheme 'celeba5'"):
        read_pts_folder(tmp_path)


def test_writers_refuse_what_pts_cannot_hold(tmp_path: Path) -> None:
    with raises_at(tmp_path / "nan.pts", match="NaN"):
        write_pts(tmp_path / "nan.pts", np.full((5, 2), np.nan))
    two = AnnotationSet([AnnotatedImage("a.jpg", [Face(np.zeros((5, 2))), Face(np.ones((5, 2)))])], scheme="celeba5")
    with raises_at(tmp_path / "out", match="one face per file"):
        write_pts_folder(two, tmp_path / "out")
    assert not (tmp_path / "out").exists()
