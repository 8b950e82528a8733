"""The app's Video tab through its API (the /track_video endpoint), launched in-process and driven
with gradio_client as a remote user would: a short video made from a real photo, the frame limit,
and files that are not videos."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("gradio_client")
from gradio_client import handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from facelm.image import to_rgb_array  # noqa: E402
from facelm.io.pts import read_pts  # noqa: E402
from facelm.metrics import nme  # noqa: E402
from facelm.video_io import OverlayWriter  # noqa: E402
from facelm.video_sequences import still_sequence  # noqa: E402

FACE = "300w/afw/1051618982_1"
FRAMES = 12


@pytest.fixture(scope="module")
def clip(shared_data, tmp_path_factory):
    """(mp4 path, the face's true points per frame): a still scene of a real photo, camera noise and
    JPEG per frame, 640 x 480 at 30 fps."""
    seq = still_sequence(to_rgb_array(shared_data / f"{FACE}.jpg"), read_pts(shared_data / f"{FACE}.pts"),
                         frames=FRAMES)
    path = tmp_path_factory.mktemp("video") / "face clip.mp4"
    with OverlayWriter(path, seq.fps) as w:
        for f in seq.frames:
            w.write(f)
    return path, seq.truth


def test_track_video_endpoint_is_named(client):
    assert "/track_video" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]


def test_upload_returns_overlay_json_and_summary(client, clip):
    path, truth = clip
    overlay, json_file, summary = client.predict(handle_file(str(path)), "", True, api_name="/track_video")
    overlay = overlay["video"] if isinstance(overlay, dict) else overlay
    assert Path(overlay).suffix == ".webm"
    cap = cv2.VideoCapture(str(overlay))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == FRAMES

    doc = json.loads(Path(json_file).read_text())
    assert [f["index"] for f in doc["frames"]] == list(range(FRAMES))
    assert doc["skipped_frames"] == [] and doc["stopped"] is None and doc["smoothing"]["filter"] == "one_euro"
    assert {face["id"] for f in doc["frames"] for face in f["faces"]} == {0}
    pts = np.asarray([f["faces"][0]["landmarks"] for f in doc["frames"]], np.float32)
    assert pts.shape == (FRAMES, 68, 2)
    assert float(np.mean(nme(pts, truth.astype(np.float32), "ibug68"))) < 0.1

    assert "1 face followed in face clip.mp4" in summary
    assert f"{FRAMES} frames tracked" in summary and f"({FRAMES} with a face)" in summary
    assert "0 frames could not be decoded" in summary and "limit" not in summary


def test_long_video_is_cut_at_the_limit_with_a_message(served, client, clip, monkeypatch):
    monkeypatch.setattr(served[0], "MAX_VIDEO_FRAMES", 5)
    _, json_file, summary = client.predict(handle_file(str(clip[0])), "", False, api_name="/track_video")
    doc = json.loads(Path(json_file).read_text())
    assert len(doc["frames"]) == 5 and doc["smoothing"] is None
    assert "limit of 5 frames" in summary and f"has {FRAMES}" in summary


@pytest.mark.parametrize("name, data", [("notes.mp4", b"these are not the frames you are looking for\n" * 40),
                                        ("empty.webm", b"")])
def test_unreadable_video_is_a_clear_error(client, tmp_path, name, data):
    bad = tmp_path / name
    bad.write_bytes(data)
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(bad)), "", True, api_name="/track_video")
    msg = str(e.value)
    assert name in msg and ("not a video" in msg or "empty" in msg)
    assert "Traceback" not in msg and "/tmp/" not in msg


def test_no_video_is_a_clear_error(client):
    with pytest.raises(AppError, match="Upload a video first"):
        client.predict(None, "", True, api_name="/track_video")
