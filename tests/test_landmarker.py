"""FaceLandmarker on real photos: accuracy with ground-truth boxes, detection, batching, flip test,
refinement, scheme conversion, EXIF orientation and every kind of bad input."""
from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from facelm import FaceLandmarker, ImageError, SchemeError
from facelm.annotation import landmark_box
from facelm.photo_evaluation import iter_annotated
from facelm.image import to_rgb_array
from facelm.metrics import nme
from facelm.schemes import convert

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Faces the bundled model never trained on (train.train's validation split). The model scores
# about 4 % on the whole split (README); the bound leaves room for the 31-face sample and for torch
# versions, and fails a model or pipeline that went wrong (wrong crop rule, flipped axes, 1-based points).
NME_BOUND = 0.055


@pytest.fixture(scope="module")
def fl() -> FaceLandmarker:
    return FaceLandmarker.from_pretrained(detector=None)


@pytest.fixture(scope="module")
def faces_300w(shared_data):
    """31 annotated 300-W faces, every 5th of the validation split of AFW + HELEN-train."""
    return list(iter_annotated([shared_data / "300w"], every=5, split="validation"))


@pytest.fixture(scope="module")
def group_photo(shared_data):
    """dlib's example photo with 7 annotated faces (the dlib 68-point model's output as ground truth)."""
    xml = shared_data / "dlib_examples_faces" / "testing_with_face_landmarks.xml"
    return next(ph for ph in iter_annotated([xml]) if ph.path.name == "2008_007676.jpg")


def _nme(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean(nme(pred, gt, "ibug68")))


@pytest.mark.parametrize("name", ["ibug68", "ibug68_fast"])
def test_accuracy_with_ground_truth_boxes(name, faces_300w):
    fl = FaceLandmarker.from_pretrained(name, detector=None)
    assert len(faces_300w) >= 20
    errors = []
    for ph in faces_300w:
        faces = fl.predict(ph.path, boxes=ph.boxes)
        assert faces.landmarks.shape == (len(ph.boxes), 68, 2) and faces.landmarks.dtype == np.float32
        errors.append(_nme(faces.landmarks, ph.landmarks))
    assert np.mean(errors) < NME_BOUND, f"mean NME {np.mean(errors):.4f}"


def test_model_regridded_to_another_input_size_keeps_its_skill(fl, faces_300w):
    """``LandmarkModel.with_input_size``, where ``train.train --init-from M --input-size S`` starts: the
    same weights on 96 px crops still place the points before any fine-tuning (about 3.6 % here)."""
    small = FaceLandmarker(fl.model.with_input_size(96), detector=None)
    assert small.model.input_size == 96
    errors = [_nme(small.predict(ph.path, boxes=ph.boxes).landmarks, ph.landmarks) for ph in faces_300w]
    assert np.mean(errors) < NME_BOUND, f"mean NME {np.mean(errors):.4f}"


def test_model_reframed_to_a_tighter_crop_keeps_its_skill(fl, faces_300w):
    """``LandmarkModel.with_crop_scale``: the same weights at 112 px crops 1.1x the face box (about the
    pixels per face of 128 px at 1.3x) place the points as well; offsets follow the crop's pixels."""
    tight = fl.model.with_input_size(112).with_crop_scale(1.1)
    assert (tight.input_size, tight.crop_scale) == (112, 1.1)
    scale = 112 / fl.model.input_size * fl.model.crop_scale / 1.1
    torch.testing.assert_close(tight.point_offset, fl.model.point_offset * scale)
    torch.testing.assert_close(tight.mirror_offset, fl.model.mirror_offset * scale)
    reframed = FaceLandmarker(tight, detector=None)
    errors = [_nme(reframed.predict(ph.path, boxes=ph.boxes).landmarks, ph.landmarks) for ph in faces_300w]
    assert np.mean(errors) < NME_BOUND, f"mean NME {np.mean(errors):.4f}"
    with pytest.raises(ValueError, match="crop_scale"):
        fl.model.with_crop_scale(0)


def test_detector_path_finds_the_annotated_face(faces_300w):
    fl = FaceLandmarker.from_pretrained(detector="haar_frontal")
    ph = next(p for p in faces_300w if "helen" in str(p.path))
    faces = fl.predict(ph.path)
    assert len(faces) >= 1 and faces.scores.shape == (len(faces),)
    best = min(_nme(lm, ph.landmarks[0]) for lm in faces.landmarks)
    assert best < 2 * NME_BOUND


@pytest.mark.slow
def test_detector_faces_are_refined_by_default(faces_300w):
    """``refine="auto"``: the detector's faces get the second stage (its gain on the 153 validation
    faces, with Haar and YuNet boxes: docs/detection.md), boxes a caller gives do not."""
    fl = FaceLandmarker.from_pretrained(detector="haar_frontal")
    assert fl.refine == "auto"
    auto, plain = [], []
    for ph in faces_300w:
        a, p = fl.predict(ph.path), fl.predict(ph.path, refine=False)
        assert len(a) == len(p)
        if len(a):  # the face nearest the annotated one, the same detection in both
            i = int(np.argmin([_nme(lm, ph.landmarks[0]) for lm in p.landmarks]))
            auto.append(_nme(a.landmarks[i], ph.landmarks[0]))
            plain.append(_nme(p.landmarks[i], ph.landmarks[0]))
        np.testing.assert_array_equal(a.landmarks, fl.predict(ph.path, refine=True).landmarks)
    assert len(auto) >= 0.8 * len(faces_300w)
    # measured on these 29 faces (haar_frontal): 4.35 against 4.38 % (the model of commit 3fb2ad0:
    # 4.20 against 4.39); the gain over all 153: docs/detection.md
    assert np.mean(auto) < np.mean(plain), (np.mean(auto), np.mean(plain))
    ph = faces_300w[0]
    given = fl.predict(ph.path, boxes=ph.boxes)
    np.testing.assert_array_equal(given.landmarks, fl.predict(ph.path, boxes=ph.boxes, refine=False).landmarks)
    np.testing.assert_array_equal(given.boxes, ph.boxes.astype(np.float32))
    with pytest.raises(ValueError, match="refine"):
        FaceLandmarker(fl.model, detector=None, refine="yes")
    with pytest.raises(ValueError, match="refine"):
        fl.predict(ph.path, boxes=ph.boxes, refine="always")


def test_many_faces_in_one_forward(fl, group_photo, monkeypatch):
    calls = []
    real = fl._run  # the network call of either backend
    monkeypatch.setattr(fl, "_run", lambda x: calls.append(x.shape[0]) or real(x))
    faces = fl.predict(group_photo.path, boxes=group_photo.boxes)
    assert calls == [7], "all faces of a photo go through the model as one batch"
    assert faces.landmarks.shape == (7, 68, 2) and faces.boxes.shape == (7, 4)
    np.testing.assert_allclose(faces.scores, 1.0)
    # Faces of ~35 px against another model's points: a loose check that each face lands on its own.
    per_face = nme(faces.landmarks, group_photo.landmarks, "ibug68")
    assert np.median(per_face) < 0.15


def test_flip_test_and_refine(fl, faces_300w):
    ph = faces_300w[3]
    plain = fl.predict(ph.path, boxes=ph.boxes).landmarks
    flipped = FaceLandmarker.from_pretrained(detector=None, flip_test=True).predict(ph.path, boxes=ph.boxes).landmarks
    assert not np.allclose(plain, flipped)
    assert _nme(flipped, ph.landmarks) < _nme(plain, ph.landmarks) + 0.01
    # A box shifted by a quarter of its size: refinement re-crops around the first answer.
    box = ph.boxes[0].copy()
    box[[0, 2]] += 0.25 * (box[2] - box[0])
    shifted = fl.predict(ph.path, boxes=box)
    refined = fl.predict(ph.path, boxes=box, refine=True)
    assert _nme(refined.landmarks, ph.landmarks) <= _nme(shifted.landmarks, ph.landmarks) + 0.005
    np.testing.assert_allclose(refined.boxes[0], landmark_box(shifted.landmarks[0]), atol=1e-3)


def test_refine_turns_rolled_faces_upright(fl, faces_300w):
    """Faces turned 40 degrees in the photo: refinement's second crop is cut upright (eyes level), and
    on these 31 faces it cut the error from 4.3 % to 3.5 % (measured)."""
    plain, refined = [], []
    for ph in faces_300w:
        img = to_rgb_array(ph.path)
        centre = ph.landmarks[0].mean(0)
        m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), 40.0, 1.0)
        turned = cv2.warpAffine(img, m, img.shape[1::-1])
        gt = (ph.landmarks[0] @ m[:, :2].T + m[:, 2])[None]
        box = landmark_box(gt)
        plain.append(_nme(fl.predict(turned, boxes=box).landmarks, gt))
        refined.append(_nme(fl.predict(turned, boxes=box, refine=True).landmarks, gt))
    assert np.mean(refined) < 0.85 * np.mean(plain)
    assert np.mean(refined) < NME_BOUND
    assert np.mean(np.less(refined, plain)) > 0.8


def test_pipeline_is_exactly_mirror_symmetric(fl, faces_300w):
    """With the flip test, predicting on a mirrored photo must give the mirrored landmarks whatever
    the model's accuracy: a half-pixel slip anywhere in crop, warp or point mapping breaks this. (The
    model's offsets keep the labels' mirror asymmetry on purpose, so they are zeroed here.)"""
    flip_fl = FaceLandmarker(fl.model.with_offsets(None, None), detector=None, flip_test=True)
    ph = faces_300w[5]
    img = to_rgb_array(ph.path)
    w = img.shape[1]
    box = ph.boxes[0]
    a = flip_fl.predict(img, boxes=box).landmarks[0]
    b = flip_fl.predict(np.ascontiguousarray(img[:, ::-1]), boxes=[w - 1 - box[2], box[1], w - 1 - box[0], box[3]])
    b = b.landmarks[0][list(fl.scheme.flip)]
    b[:, 0] = w - 1 - b[:, 0]
    # Crops of the photo and of its mirror differ by resampling noise (the area pre-shrink takes pixel
    # blocks from the left), which can move a point whose score is split between two cells by a
    # fifth of a pixel; a slip moves all of them by half a pixel.
    assert np.abs(a - b).mean() < 0.03 and np.abs(a - b).max() < 0.3


def test_bundled_five_point_model(shared_data):
    """The bundled 5-point model, loaded by name, on five_point faces it never trained on (the
    validation identities): about 4.7 % median NME on the whole split, whose mean a quarter of
    labels that miss the face inflate to 8 % (README); the median is the sharper check."""
    from facelm.hub import bundled_models
    assert {"ibug68", "ibug68_fast", "celeba5"} <= set(bundled_models())
    fl5 = FaceLandmarker.from_pretrained("celeba5", detector=None)
    assert fl5.scheme.name == "celeba5"
    photos = list(iter_annotated([shared_data / "five_point" / "list_landmarks.csv"], every=10, split="validation"))
    assert len(photos) >= 100
    errors = [float(nme(fl5.predict(ph.path, boxes=ph.boxes).landmarks, ph.landmarks, "celeba5").mean())
              for ph in photos]
    assert np.mean(errors) < 0.09, f"mean NME {np.mean(errors):.4f}"
    assert np.median(errors) < 0.06, f"median NME {np.median(errors):.4f}"


@pytest.mark.parametrize("scheme, k", [("68", 68), ("15", 15), ("5", 5), ("celeba5", 5)])
def test_scheme_conversion(fl, group_photo, scheme, k):
    faces = fl.predict(group_photo.path, boxes=group_photo.boxes[:2], scheme=scheme)
    assert faces.landmarks.shape == (2, k, 2)
    full = fl.predict(group_photo.path, boxes=group_photo.boxes[:2]).landmarks
    np.testing.assert_allclose(faces.landmarks, convert(full, "ibug68", scheme), atol=1e-4)


def test_unknown_scheme(fl, group_photo):
    with pytest.raises(SchemeError):
        fl.predict(group_photo.path, boxes=group_photo.boxes[:1], scheme="98")


def test_exif_orientation_is_applied(fl, faces_300w, tmp_path):
    ph = faces_300w[1]
    upright = to_rgb_array(ph.path)
    # Stored turned 90 degrees counter-clockwise with EXIF orientation 6 ("rotate 90 clockwise to
    # view"), as phones save portrait photos: a reader must rotate it back before finding landmarks.
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(np.ascontiguousarray(np.rot90(upright))).save(path, quality=95, exif=exif)
    faces = fl.predict(path, boxes=ph.boxes)
    assert faces.image_size == (upright.shape[1], upright.shape[0])
    reference = fl.predict(upright, boxes=ph.boxes).landmarks
    assert _nme(faces.landmarks, ph.landmarks) < _nme(reference, ph.landmarks) + 0.01
    with Image.open(path) as opened:  # a PIL image fresh from Image.open is turned the same way
        np.testing.assert_allclose(fl.predict(opened, boxes=ph.boxes).landmarks, faces.landmarks, atol=1e-4)


def test_no_face_gives_empty_results():
    fl = FaceLandmarker.from_pretrained(detector="haar_frontal")
    blank = np.full((200, 260, 3), 90, np.uint8)
    for scheme, k in ((None, 68), ("5", 5)):
        faces = fl.predict(blank, scheme=scheme)
        assert len(faces) == 0
        assert faces.landmarks.shape == (0, k, 2) and faces.boxes.shape == (0, 4) and faces.scores.shape == (0,)
    assert fl.predict(blank, boxes=[]).landmarks.shape == (0, 68, 2)


def test_no_detector_needs_boxes(fl):
    with pytest.raises(ValueError, match="no face detector"):
        fl.predict(np.zeros((50, 50, 3), np.uint8))


@pytest.mark.parametrize("boxes, message", [
    ([[500, 500, 600, 600]], "outside"),
    ([[-300, 10, -200, 60]], "outside"),
    ([[50, 50, 40, 60]], "x2 > x1"),
    ([[10, 10, np.nan, 60]], "NaN"),
    ([[1, 2, 3]], "shape"),
    ("face", "numbers"),
])
def test_bad_boxes(fl, boxes, message):
    with pytest.raises(ValueError, match=message):
        fl.predict(np.zeros((100, 120, 3), np.uint8), boxes=boxes)


def test_box_partly_outside_is_fine(fl):
    faces = fl.predict(np.zeros((100, 120, 3), np.uint8), boxes=[[-20, -20, 60, 60]])
    assert np.isfinite(faces.landmarks).all()


def _png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size: how a decompression bomb looks before decoding."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    return bytes(data)


def test_bad_image_inputs(fl, faces_300w, tmp_path):
    box = [[10, 10, 50, 50]]
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg" * 10)
    with pytest.raises(ImageError, match="corrupt.jpg: not a readable image"):
        fl.predict(corrupt, boxes=box)
    truncated = tmp_path / "truncated.jpg"
    data = faces_300w[0].path.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated.jpg"):
        fl.predict(truncated, boxes=box)
    with pytest.raises(ImageError, match="no such image file"):
        fl.predict(tmp_path / "missing.jpg", boxes=box)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_claiming(9000, 9000))  # 81 Mpx: ours refuses it before decoding
    with pytest.raises(ImageError, match="bomb.png: image is 9000x9000 = 81,000,000 pixels, above the limit"):
        fl.predict(bomb, boxes=box)
    with pytest.raises(ImageError, match="decompression bomb"):  # so far above that Pillow refuses it first
        fl.predict(_png_header_claiming(30000, 30000), boxes=box)
    with pytest.raises(ImageError, match="zero size"):
        fl.predict(np.zeros((0, 40, 3), np.uint8), boxes=box)


@pytest.mark.parametrize("image, message", [
    (np.zeros((60, 60, 3), bool), "dtype bool"),
    (np.zeros((60, 60, 3), object), "dtype object"),
    (np.zeros((60, 60, 5), np.uint8), "shape"),
    (np.zeros((2, 60, 60, 3), np.uint8), "shape"),
    (np.full((60, 60, 3), np.nan, np.float32), "NaN"),
    ([[1, 2], [3, 4]], "unsupported image type list"),
])
def test_wrong_image_types(fl, image, message):
    with pytest.raises(ImageError, match=message):
        fl.predict(image, boxes=[[10, 10, 50, 50]])


@pytest.mark.parametrize("dtype, scale", [(np.float32, 1 / 255), (np.float64, 1.0), (np.int64, 1), (np.uint16, 1)])
def test_other_numeric_dtypes_are_converted(fl, faces_300w, dtype, scale):
    ph = faces_300w[2]
    img = to_rgb_array(ph.path)
    ref = fl.predict(img, boxes=ph.boxes).landmarks
    got = fl.predict((img * scale).astype(dtype), boxes=ph.boxes).landmarks
    np.testing.assert_allclose(got, ref, atol=0.5)
