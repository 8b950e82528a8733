"""YuNet: weights from a file or the Hugging Face cache (checked), the default detector and its
fallback, scores and thresholds, on real photos. Tests use the shared copy of the weights (never
the network) and skip without it."""
from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from facelm.detect import (CombinedDetector, YuNetDetector, YuNetWeightsError, available_detectors, get_detector,
                           greedy_matches, list_detectors)
from facelm.detect.benchmark import match_faces, read_wider
from facelm.detect.yunet_weights import ENV_VAR, HUB_FILE, HUB_REPO
from facelm.photo_evaluation import iter_annotated
from facelm.image import to_rgb_array

GROUP = "2008_002470.jpg"  # 7 annotated faces of 30-45 px


@pytest.fixture(scope="module")
def group(shared_data):
    xml = [shared_data / "dlib_examples_faces" / f"{s}_with_face_landmarks.xml" for s in ("testing", "training")]
    return next(ph for ph in iter_annotated(xml) if ph.path.name == GROUP)


@pytest.fixture(scope="module")
def yunet(yunet_file):
    return get_detector("yunet", model_file=yunet_file)


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


# --------------------------------------------------------------------------- weights

def test_model_file_and_env_var(yunet_file, monkeypatch):
    assert get_detector("yunet", model_file=yunet_file).model_file == yunet_file
    monkeypatch.setenv(ENV_VAR, str(yunet_file))
    det = get_detector("default")
    assert isinstance(det, YuNetDetector) and det.name == "yunet" and det.fallback_reason is None


def test_found_in_the_hugging_face_cache(yunet_file, tmp_path, no_env):
    """huggingface_hub's cache layout, built by hand: the file is found offline, without FACELM_YUNET."""
    commit = "0" * 40
    repo = tmp_path / f"models--{HUB_REPO.replace('/', '--')}"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    shutil.copy(yunet_file, repo / "snapshots" / commit / HUB_FILE)
    det = get_detector("yunet", cache_dir=tmp_path)
    assert det.model_file == repo / "snapshots" / commit / HUB_FILE


def test_not_cached_and_offline_is_a_clear_error_without_waiting(tmp_path, no_env):
    with pytest.raises(YuNetWeightsError, match="download-detector") as e:
        get_detector("yunet", cache_dir=tmp_path)
    assert "HF_HUB_OFFLINE" in str(e.value)


def test_bad_files_are_named_in_the_error(yunet_file, tmp_path):
    data = yunet_file.read_bytes()
    missing = tmp_path / "nope.onnx"
    with pytest.raises(YuNetWeightsError, match="nope.onnx.*does not exist"):
        get_detector("yunet", model_file=missing)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(YuNetWeightsError, match="truncated.onnx.*not the expected file"):
        get_detector("yunet", model_file=truncated)
    # The right bytes, but not the hash asked for.
    with pytest.raises(YuNetWeightsError, match="not the expected file"):
        get_detector("yunet", model_file=yunet_file, sha256="0" * 64)
    # Without the hash check, OpenCV itself must refuse: a truncated model, garbage, another network.
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx file at all" * 100)
    other = tmp_path / "relu.onnx"
    other.write_bytes(_relu_onnx())
    for bad in (truncated, garbage, other):
        with pytest.raises(YuNetWeightsError, match=f"{bad.name} is not a YuNet model"):
            get_detector("yunet", model_file=bad, sha256=None)


def _relu_onnx() -> bytes:
    """A valid ONNX model that is not YuNet (one Relu on an image)."""
    onnx = pytest.importorskip("onnx")
    h = onnx.helper
    x = h.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, "h", "w"])
    y = h.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1, 3, "h", "w"])
    graph = h.make_graph([h.make_node("Relu", ["input"], ["out"])], "relu", [x], [y])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 13)]).SerializeToString()


def test_default_falls_back_to_haar_and_says_why(yunet_file, tmp_path, monkeypatch, caplog):
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(yunet_file.read_bytes()[:1000])
    monkeypatch.setenv(ENV_VAR, str(truncated))
    with caplog.at_level(logging.WARNING, logger="facelm"):
        det = get_detector("default")
    assert isinstance(det, CombinedDetector) and det.name == "haar"
    assert "cut.onnx" in det.fallback_reason
    lines = [r.getMessage() for r in caplog.records if r.name == "facelm"]
    assert len(lines) == 1 and "using haar" in lines[0] and "cut.onnx" in lines[0]
    assert "download-detector" in lines[0]


def test_registry(yunet_file):
    names = list_detectors()
    assert {"default", "yunet", "haar", "haar_frontal", "haar_profile", "dlib"} <= set(names)
    assert names == sorted(names) and list_detectors("haar*") == ["haar", "haar_frontal", "haar_profile"]
    assert "yunet" in available_detectors() and "default" not in available_detectors()


# --------------------------------------------------------------------------- real photos

def test_finds_the_faces_of_a_group_photo(yunet, group):
    boxes, scores = yunet.detect(group.path)
    keep = scores >= yunet.min_score
    # Landmark-box convention: IoU > 0.5 with the annotated faces' landmark boxes (calibrated boxes).
    assert len(greedy_matches(boxes[keep], group.boxes)) >= 6
    assert keep.sum() <= len(group.boxes)  # no false face at the default threshold
    assert np.all(np.diff(scores) <= 0) and np.all((scores > 0) & (scores <= 1))


def test_five_points_frame_each_face(yunet, group):
    found = yunet.find(group.path)
    assert found.points.shape == (len(found), 5, 2)
    # The subject's right eye is on the left of the picture, the eyes above the mouth.
    assert np.all(found.points[:, 0, 0] < found.points[:, 1, 0])
    assert np.all(found.points[:, :2, 1].mean(1) < found.points[:, 3:, 1].mean(1))
    boxes, rolls = found.upright
    assert boxes.shape == (len(found), 4) and np.all(np.abs(rolls) < 20)  # people sitting upright
    # The upright frame is centred on the same face as the detector's box.
    for b, u in zip(found.boxes, boxes):
        assert abs((b[0] + b[2]) - (u[0] + u[2])) / 2 < 0.25 * (b[2] - b[0])


def test_no_face_in_background_and_tiny_images(yunet, group):
    img = to_rgb_array(group.path)
    for crop in (img[:110, :170], np.zeros((8, 8, 3), np.uint8)):  # the wall above the heads; a speck
        boxes, scores = yunet.detect(crop)
        assert boxes.shape == (0, 4) and boxes.dtype == np.float32 and scores.shape == (0,), (crop.shape, boxes, scores)


# --------------------------------------------------------------------------- landmarker thresholds

@pytest.fixture(scope="module")
def landmarker(yunet):
    from facelm import FaceLandmarker
    return FaceLandmarker.from_pretrained(detector=yunet, refine=False)


def test_landmarker_reports_detector_and_scores(landmarker, group):
    faces = landmarker.predict(group.path)
    assert faces.detector == "yunet" and len(faces) >= 6
    assert np.all(faces.scores >= landmarker.detector.min_score)
    given = landmarker.predict(group.path, boxes=group.boxes[:2])
    assert given.detector is None and np.all(given.scores == 1)


def test_min_score_and_min_face(landmarker, group, yunet):
    all_faces = landmarker.predict(group.path, min_score=0.0)
    scores = all_faces.scores
    cut = float(np.median(scores))
    strict = landmarker.predict(group.path, min_score=cut)
    assert len(strict) == int((scores >= cut).sum()) < len(all_faces)
    sides = np.minimum(all_faces.boxes[:, 2] - all_faces.boxes[:, 0], all_faces.boxes[:, 3] - all_faces.boxes[:, 1])
    big = float(np.median(sides))
    sized = landmarker.predict(group.path, min_score=0.0, min_face=big)
    assert len(sized) == int((sides >= big).sum()) < len(all_faces)
    from facelm import FaceLandmarker
    on_constructor = FaceLandmarker(landmarker.model, detector=yunet, refine=False, min_score=cut, min_face=big)
    both = on_constructor.predict(group.path)
    assert len(both) == int(((scores >= cut) & (sides >= big)).sum())
    assert len(on_constructor.predict(group.path, min_score=0.0, min_face=0)) == len(all_faces)  # per call wins
    for bad in ({"min_score": -1}, {"min_face": float("nan")}, {"min_score": "high"}):
        with pytest.raises(ValueError, match="must be a number"):
            landmarker.predict(group.path, **bad)


def test_upright_first_pass_from_five_points(landmarker, group):
    """``upright_first`` frames the first pass on YuNet's five points instead of its box: the same
    faces, and points that agree with the ground truth as well (off by default: docs/detection.md)."""
    from facelm import FaceLandmarker
    from facelm.metrics import nme
    upright = FaceLandmarker(landmarker.model, detector=landmarker.detector, refine=False, upright_first=True)
    for fl in (landmarker, upright):
        faces = fl.predict(group.path)
        pairs = greedy_matches(faces.boxes, group.boxes)
        assert len(pairs) >= 6
        errors = nme(faces.landmarks[[d for d, _ in pairs]], group.landmarks[[g for _, g in pairs]], "ibug68")
        assert np.median(errors) < 0.06  # against dlib's machine-made points on 30-45 px faces


def test_dropping_faces_keeps_the_rest(landmarker, group):
    faces = landmarker.predict(group.path)
    kept = faces.take([0, 2])
    np.testing.assert_array_equal(kept.landmarks, faces.landmarks[[0, 2]])
    assert kept.detector == faces.detector and kept.scores.tolist() == faces.scores[[0, 2]].tolist()


# --------------------------------------------------------------------------- benchmark

def test_wider_reader_and_matching_rule(shared_data, yunet):
    photos = read_wider(shared_data / "wider_face")
    assert len(photos) == 820
    counts = [len(p.boxes) for p in photos]
    assert sum(counts) > 1000 and all(p.boxes.shape[1:] == (4,) for p in photos)
    ph = max(photos[:40], key=lambda p: int((p.sizes >= 40).sum()))
    boxes, scores = yunet.detect(ph.path)
    match = match_faces(boxes, scores, ph.boxes)
    assert len(set(match[match >= 0].tolist())) == int((match >= 0).sum())  # one detection per face
    big = np.flatnonzero((ph.sizes >= 40) & ~ph.invalid)
    assert np.isin(big, match).mean() >= 0.5
    # A box far from every face matches none.
    far = np.array([[-500, -500, -400, -400]], np.float32)
    assert match_faces(far, np.ones(1), ph.boxes).tolist() == [-1]


@pytest.mark.slow
def test_evaluate_command(shared_data, tmp_path, capsys, yunet_file):
    from facelm.detect.calibrate import main
    plot = tmp_path / "pr.png"
    assert main(["evaluate", "--wider", str(shared_data / "wider_face"), "--every", "40", "--detector", "yunet",
                 "haar_frontal", "--data", str(shared_data / "dlib_examples_faces" / "testing_with_face_landmarks.xml"),
                 "--plot", str(plot), "--json", str(tmp_path / "d.json"), "--timing-photos", "2", "-q"]) == 0
    out = capsys.readouterr().out
    assert "yunet" in out and "haar_frontal" in out and "recall >=40px" in out and "speed:" in out
    assert plot.stat().st_size > 10_000
    assert main(["evaluate", "--wider", str(tmp_path)]) == 2
    assert "wider_face_train_bbx_gt.txt" in capsys.readouterr().err
