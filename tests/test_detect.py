"""Face detectors: box conventions, merging, calibration, and detection on real photos."""
from __future__ import annotations

import builtins

import numpy as np
import pytest

from facelm.detect import (BoxCalibration, CombinedDetector, HaarDetector, box_iou, get_detector, greedy_matches,
                           group_windows, suppress)
from facelm.detect.calibrate import main as calibrate_main
from facelm.detect.dlib_hog import dlib_available
from facelm.errors import FacelmError, ImageError
from facelm.photo_evaluation import iter_annotated
from facelm.image import to_rgb_array

# Near-frontal and turned 300-W faces of both subsets, fixed so the test does not drift.
PHOTOS_300W = ["afw/1051618982_1.jpg", "afw/111076519_1.jpg", "afw/1130084326_1.jpg", "afw/1130084326_2.jpg",
               "helen_trainset/100032540_1.jpg", "helen_trainset/100040721_1.jpg", "helen_trainset/100040721_2.jpg",
               "helen_trainset/1002681492_1.jpg"]


@pytest.fixture(scope="module")
def dlib_photos(shared_data):
    """dlib's example photos of several faces each, with their 68-point annotations."""
    xml = [shared_data / "dlib_examples_faces" / f"{s}_with_face_landmarks.xml" for s in ("testing", "training")]
    return {ph.path.name: ph for ph in iter_annotated(xml)}


# --------------------------------------------------------------------------- pure logic

def test_calibration_fit_recovers_known_mapping():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 500, (200, 2))
    wh = rng.uniform(30, 200, (200, 1)) * [1.0, 1.1]
    raw = np.hstack([xy, xy + wh])
    truth = BoxCalibration(dx=0.05, dy=0.15, sx=0.85, sy=0.8)
    target = truth.apply(raw)
    target[:5] += 300  # a few wrong matches must not pull the fit
    fit = BoxCalibration.fit(raw, target)
    assert fit.dx == pytest.approx(0.05, abs=1e-3) and fit.dy == pytest.approx(0.15, abs=1e-3)
    assert fit.sx == pytest.approx(0.85, abs=1e-3) and fit.sy == pytest.approx(0.8, abs=1e-3)


def test_calibration_mirrors_dx_for_mirrored_boxes():
    cal = BoxCalibration(dx=0.1, dy=0.0, sx=1.0, sy=1.0)
    box = np.array([[0, 0, 100, 100]], np.float32)
    assert cal.apply(box, np.array([False]))[0, 0] == pytest.approx(10)
    assert cal.apply(box, np.array([True]))[0, 0] == pytest.approx(-10)
    with pytest.raises(ValueError):
        BoxCalibration.fit(np.zeros((0, 4)), np.zeros((0, 4)))


def test_group_windows_merges_neighbours_and_drops_lonely_hits():
    face = np.array([[100, 100, 150, 150]], float)
    hits = np.vstack([face + d for d in (0, 2, -2, 3)] + [[[400, 400, 420, 420]]])  # 4 on a face, 1 stray
    boxes, scores = group_windows(hits, min_neighbors=2)
    assert boxes.shape == (1, 4) and boxes.dtype == np.float32
    assert scores.tolist() == [4.0]
    assert box_iou(boxes, face)[0, 0] > 0.9
    empty_boxes, empty_scores = group_windows(np.zeros((0, 4)), min_neighbors=2)
    assert empty_boxes.shape == (0, 4) and empty_scores.shape == (0,)


def test_suppress_drops_overlapping_and_nested_boxes():
    boxes = np.array([[0, 0, 100, 100], [5, 5, 105, 105], [20, 20, 60, 60], [300, 300, 350, 350]], np.float32)
    keep = suppress(boxes, np.array([3.0, 2.0, 5.0, 1.0]))
    assert keep.tolist() == [2, 3]  # the best box wins, nested and overlapping ones go


def test_greedy_matches_one_to_one():
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    det = np.array([[0, 0, 10, 11], [1, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    pairs = greedy_matches(det, gt)
    assert len(pairs) == 1 and pairs[0][1] == 0


def test_get_detector_names():
    assert get_detector(None) is None
    assert isinstance(get_detector("haar"), CombinedDetector)  # "default" is tested in test_yunet.py
    frontal = get_detector("haar_frontal")
    assert isinstance(frontal, HaarDetector) and get_detector(frontal) is frontal
    with pytest.raises(FacelmError, match="unknown face detector"):
        get_detector("yolo")
    with pytest.raises(FacelmError, match="no Haar cascade"):
        HaarDetector("no_such_cascade")


def test_dlib_missing_is_a_clear_error(monkeypatch):
    real_import = builtins.__import__

    def no_dlib(name, *args, **kwargs):
        if name == "dlib":
            raise ImportError("No module named 'dlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dlib)
    with pytest.raises(FacelmError, match="pip install dlib-bin"):
        get_detector("dlib")


def test_no_face_and_tiny_images_give_empty_arrays():
    det = get_detector("haar_frontal")
    for img in (np.full((240, 320, 3), 128, np.uint8), np.zeros((8, 8, 3), np.uint8)):
        boxes, scores = det.detect(img)
        assert boxes.shape == (0, 4) and boxes.dtype == np.float32
        assert scores.shape == (0,) and scores.dtype == np.float32
    with pytest.raises(ImageError):
        det.detect(np.zeros((0, 10, 3), np.uint8))


# --------------------------------------------------------------------------- real photos

def _hits(boxes: np.ndarray, gt: np.ndarray) -> int:
    return len(greedy_matches(boxes, gt))


def test_finds_300w_faces_in_landmark_box_convention(shared_data):
    det = get_detector("haar_frontal")
    photos = list(iter_annotated([shared_data / "300w" / p.replace(".jpg", ".pts") for p in PHOTOS_300W]))
    found = sum(_hits(det.detect(ph.path)[0], ph.boxes) for ph in photos)
    # IoU > 0.5 with the tight landmark box holds only with the calibration applied.
    assert found >= len(photos) - 2


def test_finds_most_faces_of_a_group_photo(dlib_photos):
    ph = dlib_photos["2008_007676.jpg"]  # 7 small faces
    boxes, scores = get_detector("default").detect(ph.path)
    assert np.all(np.diff(scores) <= 0), "best first"
    assert _hits(boxes, ph.boxes) >= 5
    assert len(boxes) <= len(ph.boxes) + 2


def test_big_photo_is_shrunk_and_boxes_map_back(dlib_photos):
    ph = dlib_photos["2008_002506.jpg"]  # 3 faces, 500 x 375
    img = to_rgb_array(ph.path)
    big = np.repeat(np.repeat(img, 3, axis=0), 3, axis=1)  # 1500 px: shrunk to max_side for detection
    det = get_detector("haar_frontal")
    boxes, _ = det.detect(big)
    assert _hits(boxes, ph.boxes * 3 + 1) >= 2  # pixel centres: x -> 3x + 1


@pytest.mark.skipif(not dlib_available(), reason="dlib not installed (pip install dlib-bin)")
def test_dlib_detector_on_group_photo(dlib_photos):
    ph = dlib_photos["2008_004176.jpg"]  # 7 faces of about 35 px
    boxes, scores = get_detector("dlib").detect(ph.path)
    assert _hits(boxes, ph.boxes) >= 5 and len(scores) == len(boxes)


def test_calibrate_command_prints_constants(shared_data, capsys):
    xml = shared_data / "dlib_examples_faces" / "testing_with_face_landmarks.xml"
    assert calibrate_main(["calibrate", "--data", str(xml), "--detector", "haar_frontal"]) == 0
    out = capsys.readouterr().out
    assert "fitted: BoxCalibration(dx=" in out and "IoU>0.5" in out
    assert calibrate_main(["calibrate", "--data", str(xml), "--detector", "nope"]) == 2
