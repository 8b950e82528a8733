"""The Video tab's live webcam in a real browser: Debian's Chromium with a fake camera that plays a
.y4m file made from a real photo (a still scene with camera noise), the app served in-process.

Opens the webcam, presses Record and checks that the streamed frames come back with the landmarks
drawn where the photo's annotated points are, that the frame rate is shown, and that the page logs no
error."""
from __future__ import annotations

import io
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from _app_helpers import CHROMIUM_ARGS, new_page
from facelm.image import to_rgb_array
from facelm.io.pts import read_pts
from facelm.video_sequences import still_sequence

FACE = "300w/afw/1051618982_1"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def write_y4m(frames: list[np.ndarray], path: Path, fps: int = 30) -> Path:
    """RGB frames as a YUV4MPEG2 file (4:2:0 planes), what Chromium's fake camera plays in a loop."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for f in frames:
            fh.write(b"FRAME\n" + cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def landmark_red(img: np.ndarray) -> np.ndarray:
    """Pixels of facelm.draw's landmark red (lossy image formats blur it a little)."""
    r, g, b = (img[..., c].astype(int) for c in range(3))
    return (r > 170) & (g < 90) & (b < 90)


@pytest.fixture(scope="module")
def camera(shared_data, tmp_path_factory):
    """(y4m path, first frame, the face's true points in it)."""
    seq = still_sequence(to_rgb_array(shared_data / f"{FACE}.jpg"), read_pts(shared_data / f"{FACE}.pts"),
                         frames=10)
    return write_y4m(seq.frames, tmp_path_factory.mktemp("camera") / "face.y4m"), seq.frames[0], seq.truth[0]


def test_live_webcam_draws_landmarks_on_streamed_frames(chromium, served, camera):
    from playwright.sync_api import sync_playwright
    y4m, frame, truth = camera
    errors: list[str] = []
    fake_camera = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                   f"--use-file-for-fake-video-capture={y4m}"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS + fake_camera)
        try:
            page = new_page(browser, errors, served[1])
            page.wait_for_selector("#flm-header")
            page.get_by_role("tab", name="Video", exact=True).click()
            page.get_by_text("Click to Access Webcam").click()
            page.locator("#flm-cam button", has_text="Record").click()

            page.wait_for_function("() => /frames per second/.test(document.querySelector('#flm-cam-md').innerText)")
            assert "ibug68_fast" in page.inner_text("#flm-cam-md") and "smoothing on" in page.inner_text("#flm-cam-md")
            sources: set[str] = set()
            deadline = time.monotonic() + 60
            while len(sources) < 3 and time.monotonic() < deadline:
                src = page.locator("#flm-cam-out img").first.get_attribute("src")
                if src:
                    sources.add(src)
                time.sleep(0.1)
            assert len(sources) >= 3, "the output image did not follow the stream"
            page.locator("#flm-cam button", has_text="Stop").click()
        finally:
            browser.close()
    assert errors == []

    shown = np.asarray(Image.open(io.BytesIO(httpx.get(sorted(sources)[0]).content)).convert("RGB"))
    h, w = frame.shape[:2]
    assert shown.shape[0] * w == shown.shape[1] * h  # the camera's frame, possibly scaled
    shown = cv2.resize(shown, (w, h), interpolation=cv2.INTER_AREA)
    drawn = landmark_red(shown) & ~landmark_red(frame)
    # Red drawn next to (nearly) every annotated point; the face's region gains hundreds of red pixels.
    near = [drawn[max(0, int(y) - 5):int(y) + 6, max(0, int(x) - 5):int(x) + 6].any() for x, y in truth]
    assert np.mean(near) > 0.9
    (x1, y1), (x2, y2) = (truth.min(0) - 10).astype(int), (truth.max(0) + 10).astype(int)
    face = (slice(max(0, y1), y2), slice(max(0, x1), x2))
    assert landmark_red(shown[face]).sum() - landmark_red(frame[face]).sum() > 300
