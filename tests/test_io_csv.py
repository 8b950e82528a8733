from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _io_helpers import raises_at, write
from facelm.annotation import AnnotatedImage, AnnotationSet, Face
from facelm.errors import AnnotationFormatError, SchemeError
from facelm.io import detect_format, read_annotations, save_embedded_images, write_annotations
from facelm.io.csv_formats import (CELEBA_COLUMNS, KAGGLE_COLUMNS, read_celeba, read_kaggle_csv, read_keypoint_csv,
                                   write_celeba_csv, write_celeba_txt, write_kaggle_csv, write_keypoint_csv)
from facelm.schemes import convert

KP_HEADER = "image," + ",".join(f"x{i},y{i}" for i in range(68)) + "\n"
CELEBA_HEADER = "image_id," + ",".join(CELEBA_COLUMNS) + "\n"


def numeric_rows(path: Path) -> list[tuple[str, list[float]]]:
    """A table's rows with numbers parsed, so "56.0" and "56" compare equal."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    return [(r[0], [float(v) for v in r[1:]]) for r in rows]


# ------------------------------------------------------------------ ytf68 keypoint CSV

@pytest.fixture(scope="module")
def ytf(shared_data: Path) -> AnnotationSet:
    return read_keypoint_csv(shared_data / "ytf68" / "keypoints.csv")


def test_ytf68_reads_with_several_faces_per_image(ytf: AnnotationSet) -> None:
    assert ytf.scheme == "ibug68" and ytf.num_faces() == 3437 and len(ytf.images) == 2812
    first = ytf.images[0]
    assert first.path == "Valerie_Harper_30.jpg" and len(first.faces) == 2
    assert first.faces[0].landmarks[0].tolist() == [56.0, 69.0] and first.faces[0].box is None
    assert Path(ytf.root).name == "images"  # images are in ytf68/images/, found automatically
    assert all((Path(ytf.root) / im.path).is_file() for im in ytf.images[:50])


def test_ytf68_round_trip(ytf: AnnotationSet, shared_data: Path, tmp_path: Path) -> None:
    write_annotations(ytf, tmp_path / "kp.csv")
    assert detect_format(tmp_path / "kp.csv") == "keypoint_csv"
    back = read_annotations(tmp_path / "kp.csv")
    assert back.images == ytf.images and back.scheme == "ibug68"
    # Rows are grouped by image, so compare as multisets of rows.
    assert sorted(numeric_rows(tmp_path / "kp.csv")) == sorted(numeric_rows(shared_data / "ytf68" / "keypoints.csv"))


# ------------------------------------------------------------------ CelebA layouts

def test_five_point_reads_and_writes_back(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "five_point" / "list_landmarks.csv"
    aset = read_annotations(src)
    assert aset.scheme == "celeba5" and len(aset.images) == 10000 and Path(aset.root).name == "images"
    first = aset.images[0]
    assert first.path == "lfw_5590__Aaron_Eckhart_0001.jpg"
    np.testing.assert_array_equal(first.faces[0].landmarks, np.array(
        [[34.32, 34.80], [47.28, 36.24], [40.40, 46.00], [34.00, 50.80], [45.04, 52.08]], dtype=np.float32))
    write_celeba_csv(aset, tmp_path / "out.csv")
    assert numeric_rows(tmp_path / "out.csv") == numeric_rows(src)  # same order, same values
    assert read_celeba(tmp_path / "out.csv").images == aset.images
    write_annotations(aset, tmp_path / "list_landmarks.txt")
    assert read_annotations(tmp_path / "list_landmarks.txt").images == aset.images


def test_celeba_original_txt_layout(tmp_path: Path) -> None:
    text = ("2\n" + " ".join(CELEBA_COLUMNS) + "\n"
            "000001.jpg 69  109  106  113   77  142   73  152  108  154\n"
            "000002.jpg 69  110  107  112   81  135   70  151  108  153\n")
    aset = read_annotations(write(tmp_path, "list_landmarks_align_celeba.txt", text))
    assert [im.path for im in aset.images] == ["000001.jpg", "000002.jpg"]
    assert aset.images[1].faces[0].landmarks[2].tolist() == [81, 135]
    truncated = write(tmp_path, "short.txt", text.replace("2\n", "3\n", 1))
    with raises_at(truncated, "line 4", match="says 3 rows, found 2"):
        read_annotations(truncated)
    renamed = write(tmp_path, "renamed.txt", text.replace("nose_x", "nose_z"))
    with raises_at(renamed, "line 2", match="missing columns: nose_x"):
        read_annotations(renamed)


# ------------------------------------------------------------------ Kaggle training.csv

def kaggle_faces(shared_data: Path, n: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """Realistic Kaggle rows from ytf68: 96x96 grayscale crops and the 15 points, moved along."""
    ytf = read_keypoint_csv(shared_data / "ytf68" / "keypoints.csv")
    out = []
    for im in ytf.images[:n]:
        pts68 = im.faces[0].landmarks
        x1, y1, x2, y2 = im.faces[0].landmark_box()
        side = 1.3 * max(x2 - x1, y2 - y1)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        left, top = cx - side / 2, cy - side / 2
        with Image.open(Path(ytf.root) / im.path) as img:
            crop = img.convert("L").resize((96, 96), box=(left, top, left + side, top + side))
        pts15 = convert((pts68 - [left, top]) * (96 / side), "ibug68", "kaggle15")
        out.append((np.asarray(crop), pts15))
    return out


def kaggle_csv_text(rows: list[tuple[np.ndarray, np.ndarray]], missing: dict[int, list[int]]) -> str:
    lines = [",".join(KAGGLE_COLUMNS) + ",Image"]
    for r, (pixels, pts) in enumerate(rows):
        values = [f"{v:.10f}" for v in pts.reshape(-1)]  # Kaggle's own spelling: 66.0335639098
        for col in missing.get(r, []):
            values[col] = ""
        lines.append(",".join(values) + "," + " ".join(map(str, pixels.reshape(-1))))
    return "\n".join(lines) + "\n"


def test_kaggle_training_csv(shared_data: Path, tmp_path: Path) -> None:
    rows = kaggle_faces(shared_data)
    missing = {1: list(range(4, 30)), 3: [0, 1]}  # like Kaggle: most rows lack all but 4 points
    f = write(tmp_path, "training.csv", kaggle_csv_text(rows, missing))
    assert detect_format(f) == "kaggle_csv"
    aset = read_annotations(f)
    assert aset.scheme == "kaggle15" and len(aset.images) == 4
    for r, (im, (pixels, pts)) in enumerate(zip(aset.images, rows)):
        assert im.pixels.dtype == np.uint8 and np.array_equal(im.pixels, pixels)
        assert (im.width, im.height, im.path) == (96, 96, f"row{r + 1:05d}.png")
        expected = np.array([float(f"{v:.10f}") for v in pts.reshape(-1)], dtype=np.float32).reshape(15, 2)
        for col in missing.get(r, []):
            expected.reshape(-1)[col] = np.nan
        assert np.array_equal(im.faces[0].landmarks, expected, equal_nan=True)
    assert np.isnan(aset.images[1].faces[0].landmarks[2:]).all()
    write_kaggle_csv(aset, tmp_path / "again.csv")
    assert read_kaggle_csv(tmp_path / "again.csv").images == aset.images

    # Embedded images can be written out as files and used by other formats.
    files = save_embedded_images(aset, tmp_path / "png")
    assert files.images[0].pixels is None
    with Image.open(tmp_path / "png" / "row00001.png") as img:
        assert np.array_equal(np.asarray(img), rows[0][0])
    write_annotations(files, tmp_path / "k.json")
    assert read_annotations(tmp_path / "k.json").images == files.images
    # ... and written back into Kaggle's table from those files.
    write_kaggle_csv(files, tmp_path / "from_files.csv")
    assert read_kaggle_csv(tmp_path / "from_files.csv").images == aset.images


def test_kaggle_test_csv_has_images_only(tmp_path: Path) -> None:
    pixels = " ".join(["7"] * 96 * 96)
    aset = read_annotations(write(tmp_path, "test.csv", f"ImageId,Image\n1,{pixels}\n2,{pixels}\n"))
    assert len(aset.images) == 2 and aset.num_faces() == 0 and aset.images[1].pixels[0, 0] == 7


@pytest.mark.parametrize("pixels, match", [
    (" ".join(["1"] * 100), "found 100 values"),
    (" ".join(["1"] * 9215 + ["256"]), "integers 0..255"),
    (" ".join(["1"] * 9215 + ["x"]), "integers 0..255"),
])
def test_kaggle_bad_pixels(tmp_path: Path, pixels: str, match: str) -> None:
    f = write(tmp_path, "training.csv", ",".join(KAGGLE_COLUMNS) + ",Image\n" + "1," * 30 + pixels + "\n")
    with raises_at(f, "line 2", match=match):
        read_kaggle_csv(f)


# ------------------------------------------------------------------ writing rules

def test_nan_is_an_empty_field_and_back(tmp_path: Path) -> None:
    pts = np.arange(10, dtype=np.float32).reshape(5, 2) + 0.25
    pts[2] = np.nan
    aset = AnnotationSet([AnnotatedImage("a b,c.jpg", [Face(pts), Face(pts + 1)])], scheme="celeba5")
    write_keypoint_csv(aset, tmp_path / "k.csv")
    assert '"a b,c.jpg",0.25,1.25,2.25,3.25,,,' in (tmp_path / "k.csv").read_text()
    assert read_keypoint_csv(tmp_path / "k.csv").images == aset.images


@pytest.mark.parametrize("sep", ["\x1c", "\x1d", "\x1e", "\x1f", "\u2003"])
def test_numbers_padded_with_unicode_spaces_read_like_plain_ones(tmp_path: Path, sep: str) -> None:
    """Found by the long fuzz run: str.strip() and the number regex take these separators as space,
    float() does not; a reader must agree with itself (read the number, or refuse with a clear error)."""
    values = [f"{v}.5" for v in range(10)]
    padded = values[:3] + [values[3] + sep, sep + values[4]] + values[5:]
    padded_csv = write(tmp_path, "c.csv", CELEBA_HEADER + "a.jpg," + ",".join(padded) + "\n")
    plain_csv = write(tmp_path, "p.csv", CELEBA_HEADER + "a.jpg," + ",".join(values) + "\n")
    assert read_celeba(padded_csv).images == read_celeba(plain_csv).images


def test_writers_refuse_other_schemes_and_shapes(tmp_path: Path) -> None:
    ibug = AnnotationSet([AnnotatedImage("a.jpg", [Face(np.zeros((68, 2)))])])
    with raises_at(tmp_path / "c.csv", match="CelebA table holds celeba5"):
        write_celeba_csv(ibug, tmp_path / "c.csv")
    two = AnnotationSet([AnnotatedImage("a.jpg", [Face(np.zeros((15, 2)))] * 2, pixels=np.zeros((96, 96), np.uint8))],
                        scheme="kaggle15")
    with raises_at(tmp_path / "k.csv", match="exactly one per image"):
        write_kaggle_csv(two, tmp_path / "k.csv")
    spaced = AnnotationSet([AnnotatedImage("a b.jpg", [Face(np.zeros((5, 2)))])], scheme="celeba5")
    with raises_at(tmp_path / "c.txt", match="names with spaces"):
        write_celeba_txt(spaced, tmp_path / "c.txt")
    ragged = AnnotationSet([AnnotatedImage("a.jpg", [Face(np.zeros((68, 2))), Face(np.zeros((5, 2)))])])
    with raises_at(tmp_path / "r.csv", match="face 2 has 5 points, expected 68"):
        write_keypoint_csv(ragged, tmp_path / "r.csv")
    assert not any(tmp_path.iterdir())  # nothing half-written


# ------------------------------------------------------------------ bad input

def kp_row(name: str = "a.jpg", value: str = "1.0") -> str:
    return name + "," + ",".join([value] * 136) + "\n"


@pytest.mark.parametrize("name, content, where, match", [
    ("kp.csv", KP_HEADER + kp_row() + kp_row(value="abc"), "line 3, column 'x0'", "'abc' is not a number"),
    ("kp.csv", KP_HEADER + kp_row() + kp_row()[:100] + "\n", "line 3", "expected 137 (truncated row?)"),
    ("kp.csv", KP_HEADER + kp_row() + kp_row(value="inf"), "line 3, column 'x0'", "finite"),
    ("kp.csv", KP_HEADER + kp_row(name=""), "line 2", "empty image name"),
    ("kp.csv", KP_HEADER.replace("x5,", "z5,") + kp_row(), "line 1", "missing columns: x5; unknown columns: z5"),
    ("kp.csv", KP_HEADER + 'a.jpg,"1.0,' + ",".join(["1"] * 135) + "\n", "line 2", "malformed CSV"),
    ("c.csv", CELEBA_HEADER + "a.jpg,1,2,3,4,5,6,7,8,9\n", "line 2", "10 fields, expected 11"),
    ("c.csv", CELEBA_HEADER.replace("nose_x", "nose_z") + "a.jpg,1,2,3,4,5,6,7,8,9,10\n", "line 1", "nose_x"),
    ("c.csv", CELEBA_HEADER + "a.jpg,1,2,3,4,5,6,7,8,9,1O\n", "line 2, column 'rightmouth_y'", "'1O'"),
    ("x.csv", "file,a,b\n1,2,3\n", "line 1", "none of the known tables"),
])
def test_malformed_tables_name_file_and_line(tmp_path: Path, name: str, content: str, where: str,
                                             match: str) -> None:
    f = write(tmp_path, name, content)
    with raises_at(f, where, match=match):
        read_annotations(f)


def test_unknown_point_count_in_header(tmp_path: Path) -> None:
    f = write(tmp_path, "ten.csv", "image," + ",".join(f"x{i},y{i}" for i in range(10)) + "\na.jpg" + ",1" * 20 + "\n")
    with raises_at(f, "line 1", error=SchemeError, match="10 points"):
        read_annotations(f)


def test_empty_header_only_and_wrong_encoding(tmp_path: Path) -> None:
    empty = write(tmp_path, "empty.csv", "\n\n")
    with raises_at(empty, match="empty file"):
        read_keypoint_csv(empty)
    assert read_keypoint_csv(write(tmp_path, "header.csv", KP_HEADER)).images == []
    latin = write(tmp_path, "latin.csv", (KP_HEADER + kp_row() + kp_row(name="caf\xe9.jpg")).encode("latin-1"))
    with raises_at(latin, "line 3", match="not UTF-8"):
        read_annotations(latin)
    bom = write(tmp_path, "bom.csv", b"\xef\xbb\xbf" + (KP_HEADER + kp_row()).encode())
    assert len(read_annotations(bom).images) == 1


def test_unknown_formats(tmp_path: Path) -> None:
    f = write(tmp_path, "a.yaml", "x: 1\n")
    with raises_at(f, match="unknown annotation format '.yaml'"):
        read_annotations(f)
    with raises_at(tmp_path / "nope.csv", match="not found"):
        read_annotations(tmp_path / "nope.csv")
    aset = AnnotationSet([AnnotatedImage("a.jpg", [Face(np.zeros((68, 2)))])])
    with pytest.raises(AnnotationFormatError, match="unknown format 'yaml'"):
        write_annotations(aset, tmp_path / "a.out", format="yaml")
    with pytest.raises(AnnotationFormatError, match="cannot tell the format"):
        write_annotations(aset, tmp_path / "a.yaml")
