"""facelm.video on short videos made from real 300-W photos (facelm.video_sequences): ids, smoothing,
lag, lost faces, bad input, the JSON / CSV / overlay outputs and the CLI."""
from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from facelm.one_euro import OneEuroFilter, OneEuroParams
from facelm.video_io import VideoError

PHOTOS = ("1051618982_1", "2406586388_1")


@pytest.fixture(scope="module")
def fl(one_torch_thread):
    from facelm.landmarker import FaceLandmarker
    return FaceLandmarker.from_pretrained("ibug68_fast")


@pytest.fixture(scope="module")
def photos(shared_data):
    from facelm.image import to_rgb_array
    from facelm.io.pts import read_pts
    afw = shared_data / "300w" / "afw"
    return [(to_rgb_array(afw / f"{n}.jpg"), read_pts(afw / f"{n}.pts")) for n in PHOTOS]


def write_mp4(frames, path, fps=30.0):
    from facelm.video_io import OverlayWriter
    with OverlayWriter(path, fps) as w:
        for f in frames:
            w.write(f)
    return path


def movement(points: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(points, axis=0), axis=-1).mean())


def run(tracker, frames):
    return [tracker.update(f) for f in frames]


# -- the filter ---------------------------------------------------------------------------------------
def test_one_euro_passes_first_sample_and_holds_still_points():
    pts = np.array([[10.0, 20.0], [30.5, 40.25]])
    f = OneEuroFilter(OneEuroParams(1.0, 10.0, 1.0))
    assert np.array_equal(f(pts, 0.0, 100.0), pts.astype(np.float32))
    for i in range(1, 10):
        out = f(pts, i / 30, 100.0)
    assert np.allclose(out, pts)


def test_one_euro_beta_cuts_lag_on_a_ramp():
    def lag(beta):
        f = OneEuroFilter(OneEuroParams(1.0, beta, 1.0))
        for i in range(60):
            x = np.array([[4.0 * i, 0.0]])
            out = f(x, i / 30, 100.0)
        return float((x - out)[0, 0]) / 4.0
    assert lag(0.0) > 2 * lag(10.0) > 0


def test_one_euro_restarts_on_time_going_back_and_rejects_bad_params():
    f = OneEuroFilter()
    f(np.zeros((2, 2)), 1.0)
    jump = np.full((2, 2), 50.0)
    assert np.array_equal(f(jump, 0.5), jump)
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroParams(min_cutoff=0)
    with pytest.raises(ValueError, match="beta"):
        OneEuroParams(beta=-1)


# -- tracking on real photos ----------------------------------------------------------------------------
def test_pan_from_mp4_keeps_one_id_and_follows_the_face(fl, photos, tmp_path):
    from facelm.video import track_video
    from facelm.video_sequences import pan_sequence
    seq = pan_sequence(*photos[0], speed=4.0, frames=40)
    result = track_video(write_mp4(seq.frames, tmp_path / "pan.mp4"), fl, progress=False)
    assert [f.index for f in result.frames] == list(range(40)) and result.skipped == []
    # The face keeps id 0 throughout; anything else the detector finds (this photo's mp4 frames give
    # Haar a false alarm in the flowers) is dropped when the confirming detection misses it.
    assert all(f.faces and f.faces[0].id == 0 for f in result.frames)
    others = [len(f.faces) > 1 for f in result.frames]
    assert not any(all(others[i:i + 7]) for i in range(len(others)))
    pts = np.stack([f.faces[0].landmarks for f in result.frames])
    iod = np.linalg.norm(seq.truth[:, 36] - seq.truth[:, 45], axis=-1)
    nme = np.linalg.norm(pts - seq.truth, axis=-1).mean(axis=-1) / iod
    assert nme.max() < 0.08, nme.max()
    assert result.fps == pytest.approx(30.0)


def test_two_faces_keep_their_ids(fl, photos):
    from facelm.video import Tracker
    from facelm.video_sequences import still_sequence
    left, right = (still_sequence(img, pts, frames=20, face_size=110, canvas=(320, 480), seed=s)
                   for (img, pts), s in zip(photos, (1, 2)))
    frames = [np.hstack([a, b]) for a, b in zip(left.frames, right.frames)]
    out = run(Tracker(fl, detect_every=5), frames)
    assert all(len(faces) == 2 for faces in out)
    sides = {face.id: set() for face in out[0]}
    for faces in out:
        for face in faces:
            sides[face.id].add(bool((face.box[0] + face.box[2]) / 2 < 320))
    assert sorted(sides) == [0, 1] and all(len(s) == 1 for s in sides.values()) and \
        {next(iter(s)) for s in sides.values()} == {True, False}


def test_smoothing_halves_jitter_on_a_still_scene(fl, photos):
    from facelm.video import Tracker
    from facelm.video_sequences import still_sequence
    for img, pts in photos:
        seq = still_sequence(img, pts, frames=40, seed=3)
        out = run(Tracker(fl), seq.frames)
        assert all(len(faces) == 1 for faces in out)
        raw = np.stack([faces[0].raw_landmarks for faces in out])
        smooth = np.stack([faces[0].landmarks for faces in out])
        assert movement(smooth) < 0.5 * movement(raw), (movement(smooth), movement(raw))
        # Still on the face: the filter does not wander off.
        error = [np.linalg.norm(p - seq.truth, axis=-1).mean() for p in (smooth, raw)]
        assert error[0] < 1.5 * error[1], error


def test_no_smoothing_gives_the_raw_points(fl, photos):
    from facelm.video import Tracker
    from facelm.video_sequences import still_sequence
    seq = still_sequence(*photos[0], frames=5)
    for faces in run(Tracker(fl, smoothing=None), seq.frames):
        assert np.array_equal(faces[0].landmarks, faces[0].raw_landmarks)


def test_lag_on_a_pan_is_at_most_one_frame(fl, photos):
    from facelm.video import Tracker
    from facelm.video_bench import lag_frames
    from facelm.video_sequences import pan_sequence
    for img, pts in photos:
        seq = pan_sequence(img, pts, speed=4.0, frames=50)
        out = run(Tracker(fl), seq.frames)
        raw = np.stack([faces[0].raw_landmarks for faces in out])
        smooth = np.stack([faces[0].landmarks for faces in out])
        lag = lag_frames(raw, smooth, np.array([4.0, 0.0]))
        assert 0 < lag <= 1.0, lag


def test_face_that_vanishes_is_dropped_and_found_again(fl, photos):
    from facelm.video import Tracker
    from facelm.video_sequences import BACKGROUND, still_sequence
    seq = still_sequence(*photos[1], frames=16)
    blank = np.full_like(seq.frames[0], BACKGROUND)
    frames = seq.frames[:3] + [blank] * 12 + seq.frames[3:]  # the face gone for frames 3-14
    out = run(Tracker(fl, detect_every=5, max_missed=1), frames)
    assert all(len(f) == 1 for f in out[:3])
    # Dropped within detect_every + max_missed frames of vanishing, then nothing on the blank frames.
    assert all(len(f) == 0 for f in out[3 + 5 + 1:15])
    back = [i for i in range(15, len(out)) if out[i]]
    assert back and back[0] <= 15 + 5 and all(len(out[i]) == 1 for i in range(back[0], len(out)))
    assert out[back[0]][0].detected and not out[back[0] + 1][0].detected
    # Found again where it was lost: the same face, the same id.
    assert {f[0].id for f in out if f} == {0}


# -- bad input ---------------------------------------------------------------------------------------
def test_unreadable_missing_and_empty_videos_are_clear_errors(fl, tmp_path):
    from facelm.video import track_video
    (tmp_path / "text.mp4").write_text("not a video")
    (tmp_path / "empty.mp4").write_bytes(b"")
    w = cv2.VideoWriter(str(tmp_path / "noframes.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 64))
    w.release()
    for name, message in (("text.mp4", "not a video"), ("missing.mp4", "no such video"), ("empty.mp4", "empty"),
                          ("noframes.mp4", "not a video|no frame")):
        with pytest.raises(VideoError, match=message):
            track_video(tmp_path / name, fl, progress=False)
    with pytest.raises(VideoError, match="no frame"):
        track_video(iter([]), fl, progress=False)


def corrupt_mjpeg(frames, path, damaged):
    """An MJPEG AVI whose frames ``damaged`` have their JPEG header zeroed (undecodable)."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, frames[0].shape[1::-1])
    for f in frames:
        w.write(np.ascontiguousarray(f[..., ::-1]))
    w.release()
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 3) if data[i:i + 3] == b"\xff\xd8\xff"]
    assert len(starts) == len(frames)
    for k in damaged:
        data[starts[k]:starts[k] + 400] = bytes(400)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.timeout(120)
def test_corrupt_frames_in_the_middle_are_skipped_and_counted(fl, photos, tmp_path):
    from facelm.video import track_video
    from facelm.video_sequences import still_sequence
    seq = still_sequence(*photos[0], frames=12, canvas=(320, 240), face_size=90)
    path = corrupt_mjpeg(seq.frames, tmp_path / "broken.avi", damaged=(4, 5))
    result = track_video(path, fl, overlay=tmp_path / "o.mp4", progress=False)
    assert result.skipped == [4, 5] and result.stopped is None
    assert [f.index for f in result.frames] == [0, 1, 2, 3] + list(range(6, 12))
    assert all(len(f.faces) == 1 for f in result.frames)
    assert result.to_dict()["skipped_frames"] == [4, 5]
    cap = cv2.VideoCapture(str(tmp_path / "o.mp4"))  # the overlay keeps the timing: 12 frames
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()


def test_bad_frames_in_an_iterable_are_skipped(fl, photos):
    from facelm.video import track_video
    from facelm.video_sequences import still_sequence
    frames = still_sequence(*photos[0], frames=5).frames
    frames[1] = None
    frames[3] = np.zeros((4, 4, 7), np.uint8)
    result = track_video(frames, fl, fps=25, progress=False)
    assert result.skipped == [1, 3] and [f.index for f in result.frames] == [0, 2, 4] and result.fps == 25


# -- outputs and the CLI -----------------------------------------------------------------------------
def test_cli_writes_json_csv_and_overlay(fl, photos, tmp_path, capsys):
    from facelm.cli import main
    from facelm.video_sequences import pan_sequence
    seq = pan_sequence(*photos[1], speed=3.0, frames=15)
    video = write_mp4(seq.frames, tmp_path / "in.mp4", fps=25)
    out, table, overlay = tmp_path / "lm.json", tmp_path / "lm.csv", tmp_path / "over.mp4"
    code = main(["video", str(video), "--out", str(out), "--csv", str(table), "--overlay", str(overlay),
                 "--model", "ibug68_fast", "--detect-every", "5", "-q"])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["fps"] == pytest.approx(25) and [f["index"] for f in doc["frames"]] == list(range(15))
    face = doc["frames"][7]["faces"][0]
    assert set(face) == {"id", "box", "landmarks"} and face["id"] == 0 and len(face["box"]) == 4
    assert np.asarray(face["landmarks"]).shape == (68, 2) and doc["detect_every"] == 5
    assert doc["smoothing"]["filter"] == "one_euro"
    rows = list(csv.reader(table.open()))
    assert rows[0][:7] == ["frame", "time", "face_id", "x1", "y1", "x2", "y2"] and len(rows[0]) == 7 + 136
    assert len(rows) == 1 + sum(len(f["faces"]) for f in doc["frames"])
    row = next(r for r in rows[1:] if r[0] == "7" and r[2] == "0")
    assert float(row[1]) == pytest.approx(7 / 25)
    assert np.allclose([float(v) for v in row[7:]], np.asarray(face["landmarks"]).ravel(), atol=0.01)
    cap = cv2.VideoCapture(str(overlay))
    ok, first = cap.read()
    assert ok and first.shape == (480, 640, 3) and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 15
    cap.release()
    # The points are drawn on the face: saturated red pixels there, which the input frame lacks.
    def red(bgr):
        b, g, r = (bgr[y1:y2, x1:x2, c].astype(int) for c in range(3))
        return float(((r > 170) & (g < 70) & (b < 70)).mean())
    x1, y1, x2, y2 = (int(v) for v in doc["frames"][0]["faces"][0]["box"])
    src = cv2.VideoCapture(str(video))
    assert red(first) > 0.01 > red(src.read()[1])
    src.release()


def test_cli_refuses_a_bad_video_without_traceback(tmp_path, capsys):
    from facelm.cli import main
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    assert main(["video", str(tmp_path / "bad.mp4"), "--out", str(tmp_path / "o.json"), "-q"]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "o.json").exists()
    assert main(["video", str(tmp_path / "bad.mp4"), "--out", str(tmp_path / "o.json"), "--detect-every", "0"]) == 2
    assert main(["video", str(tmp_path / "bad.mp4"), "--out", str(tmp_path / "o.json"), "--overlay",
                 str(tmp_path / "o.gif")]) == 2
    assert "write a video as one of" in capsys.readouterr().err


def test_app_handlers(fl, photos, tmp_path):
    from facelm.video import Tracker, track_video_file, webcam_step
    from facelm.video_sequences import still_sequence
    seq = still_sequence(*photos[0], frames=8)
    overlay, doc = track_video_file(write_mp4(seq.frames, tmp_path / "up.mp4"), fl, tmp_path / "out")
    assert overlay.name == "up_landmarks.webm" and (tmp_path / "out" / "up_landmarks.json").is_file()
    cap = cv2.VideoCapture(str(overlay))
    assert cap.read()[0] and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 640
    cap.release()
    assert len(doc["frames"]) == 8 and json.loads((tmp_path / "out" / "up_landmarks.json").read_text()) == doc
    tracker = None
    for f in seq.frames[:4]:
        drawn, tracker = webcam_step(f, tracker, fl)
        assert drawn.shape == f.shape and not np.array_equal(drawn, f)
    assert isinstance(tracker, Tracker) and tracker.processing_fps > 0
    assert webcam_step(None, tracker, fl)[0] is None
