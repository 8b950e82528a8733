"""The app in a real browser: Debian's Chromium driven by playwright, against the app served in-process.

Uploads a real face, sees its landmarks, drags one point in the Annotate tab's SVG editor with the
mouse, undoes and redoes the drag with the keyboard, exports, and checks that the exported XML holds
the point moved by the dragged distance in image pixels. Saves a screenshot of each tab under
artifacts/screenshots/.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from _app_helpers import app_in_process

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
FACE = "300w/afw/1051618982_1"
POINT = 30  # nose tip
DRAG = (36, 24)  # screen pixels

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def served(shared_data, tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); the browser test needs it")
    pytest.importorskip("playwright.sync_api")
    with app_in_process(shared_data / "300w", tmp_path_factory.mktemp("annotations")) as served:
        yield served


@pytest.fixture(scope="module")
def page(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(60_000)
        pg.goto(served[1])
        pg.wait_for_selector("#flm-header")
        yield pg
        browser.close()


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(400)  # let images and transitions settle
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _item_point(app, project: str, item: str) -> np.ndarray:
    data = json.loads((app.ANNOTATIONS_DIR / project / "items" / f"{item}.json").read_text())
    return np.asarray(data["faces"][0]["points"][POINT], np.float64)


def _wait_saved(app, project: str, item: str, expected: np.ndarray, timeout: float = 30) -> None:
    end = time.time() + timeout
    while time.time() < end:
        got = _item_point(app, project, item)
        if np.abs(got - expected).max() < 1e-3:
            return
        time.sleep(0.2)
    raise AssertionError(f"autosave never wrote point {POINT} = {expected} (last saved {got})")


def test_predict_annotate_drag_export(served, page, shared_data):
    app = served[0]
    image = shared_data / f"{FACE}.jpg"

    # Predict: upload a real face, landmarks appear.
    page.locator("#flm-photo input[type=file]").set_input_files(str(image))
    page.wait_for_selector("#flm-photo img")
    page.click("#flm-predict")
    page.wait_for_selector("#flm-predict-md :text('Found 1 face')")
    page.wait_for_selector("#flm-drawn img")
    _shot(page, "predict")

    # Compare: one face of the demo dataset, and a small evaluation with its CED plot.
    page.get_by_role("tab", name="Compare").click()
    page.click("#flm-compare")
    page.wait_for_selector("#flm-cmp-md :text('NME')")
    page.locator("#flm-evaluate").click()
    page.wait_for_selector("#flm-eval-md :text('on 100 faces')")
    page.wait_for_selector("#flm-evaluate:not([disabled])")
    _shot(page, "compare")

    # Annotate: load the photo, drag the nose tip.
    page.get_by_role("tab", name="Annotate").click()
    page.locator("#flm-ann-files input[type=file]").set_input_files(str(image))
    page.wait_for_selector("#flm-ann-files :text('1051618982_1')")
    page.click("#flm-load")
    dot = page.locator(f'.flm-pt[data-face="0"][data-pt="{POINT}"]')
    dot.wait_for()
    project = page.locator("#flm-project input, #flm-project textarea").first.input_value()
    item = "0001"
    before = np.array([float(dot.get_attribute("cx")), float(dot.get_attribute("cy"))])
    scale = page.evaluate("document.querySelector('.flm-svg').getScreenCTM().a")  # screen px per image px
    box = dot.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + DRAG[0] / 2, y + DRAG[1] / 2, steps=5)
    page.mouse.move(x + DRAG[0], y + DRAG[1], steps=5)
    page.mouse.up()
    moved = before + np.array(DRAG) / scale
    shown = np.array([float(dot.get_attribute("cx")), float(dot.get_attribute("cy"))])
    assert np.abs(shown - moved).max() < 1.0, (shown, moved)
    page.wait_for_selector("#flm-ann-md :text('Saved image')")
    _wait_saved(app, project, item, shown)
    assert page.inner_text(".flm-chip").strip().lower() == "edited"

    # Keyboard: undo puts the point back (and autosaves that), redo moves it again.
    page.locator(".flm-stage").click(position={"x": 5, "y": 5})  # focus the editor (a pan click, no edit)
    page.keyboard.press("Control+z")
    _wait_saved(app, project, item, before)
    page.keyboard.press("Control+Shift+z")
    _wait_saved(app, project, item, shown)
    _shot(page, "annotate")

    # Export and read the XML back: the point moved by the dragged distance, in image pixels.
    page.click("#flm-export")
    page.wait_for_selector("#flm-export-md :text('Exported')")
    from facelm.io import read_annotations
    aset = read_annotations(app.ANNOTATIONS_DIR / project / "export" / "annotations.xml")
    assert len(aset.images) == 1
    pts = aset.images[0].faces[0].landmarks
    np.testing.assert_allclose(pts[POINT], moved, atol=1.0)
    np.testing.assert_allclose(pts[POINT] - before, np.array(DRAG) / scale, atol=1.0)
    predicted = np.asarray(json.loads((app.ANNOTATIONS_DIR / project / "items" / f"{item}.json").read_text())
                           ["predicted"][0]["points"], np.float32)
    others = np.delete(np.arange(len(pts)), POINT)
    np.testing.assert_array_equal(pts[others], predicted[others])  # nothing else moved
    _shot(page, "annotate_exported")

    # Retrain: the exact command for the exported project.
    page.get_by_role("tab", name="Retrain").click()
    page.click("#flm-rt-cmd")
    page.wait_for_selector("#flm-retrain :text('train.train')")
    _shot(page, "retrain")
