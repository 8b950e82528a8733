"""The app in a real browser: Debian's Chromium driven by playwright, against the app served in-process.

Uploads a real face, sees its landmarks, drags one point in the Annotate tab's SVG editor with the
mouse, undoes and redoes the drag with the keyboard, exports, and checks that the exported XML holds
the point moved by the dragged distance in image pixels. Then the editor on photos of many faces, one
face and (after deleting it) none: forward and back, a drag in flight while the photo changes, undo
that stays on its photo, a whole part moved, a point flagged occluded, a face added by drawing its box;
the page logs no error. Saves a screenshot of each tab under artifacts/screenshots/.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from _app_helpers import CHROMIUM_ARGS, drag_on_stage, new_page

SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
FACE = "300w/afw/1051618982_1"
POINT = 30  # nose tip
DRAG = (36, 24)  # screen pixels

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def page_errors() -> list[str]:
    """Uncaught exceptions and console errors of the page, for the whole module."""
    return []


@pytest.fixture(scope="module")
def page(chromium, served, page_errors):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        pg = new_page(browser, page_errors, served[1])
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


# ---------------------------------------------------------------------------------- editor journey
GROUP = "dlib_examples_faces/2008_002470"  # a group photo


def _project_items(app, project: str) -> list:
    from facelm.annotation_store import Project
    return Project.open(app.ANNOTATIONS_DIR, project).queue()


def _item_faces(app, project: str, item: str) -> list[dict]:
    return json.loads((app.ANNOTATIONS_DIR / project / "items" / f"{item}.json").read_text())["faces"]


def _shown(page) -> dict:
    return page.evaluate("""() => {
        const q = s => document.querySelector(s);
        return {where: q('.flm-where').textContent, name: q('.flm-name').textContent,
                points: document.querySelectorAll('.flm-pt').length,
                boxes: document.querySelectorAll('.flm-box').length,
                noface: q('.flm-noface').textContent, progress: q('.flm-progress').textContent};
    }""")


def _wait_shown(page, index: int, count: int, name: str) -> dict:
    page.wait_for_function("([w, n]) => document.querySelector('.flm-where').textContent.startsWith(w)"
                           " && document.querySelector('.flm-name').textContent === n",
                           arg=[f"Image {index + 1} of {count}", name])
    return _shown(page)


def _wait_faces(app, project: str, item: str, check, timeout: float = 30) -> list[dict]:
    end = time.time() + timeout
    while time.time() < end:
        faces = _item_faces(app, project, item)
        if check(faces):
            return faces
        time.sleep(0.2)
    raise AssertionError(f"item {item} never reached the expected faces (last: {len(faces)} faces)")


def _go(page, queue: list, frm: int, to: int) -> int:
    """Step from photo ``frm`` to ``to`` with the arrow keys, one shown photo at a time."""
    while frm != to:
        step = 1 if to > frm else -1
        page.keyboard.press("ArrowRight" if step > 0 else "ArrowLeft")
        frm += step
        _wait_shown(page, frm, len(queue), queue[frm].name)
    return to


def test_editor_across_photos_of_many_one_and_no_face(served, page, page_errors, shared_data, tmp_path):
    from PIL import Image
    no_face = tmp_path / "no_face.png"  # the group photo's top-left corner: ceiling and wall
    Image.open(shared_data / f"{GROUP}.jpg").crop((0, 0, 120, 120)).save(no_face)
    app = served[0]
    page.get_by_role("tab", name="Annotate").click()
    page.get_by_role("button", name="New project").click()
    page.wait_for_selector(".flm-ed.empty")
    photos = [shared_data / f"{n}.jpg" for n in (GROUP, FACE)] + [no_face]
    page.locator("#flm-ann-files input[type=file]").set_input_files([str(p) for p in photos])
    page.wait_for_selector("#flm-ann-files :text('no_face')")
    page.click("#flm-load")
    page.wait_for_selector(".flm-ed:not(.empty)")
    project = page.locator("#flm-project input, #flm-project textarea").first.input_value()
    queue = _project_items(app, project)
    n = len(queue)  # the upload box may still hold the first test's photo too
    assert {p.name for p in photos} <= {it.name for it in queue}
    k = 68

    # Forward through all and back again: each step shows exactly the photo the server holds, with its
    # own faces (no leftover of the previous photo's faces), "Image i of n" and the progress line.
    order = list(range(n)) + list(range(n - 2, -1, -1))
    for step, i in enumerate(order):
        if step:
            page.keyboard.press("ArrowRight" if i > order[step - 1] else "ArrowLeft")
        shown = _wait_shown(page, i, n, queue[i].name)
        faces = _item_faces(app, project, queue[i].id)
        assert shown["points"] == k * len(faces) and shown["boxes"] == len(faces), (i, shown)
        assert shown["progress"] == f"0 of {n} done"
        assert shown["noface"] == ("" if faces else "No face found \u2014 draw a box to add one")
    group = next(i for i, it in enumerate(queue) if it.name.startswith("2008_002470"))
    assert len(queue[group].faces) > 1, "the group photo should show several faces"
    with_faces = [i for i, it in enumerate(queue) if it.faces]
    before = {it.id: _item_faces(app, project, it.id) for it in queue}

    # A drag in flight when the photo changes: a point is held, → opens the next photo, the mouse
    # moves and lets go. Neither photo changes.
    a = next(i for i in with_faces if i + 1 < n)
    pos = _go(page, queue, 0, a)
    dot = page.locator('.flm-pt[data-face="0"][data-pt="30"]')
    dot.scroll_into_view_if_needed()
    b = dot.bounding_box()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)
    page.mouse.down()
    page.keyboard.press("ArrowRight")
    pos += 1
    _wait_shown(page, pos, n, queue[pos].name)
    page.mouse.move(b["x"] + 40, b["y"] + 30, steps=4)
    page.mouse.up()
    page.wait_for_timeout(1500)
    assert {it.id: _item_faces(app, project, it.id) for it in queue} == before

    # A whole part (key 2: the brows) moved by Shift+→; then undo on another photo changes nothing there.
    pos = _go(page, queue, pos, group)
    item = queue[pos].id
    page.keyboard.press("2")
    assert page.locator(".flm-pt.sel").count() == 10
    page.keyboard.press("Shift+ArrowRight")
    start = np.asarray(before[item][0]["points"])
    moved = _wait_faces(app, project, item, lambda f: np.allclose(np.asarray(f[0]["points"])[17:27, 0], start[17:27, 0] + 1))
    np.testing.assert_allclose(np.delete(np.asarray(moved[0]["points"]), np.s_[17:27], 0), np.delete(start, np.s_[17:27], 0))
    other = next(i for i in with_faces if i != group)
    pos = _go(page, queue, pos, other)
    page.keyboard.press("Control+z")
    page.wait_for_timeout(1500)
    assert _item_faces(app, project, queue[other].id) == before[queue[other].id]
    assert np.allclose(np.asarray(_item_faces(app, project, item)[0]["points"]), np.asarray(moved[0]["points"]))

    # Occluded: O on a selected point draws it hollow.
    page.locator('.flm-pt[data-face="0"][data-pt="8"]').click()
    page.keyboard.press("o")
    assert "occ" in page.locator('.flm-pt[data-face="0"][data-pt="8"]').get_attribute("class")

    # Delete every face of this photo (Delete key on the selected face): it says there is none.
    for _ in range(len(_item_faces(app, project, queue[pos].id))):
        page.locator(".flm-pt").first.click()
        page.keyboard.press("Delete")
    _wait_faces(app, project, queue[pos].id, lambda f: not f)
    page.wait_for_function("() => document.querySelector('.flm-noface').textContent.startsWith('No face found')")
    assert _shown(page)["noface"] == "No face found \u2014 draw a box to add one"
    assert _shown(page)["points"] == 0
    assert "uncertainty \u2014" in _shown(page)["where"]
    _shot(page, "annotate_no_face")

    # Add a face back by drawing its box with Shift+drag: the model predicts its points in the box.
    page.keyboard.down("Shift")
    drag_on_stage(page, (0.35, 0.3), (120, 140))
    page.keyboard.up("Shift")
    added = _wait_faces(app, project, queue[pos].id, lambda f: len(f) == 1, timeout=120)  # a model run, on a busy CPU
    page.wait_for_function("() => document.querySelectorAll('.flm-pt').length === 68")
    assert _shown(page)["noface"] == ""
    box = np.asarray(added[0]["box"])
    assert box[2] - box[0] > 10 and box[3] - box[1] > 10
    _shot(page, "annotate_added_face")

    # Back to the first photo: its own faces, nothing of the last one.
    _go(page, queue, pos, 0)
    assert _shown(page)["points"] == k * len(_item_faces(app, project, queue[0].id))
    assert page_errors == [], page_errors
