from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from _io_helpers import raises_at, write
from facelm.annotation import AnnotatedImage, AnnotationSet, Face
from facelm.errors import SchemeError
from facelm.io import read_annotations, write_annotations
from facelm.io.coco import format_coco, parse_coco, read_coco, skeleton, write_coco
from facelm.io.csv_formats import read_keypoint_csv
from facelm.schemes import CELEBA5, IBUG68, KAGGLE15


def test_dlib_examples_through_coco(shared_data: Path, tmp_path: Path) -> None:
    aset = read_annotations(shared_data / "dlib_examples_faces" / "testing_with_face_landmarks.xml")
    write_annotations(aset, tmp_path / "faces.json")
    back = read_coco(tmp_path / "faces.json")
    assert back.images == aset.images and (back.name, back.comment, back.scheme) == (aset.name, aset.comment, "ibug68")
    doc = json.loads((tmp_path / "faces.json").read_text())
    first = doc["annotations"][0]
    assert first["bbox"] == [274, 181, 52, 53] and first["num_keypoints"] == 68 and first["iscrowd"] == 0
    assert doc["images"][0] == {"id": 1, "file_name": "2008_002470.jpg", "width": 500, "height": 332}
    assert doc["categories"][0]["keypoints"] == list(IBUG68.names)


def test_ytf68_subset_through_coco(shared_data: Path, tmp_path: Path) -> None:
    aset = read_keypoint_csv(shared_data / "ytf68" / "keypoints.csv")
    aset.images = aset.images[:200]
    write_coco(aset, tmp_path / "ytf.json")
    assert read_coco(tmp_path / "ytf.json").images == aset.images


def test_missing_points_boxes_and_ignore(tmp_path: Path) -> None:
    pts = np.array([[34.32, 34.8], [47.28, 36.24], [40.4, 46.0], [34.0, 50.8], [45.04, 52.08]], np.float32)
    hidden = pts.copy()
    hidden[1] = np.nan
    aset = AnnotationSet([
        AnnotatedImage("a.jpg", [Face(pts), Face(hidden, box=[1.5, 2.25, 60.125, 70], ignore=True)], width=80),
        AnnotatedImage("empty.jpg", []),  # images without faces survive too
    ], scheme="celeba5", name="five")
    text = format_coco(aset)
    assert "34.32" in text and "34.31999" not in text  # short decimals, still exact
    doc = json.loads(text)
    a, b = doc["annotations"]
    assert b["keypoints"][3:6] == [0, 0, 0] and b["num_keypoints"] == 4 and b["iscrowd"] == 1
    assert b["bbox"] == [1.5, 2.25, 58.625, 67.75] and "facelm_box_from_landmarks" not in b
    assert a["facelm_box_from_landmarks"] is True and a["bbox"] == [34, 34.8, 13.28, 17.28]
    assert parse_coco(doc).images == aset.images


def test_visibility_one_is_a_point_and_zero_is_missing() -> None:
    doc = {"images": [{"id": 7, "file_name": "x.png"}],
           "annotations": [{"image_id": 7, "keypoints": [1, 2, 1, 9, 9, 0, 3, 4, 2, 5, 6, 2, 7, 8, 2]}]}
    face = parse_coco(doc).images[0].faces[0]
    assert face.landmarks[0].tolist() == [1, 2] and np.isnan(face.landmarks[1]).all() and face.box is None
    assert face.occluded.tolist() == [True, False, False, False, False]  # v=1: labelled but hidden


def test_occluded_flags_and_status_round_trip(shared_data: Path, tmp_path: Path) -> None:
    """Real 300-W faces with every third point flagged occluded: written as v=1 (the rest v=2), read
    back as the same flags; the image's review status and hash ride along as facelm_* keys."""
    aset = read_annotations(shared_data / "300w/afw/1051618982_1.pts")
    face = aset.images[0].faces[0]
    face.occluded = np.arange(68) % 3 == 0
    aset.images[0].status, aset.images[0].sha256 = "done", "ab" * 32
    write_coco(aset, tmp_path / "a.json")
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["annotations"][0]["keypoints"][2::3] == [1 if i % 3 == 0 else 2 for i in range(68)]
    assert doc["images"][0]["facelm_status"] == "done"
    back = read_coco(tmp_path / "a.json")
    assert back.images[0].faces[0].occluded.tolist() == face.occluded.tolist()
    assert back.images[0].status == "done" and back.images[0].sha256 == "ab" * 32
    assert back.images == aset.images
    # A face without flags stays without them (no v=1 written, none read back).
    plain = read_annotations(shared_data / "300w/afw/111076519_1.pts")
    write_coco(plain, tmp_path / "b.json")
    assert read_coco(tmp_path / "b.json").images[0].faces[0].occluded is None


def test_skeleton_from_scheme_connections() -> None:
    sk = skeleton(IBUG68)
    assert [1, 2] in sk and [16, 17] in sk and [42, 37] in sk  # jaw, and the closed left eye
    assert all(1 <= i <= 68 for pair in sk for i in pair)
    assert skeleton(KAGGLE15).count([11, 11]) == 0  # single-point "nose" adds nothing
    assert skeleton(CELEBA5) == [[1, 2], [4, 5]]


# COCO stores x2 as x + w: a float32 x2 far below x's precision (2e-45 beside 1.0) cannot be
# spelled that way, so tiny non-zero values are left out; real pixel coordinates never are.
coords = st.floats(min_value=-2000, max_value=2000, width=32).filter(lambda v: v == 0 or abs(v) > 1e-3)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, (15, 2), elements=coords), arrays(np.float32, 4, elements=coords), st.booleans())
def test_any_float32_round_trips(points: np.ndarray, box: np.ndarray, ignore: bool) -> None:
    aset = AnnotationSet([AnnotatedImage("a.jpg", [Face(points, box=box, ignore=ignore)])], scheme="kaggle15")
    assert parse_coco(json.loads(format_coco(aset))).images == aset.images


# ------------------------------------------------------------------ bad input

def coco(**changes) -> dict:
    doc = {"images": [{"id": 1, "file_name": "a.jpg"}],
           "annotations": [{"id": 5, "image_id": 1, "keypoints": [1, 2, 2] * 5, "bbox": [0, 0, 1, 1]}]}
    doc.update(changes)
    return doc


@pytest.mark.parametrize("doc, where, match", [
    ([], None, "not a JSON object"),
    ({"annotations": []}, "top level", "'images' is missing"),
    (coco(images=[{"id": 1}]), "images[0]", "has no 'file_name'"),
    (coco(images=[{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}]), "images[1]",
     "duplicate image id"),
    (coco(images=[{"id": 1, "file_name": "a.jpg", "width": "wide"}]), "images[0]", "not an integer"),
    (coco(annotations=[{"image_id": 1, "keypoints": [1, 2, 2] * 5 + [1]}]), "annotations[0]", "not a multiple of 3"),
    (coco(annotations=[{"id": 9, "image_id": 2, "keypoints": [1, 2, 2] * 5}]), "annotations[0] (id 9)",
     "image_id 2 is not in images"),
    (coco(annotations=[{"image_id": 1, "keypoints": [1, "x", 2] * 5}]), "annotations[0]", "not a list of finite"),
    (coco(annotations=[{"image_id": 1, "keypoints": [1, 2, 2] * 5, "bbox": [1, 2]}]), "annotations[0]",
     "bbox has 2 values"),
    (coco(annotations=[{"image_id": 1}]), "annotations[0]", "has no 'keypoints'"),
    (coco(annotations=[{"image_id": 1, "keypoints": [1, 2, 2] * 5}, {"image_id": 1, "keypoints": [1, 2, 2] * 68}]),
     "annotations[1]", "68 keypoints, but the file's scheme 'celeba5' has 5"),
])
def test_malformed_documents_name_the_element(tmp_path: Path, doc, where: str | None, match: str) -> None:
    f = write(tmp_path, "bad.json", json.dumps(doc))
    with raises_at(f, where, match=match):
        read_coco(f)


def test_unknown_point_count_is_a_scheme_error(tmp_path: Path) -> None:
    f = write(tmp_path, "seven.json", json.dumps(coco(annotations=[{"id": 3, "image_id": 1,
                                                                    "keypoints": [1, 2, 2] * 7}])))
    with raises_at(f, "annotations[0] (id 3)", error=SchemeError, match="7 points"):
        read_annotations(f)


def test_truncated_empty_and_wrongly_encoded_json(tmp_path: Path) -> None:
    text = json.dumps(coco(), indent=1)
    truncated = write(tmp_path, "t.json", text[: len(text) // 2])
    with raises_at(truncated, "line ", match="not valid JSON"):
        read_coco(truncated)
    empty = write(tmp_path, "e.json", "")
    with raises_at(empty, match="empty file"):
        read_coco(empty)
    latin = write(tmp_path, "l.json", json.dumps(coco(), ensure_ascii=False).replace("a.jpg", "caf\xe9.jpg")
                  .encode("latin-1"))
    with raises_at(latin, "line 1", match="not UTF-8"):
        read_coco(latin)
