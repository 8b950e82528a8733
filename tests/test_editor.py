"""The Annotate editor's package: its browser files load as text, its state logic passes its node
tests (tests/js, run here so the README's pytest command runs them), and ``editor_value`` /
``faces_from_value`` speak the annotate contract (no sentinel numbers, occluded flags, parts)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelm.annotation_store import Item, ProjectError
from facelm.editor import CSS, JS, TEMPLATE, editor_value, faces_from_value, scheme_parts
from facelm.schemes import IBUG68

REPO = Path(__file__).resolve().parents[1]


def test_node_unit_tests_of_the_editor_state():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (apt-get install nodejs); tests/js needs it")
    run = subprocess.run([node, "--test", str(REPO / "tests" / "js")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout


def test_assets_are_the_package_files():
    folder = REPO / "facelm" / "editor"
    assert TEMPLATE == (folder / "editor.html").read_text()
    assert CSS == (folder / "editor.css").read_text()
    assert JS.startswith((folder / "state.js").read_text()) and JS.endswith((folder / "editor.js").read_text())
    # gr.HTML evaluates its template and CSS as a JavaScript template literal (after Handlebars):
    # these characters would be code there, not text.
    for text in (TEMPLATE, CSS):
        for bad in ("`", "${", "{{", "\\"):
            assert bad not in text


def test_js_runs_as_a_function_body():
    """gr.HTML runs js_on_load with ``Function(...)``: the inlined state.js must not need a module."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    check = "new Function('element', 'trigger', 'props', 'server', 'upload', 'watch', require('fs').readFileSync(0, 'utf8'));"
    run = subprocess.run([node, "-e", check], input=JS, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def _item(tmp_path: Path, faces: list[dict], uncertainty: float, face_unc: list[float]) -> tuple[Item, Path]:
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(path)
    return Item(id="0003", image="images/photo.jpg", name="a very long file name " * 5 + ".jpg", width=60, height=40,
                faces=faces, uncertainty=uncertainty, face_uncertainty=face_unc), path


def test_editor_value_of_a_photo_without_faces_has_no_sentinel(tmp_path):
    item, path = _item(tmp_path, [], 1e9, [])
    v = editor_value("p", item, 2, 40, path, "ibug68", done=12)
    assert v["uncertainty"] is None
    assert v["faces"] == [] and v["face_uncertainty"] == []
    assert (v["item"], v["revision"], v["index"], v["count"], v["done"]) == ("0003", 0, 2, 40, 12)
    assert v["name"] == item.name
    assert v["image"].startswith("data:image/jpeg;base64,")
    assert "message" not in v


def test_editor_value_faces_carry_occluded_flags_and_parts(tmp_path):
    pts = np.random.default_rng(0).uniform(0, 40, (68, 2)).tolist()
    faces = [{"points": pts, "box": [1, 2, 30, 35]}, {"points": pts, "box": [5, 5, 20, 20], "occluded": [True] * 68}]
    item, path = _item(tmp_path, faces, 0.05, [0.05, float("nan")])
    v = editor_value("p", item, 0, 1, path, "ibug68", message="reloaded")
    assert v["uncertainty"] == 0.05
    assert v["face_uncertainty"] == [0.05, None]
    assert v["faces"][0]["occluded"] == [False] * 68
    assert v["faces"][1]["occluded"] == [True] * 68
    assert v["message"] == "reloaded"
    assert len(v["names"]) == 68
    assert v["parts"]["jaw"] == list(range(17)) and v["parts"]["mouth"] == list(range(48, 68))
    assert v["parts"]["eyes"] == list(range(36, 48)) and v["parts"]["nose"] == list(range(27, 36))
    assert v["parts"]["brows"] == list(range(17, 27))


def test_scheme_parts_cover_each_scheme_once():
    for scheme in ("ibug68", "kaggle15", "celeba5"):
        parts = scheme_parts(scheme)
        flat = [i for idx in parts.values() for i in idx]
        assert len(flat) == len(set(flat)), scheme
    assert sorted(i for idx in scheme_parts("ibug68").values() for i in idx) == list(range(IBUG68.num_points))


def test_faces_from_value_keeps_occluded_and_refuses_malformed():
    faces = faces_from_value({"faces": [{"points": [[1, 2]], "box": [0, 0, 3, 3], "occluded": [True]}]})
    assert faces == [{"points": [[1, 2]], "box": [0, 0, 3, 3], "occluded": [True]}]
    assert faces_from_value({"faces": [{"points": [[1, 2]], "box": None}]})[0]["occluded"] is None
    assert faces_from_value({}) == [] and faces_from_value(None) == []
    with pytest.raises(ProjectError):
        faces_from_value({"faces": "nope"})
    with pytest.raises(ProjectError):
        faces_from_value({"faces": [{"points": [[1, 2]], "occluded": ["yes"]}]})
