"""The one prediction layout shared by the CLI and the app: every file written from a result reads
back the same points, and per-face .pts files are named by one rule."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from facelm.annotation import landmark_box
from facelm.photo_evaluation import iter_annotated
from facelm.io import read_annotations, read_pts
from facelm.io.pts import parse_pts, pts_file_name
from facelm.landmarker import Faces
from facelm.prediction_export import (prediction_document, prediction_files, write_json,
                                      write_pts_files)


@pytest.fixture(scope="module")
def group_faces(shared_data) -> tuple[str, Faces]:
    """The 7 annotated faces of a dlib example photo, as a Faces result (points in 1/1000 px)."""
    xml = shared_data / "dlib_examples_faces" / "testing_with_face_landmarks.xml"
    ph = next(p for p in iter_annotated([xml]) if len(p.landmarks) >= 3)
    rng = np.random.default_rng(0)
    pts = (ph.landmarks + rng.uniform(-0.5, 0.5, ph.landmarks.shape)).astype(np.float32)  # not on the grid
    from PIL import Image
    size = Image.open(ph.path).size
    return ph.path.name, Faces(pts, landmark_box(pts).astype(np.float32),
                               np.linspace(0.9, 0.6, len(pts)).astype(np.float32), "ibug68", size, detector="yunet")


def test_pts_naming_rule():
    assert pts_file_name("a", 1, 1) == "a.pts"
    assert [pts_file_name("sub/a", i, 3) for i in (1, 2, 3)] == ["sub/a_1.pts", "sub/a_2.pts", "sub/a_3.pts"]


def test_every_download_reads_back_the_same_points(group_faces, tmp_path):
    name, faces = group_faces
    meta = {"model": "m", "scheme": "ibug68", "detector": "yunet"}
    files = prediction_files(tmp_path, name, faces, meta)
    stem = name.rsplit(".", 1)[0]
    assert [f.name for f in files] == sorted([f"{stem}.xml", f"{stem}_coco.json", f"{stem}_landmarks.json",
                                              f"{stem}_pts.zip"])
    doc = json.loads((tmp_path / f"{stem}_landmarks.json").read_text())
    assert doc["detector"] == "yunet" and doc["images"][0]["image"] == name and doc["errors"] == []
    from_json = np.asarray([f["landmarks"] for f in doc["images"][0]["faces"]], np.float32)
    np.testing.assert_allclose(from_json, faces.landmarks, atol=0.006)  # 1/100 px
    assert [f["score"] for f in doc["images"][0]["faces"]] == [round(float(s), 4) for s in faces.scores]
    xml = read_annotations(tmp_path / f"{stem}.xml")
    coco = read_annotations(tmp_path / f"{stem}_coco.json")
    for aset in (xml, coco):
        np.testing.assert_array_equal(np.stack([f.landmarks for f in aset.images[0].faces]), from_json)
    with zipfile.ZipFile(tmp_path / f"{stem}_pts.zip") as z:
        assert sorted(z.namelist()) == [pts_file_name(stem, i, len(faces)) for i in range(1, len(faces) + 1)]
        np.testing.assert_allclose(parse_pts(z.read(f"{stem}_2.pts").decode()), from_json[1], atol=1e-4)


def test_one_face_and_no_face(group_faces, tmp_path):
    name, faces = group_faces
    one = faces.take([1])
    files = prediction_files(tmp_path / "one", name, one, {})
    pts = next(f for f in files if f.suffix == ".pts")
    doc = json.loads(next(f for f in files if f.name.endswith("_landmarks.json")).read_text())
    np.testing.assert_allclose(read_pts(pts), np.asarray(doc["images"][0]["faces"][0]["landmarks"]), atol=1e-4)
    assert prediction_files(tmp_path / "none", name, faces.take([]), {}) == []


def test_cli_layout_with_errors_and_subfolders(group_faces, tmp_path):
    name, faces = group_faces
    doc = prediction_document([(f"a/{name}", faces)], {"scheme": "ibug68"}, [("b.jpg", "not an image")])
    path = write_json(doc, tmp_path / "out.json")
    back = json.loads(path.read_text())
    assert back["errors"] == [{"image": "b.jpg", "error": "not an image"}]
    assert back["images"][0]["width"] == faces.image_size[0] and len(back["images"][0]["faces"]) == len(faces)
    written = write_pts_files(tmp_path / "pts", f"a/{name}", faces)
    assert [p.relative_to(tmp_path / "pts").as_posix() for p in written][:2] == [
        f"a/{name.rsplit('.', 1)[0]}_1.pts", f"a/{name.rsplit('.', 1)[0]}_2.pts"]
