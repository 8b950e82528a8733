from __future__ import annotations

import random
from pathlib import Path

import datasets
import numpy as np
import pytest

from facelm.annotation import AnnotatedImage, AnnotationSet, Face
from facelm.data import identity_of, landmarks_array, load_dataset, push_dataset_to_hub, split_dataset, to_hf_dataset
from facelm.errors import AnnotationFormatError, SchemeError
from facelm.io import read_annotations


@pytest.mark.parametrize("path, identity", [
    ("Abdel_Aziz_Al-Hakim_00.jpg", "Abdel_Aziz_Al-Hakim"),
    ("images/Valerie_Harper_30.jpg", "Valerie_Harper"),
    ("afw/1051618982_1.jpg", "1051618982"),
    ("lfw_5590__Aaron_Eckhart_0001.jpg", "lfw_5590__Aaron_Eckhart"),
    ("2007_007763.jpg", "2007_007763"),
    ("row00012.png", "row00012"),
    ("C:\\data\\Bob_3.png", "Bob"),
    ("_12.jpg", "_12"),
])
def test_identity_of(path: str, identity: str) -> None:
    assert identity_of(path) == identity


def test_dlib_faces_one_row_per_face_with_exact_landmarks(shared_data: Path) -> None:
    aset = read_annotations(shared_data / "dlib_examples_faces" / "testing_with_face_landmarks.xml")
    ds = to_hf_dataset(aset, source="dlib")
    assert len(ds) == aset.num_faces() == 25
    faces = [(im, j, f) for im in aset.images for j, f in enumerate(im.faces)]
    assert np.array_equal(landmarks_array(ds), np.stack([f.landmarks for _, _, f in faces]))
    row = ds[1]
    im, j, face = faces[1]
    assert (row["image_path"], row["face_index"], row["source"], row["scheme"]) == (im.path, j, "dlib", "ibug68")
    assert np.array_equal(np.asarray(row["box"], np.float32), face.box)
    assert np.array_equal(np.asarray(row["landmarks"], np.float32), face.landmarks)
    assert row["image"].size == (im.width, im.height)  # decodes the shared image file
    assert ds[0]["image_path"] == ds[5]["image_path"]  # six faces of one image


def test_missing_points_embedded_pixels_and_detection_only(shared_data: Path) -> None:
    pts = np.arange(30, dtype=np.float32).reshape(15, 2) / 3
    pts[4:] = np.nan
    pixels = np.random.default_rng(0).integers(0, 256, (96, 96), dtype=np.uint8)
    aset = AnnotationSet([AnnotatedImage("row00001.png", [Face(pts)], 96, 96, pixels=pixels)], scheme="kaggle15")
    ds = to_hf_dataset(aset, source="kaggle")
    assert np.array_equal(landmarks_array(ds)[0], pts, equal_nan=True)
    assert ds[0]["box"] == pytest.approx([0, 1 / 3, 2, 7 / 3], abs=1e-6)  # tight box of the 4 points there
    assert np.array_equal(np.asarray(ds[0]["image"]), pixels)

    boxes = read_annotations(shared_data / "dlib_examples_faces" / "training.xml")
    det = to_hf_dataset(boxes, source="dlib")
    assert len(det) == 18 and np.isnan(landmarks_array(det)).all()
    assert det[0]["box"] == [194, 90, 231, 127]


def test_load_dataset_from_annotation_paths(shared_data: Path) -> None:
    afw = load_dataset(shared_data / "300w" / "afw")
    assert len(afw) == 337 and afw[0]["source"] == "afw" and afw[0]["box"] == pytest.approx(
        [131.372, 137.794, 348.914, 342.338], abs=1e-3)  # the landmarks' tight box
    both = load_dataset(str(shared_data / "300w"))
    assert len(both) == 337 + 870 and set(both.unique("source")) == {"afw", "helen_trainset"}
    ytf = load_dataset(shared_data / "ytf68")  # the folder's one annotation file
    assert len(ytf) == 3437 and ytf[0]["identity"] == "Valerie_Harper"
    aset = read_annotations(shared_data / "ytf68" / "keypoints.csv")
    assert np.array_equal(landmarks_array(ytf), np.stack([f.landmarks for im in aset.images for f in im.faces]))
    xml = load_dataset(shared_data / "dlib_examples_faces" / "training_with_face_landmarks.xml", scheme="ibug68")
    assert len(xml) == 18 and xml[0]["source"] == "dlib_examples_faces"
    with pytest.raises(AnnotationFormatError, match="pass one of its files"):
        load_dataset(shared_data / "dlib_examples_faces")  # four XML files: ambiguous
    with pytest.raises(SchemeError):
        load_dataset(shared_data / "300w" / "afw", scheme="celeba5")


def test_split_is_by_identity_and_independent_of_order(shared_data: Path) -> None:
    ds = load_dataset(shared_data / "ytf68")
    parts = split_dataset(ds, val_fraction=0.2, seed=3)
    train, val = set(parts["train"]["identity"]), set(parts["validation"]["identity"])
    assert not train & val and len(parts["train"]) + len(parts["validation"]) == len(ds)
    assert 0.1 < len(val) / len(train | val) < 0.3
    # Another order, another subset: every identity stays on its side.
    order = list(range(len(ds)))
    random.Random(0).shuffle(order)
    again = split_dataset(ds.select(order[:1000]), val_fraction=0.2, seed=3)
    assert set(again["validation"]["identity"]) <= val and set(again["train"]["identity"]) <= train
    # A different seed is a different split; the same seed the same one.
    assert set(split_dataset(ds, 0.2, seed=4)["validation"]["identity"]) != val
    assert load_dataset(shared_data / "ytf68", split="validation")["identity"] == \
        split_dataset(ds)["validation"]["identity"]


def test_split_by_face(shared_data: Path) -> None:
    ds = load_dataset(shared_data / "300w" / "afw")
    parts = split_dataset(ds, val_fraction=0.5, by="face")
    val = parts["validation"].select_columns(["image_path", "face_index"])
    keys = {(r["image_path"], r["face_index"]) for r in val}
    assert 100 < len(keys) < 240
    assert split_dataset(ds.shuffle(seed=1), val_fraction=0.5, by="face")["validation"]["image_path"] != []
    with pytest.raises(ValueError):
        split_dataset(ds, by="person")  # type: ignore[arg-type]


def test_push_to_local_dir_embeds_images_and_loads_back(shared_data: Path, tmp_path: Path) -> None:
    ds = load_dataset(shared_data / "300w" / "afw").select(range(6))
    parts = split_dataset(ds, val_fraction=0.5, by="face")
    target = push_dataset_to_hub(parts, tmp_path / "pushed")
    back = load_dataset(target)
    assert isinstance(back, datasets.DatasetDict) and sorted(back) == ["train", "validation"]
    raw = back["train"].cast_column("image", datasets.Image(decode=False))
    assert raw[0]["image"]["bytes"]  # self-contained: bytes, not a path into shared/
    assert np.array_equal(landmarks_array(back["train"]), landmarks_array(parts["train"]))
    assert back["train"][0]["image"].size == parts["train"][0]["image"].size
    single = load_dataset(target, split="validation")
    assert len(single) == len(parts["validation"])


def test_local_looking_specs_never_go_to_the_hub(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_dataset(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        load_dataset("./no/such/folder")
