"""The Gradio app through its API: launched in-process on a free localhost port, driven with
gradio_client exactly as a remote user would (uploads, named endpoints, errors)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from facelm.io import read_annotations  # noqa: E402
from facelm.io.pts import read_pts  # noqa: E402
from _app_helpers import app_in_process  # noqa: E402
from facelm.metrics import nme  # noqa: E402

FACE = "300w/afw/1051618982_1"
FACE2 = "300w/afw/111076519_1"


@pytest.fixture(scope="module")
def served(shared_data, tmp_path_factory):
    """(app module, base URL) with annotations going to a temporary folder."""
    with app_in_process(shared_data / "300w", tmp_path_factory.mktemp("annotations")) as served:
        yield served


@pytest.fixture(scope="module")
def client(served):
    return Client(served[1], verbose=False)


def _error(excinfo) -> str:
    return str(excinfo.value)


def test_endpoints_are_named(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/predict", "/compare", "/compare_upload", "/evaluate", "/annotate_load", "/save_edit", "/export",
            "/annotate_next", "/annotate_resume", "/load_model", "/retrain_command"} <= names


def test_predict_real_face(client, shared_data):
    img = shared_data / f"{FACE}.jpg"
    drawn, summary, result, files = client.predict(handle_file(str(img)), "ibug68", "", False, api_name="/predict")
    assert Path(drawn).is_file()
    assert "Found" in summary
    assert result["width"] == 480 and result["scheme"] == "ibug68"
    assert len(result["faces"]) >= 1
    pts = np.asarray(result["faces"][0]["landmarks"], np.float32)
    assert pts.shape == (68, 2)
    gt = read_pts(shared_data / f"{FACE}.pts")
    # The detected face is the annotated one, and the points are where a face's points go.
    assert nme(pts, gt, "ibug68")[0] < 0.25
    suffixes = sorted(Path(f).suffix for f in files)
    assert suffixes == [".json", ".json", ".pts", ".xml"]
    xml = next(f for f in files if f.endswith(".xml"))
    np.testing.assert_array_equal(read_annotations(xml).images[0].faces[0].landmarks, pts)


def test_predict_other_scheme(client, shared_data):
    _, _, result, files = client.predict(handle_file(str(shared_data / f"{FACE}.jpg")), "celeba5", "", False,
                                         api_name="/predict")
    assert np.asarray(result["faces"][0]["landmarks"]).shape == (5, 2)


def test_compare_returns_nme(client, served):
    app = served[0]
    drawn, table, summary = client.predict(app.DEMO_DATA, 3, "", api_name="/compare")
    assert Path(drawn).is_file()
    assert summary.startswith("### NME")
    row = table["data"][0]
    assert row[0] == 1 and 0 < row[1] < 50
    assert len(row[2].split(",")) == 3  # the three worst points, named


def test_compare_upload_pts(client, shared_data):
    _, table, summary = client.predict(handle_file(str(shared_data / f"{FACE}.jpg")),
                                       handle_file(str(shared_data / f"{FACE}.pts")), "", api_name="/compare_upload")
    assert "NME" in summary and 0 < table["data"][0][1] < 50


def test_evaluate(client, served):
    table, plot, summary = client.predict(served[0].DEMO_DATA, 12, "", api_name="/evaluate")
    assert Path(plot).is_file()
    rows = {r[0]: r for r in table["data"]}
    assert "all" in rows and rows["all"][1] == 12
    assert 0 < rows["all"][2] < 50


def test_annotate_edit_export_roundtrip(client, served, shared_data):
    app = served[0]
    files = [handle_file(str(shared_data / f"{n}.jpg")) for n in (FACE, FACE2)]
    project, value, queue, md = client.predict("", files, "", 2, "prediction", "", api_name="/annotate_load")
    assert len(queue["data"]) == 2
    unc = [r[3] for r in queue["data"]]
    assert unc == sorted(unc, reverse=True)  # worst first
    assert value["project"] == project and len(value["faces"][0]["points"]) == 68
    faces = value["faces"]
    moved = np.asarray(faces[0]["points"], np.float64)
    moved[30] += (12.375, -7.5)
    faces[0]["points"] = moved.tolist()
    _, queue, md = client.predict(project, {"item": value["item"], "faces": faces, "dirty": True}, api_name="/save_edit")
    assert "Saved" in md
    assert {r[0]: r[4] for r in queue["data"]}[value["item"]] == "edited"

    exported, md = client.predict(project, "edited and done", False, api_name="/export")
    xml = next(f for f in exported if f.endswith(".xml"))
    aset = read_annotations(xml)
    assert len(aset.images) == 1  # only the edited image
    np.testing.assert_array_equal(aset.images[0].faces[0].landmarks, moved.astype(np.float32))  # exact
    coco = read_annotations(next(f for f in exported if f.endswith("_coco.json")))
    np.testing.assert_array_equal(coco.images[0].faces[0].landmarks, moved.astype(np.float32))
    # The saved XML beside the images reads back with its images, as training reads it.
    saved = read_annotations(app.ANNOTATIONS_DIR / project / "annotations.xml")
    assert (Path(saved.root) / saved.images[0].path).is_file()

    exported, _ = client.predict(project, "all", True, api_name="/export")
    rounded = read_annotations(next(f for f in exported if f.endswith(".xml")))
    assert len(rounded.images) == 2
    got = next(im for im in rounded.images if im.path == aset.images[0].path).faces[0].landmarks
    assert np.abs(got - moved).max() <= 0.5 and np.all(got == np.round(got))

    # Resume (as after a restart) gives the edit back; next walks the queue.
    _, value2, _, _ = client.predict(project, api_name="/annotate_resume")
    items = {value2["item"]: value2}
    nxt, _, _ = client.predict(project, value2, api_name="/annotate_next")
    items[nxt["item"]] = nxt
    np.testing.assert_array_equal(np.asarray(items[value["item"]]["faces"][0]["points"], np.float32),
                                  moved.astype(np.float32))


def test_reimport_export_resumes_points(client, served, shared_data):
    project, value, _, _ = client.predict("", [handle_file(str(shared_data / f"{FACE}.jpg"))], "", 1, "prediction", "",
                                          api_name="/annotate_load")
    client.predict(project, {"item": value["item"], "faces": value["faces"], "dirty": True}, api_name="/save_edit")
    exported, _ = client.predict(project, "edited and done", False, api_name="/export")
    proj_dir = served[0].ANNOTATIONS_DIR / project
    image = next((proj_dir / "images").iterdir())
    xml = next(f for f in exported if f.endswith(".xml"))
    _, value2, queue, _ = client.predict("", [handle_file(xml), handle_file(str(image))], "", 1, "prediction", "",
                                         api_name="/annotate_load")
    assert queue["data"][0][4] == "edited"
    np.testing.assert_array_equal(np.asarray(value2["faces"][0]["points"], np.float32),
                                  np.asarray(value["faces"][0]["points"], np.float32))


def test_retrain_command(client):
    project, *_ = client.predict(api_name="/new_project")
    cmd = client.predict(project, "", 3, 50, api_name="/retrain_command")
    assert cmd.startswith("python -m train.train")
    assert "--epochs 3" in cmd and "--max-faces 50" in cmd and "--init-from" in cmd
    assert f"{project}/annotations.xml" in cmd


# ------------------------------------------------------------------------------ bad input

def test_non_image_upload_is_refused_readably(client, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not a photo")
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(bad)), "ibug68", "", False, api_name="/predict")
    assert "not an image" in _error(e)


def test_huge_image_is_refused_readably(client, tmp_path):
    from PIL import Image
    big = tmp_path / "huge.png"
    Image.new("1", (9000, 8000)).save(big)  # 72 M pixels in a few kB: a decompression bomb
    assert big.stat().st_size < 2_000_000
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(big)), "ibug68", "", False, api_name="/predict")
    assert "pixels" in _error(e) and "limit" in _error(e)


def test_upload_over_size_limit_is_refused(client, tmp_path):
    blob = tmp_path / "big.jpg"
    blob.write_bytes(b"\xff\xd8" + os.urandom(21 * 1024 * 1024))
    with pytest.raises(Exception) as e:
        client.predict(handle_file(str(blob)), "ibug68", "", False, api_name="/predict")
    assert "size" in str(e.value).lower() or "413" in str(e.value) or "large" in str(e.value).lower()


def test_malformed_pts_and_xml(client, shared_data, tmp_path):
    photo = handle_file(str(shared_data / f"{FACE}.jpg"))
    bad_pts = tmp_path / "face.pts"
    bad_pts.write_text("version: 1\nn_points: 68\n{\n1 2\nthree 4\n}\n")
    with pytest.raises(AppError) as e:
        client.predict(photo, handle_file(str(bad_pts)), "", api_name="/compare_upload")
    assert "face.pts" in _error(e) and "line" in _error(e)
    bad_xml = tmp_path / "faces.xml"
    bad_xml.write_text("<dataset><images><image file='a.jpg'><box top='1' left='2'")
    with pytest.raises(AppError) as e:
        client.predict(photo, handle_file(str(bad_xml)), "", api_name="/compare_upload")
    assert "faces.xml" in _error(e)
    with pytest.raises(AppError) as e:
        client.predict("", [handle_file(str(bad_xml))], "", 1, "prediction", "", api_name="/annotate_load")
    assert "faces.xml" in _error(e)


def test_unknown_hub_model_is_reported(client, shared_data):
    with pytest.raises(AppError) as e:
        client.predict("no-such-org/no-such-facelm-model", api_name="/load_model")
    assert "Could not load" in _error(e) and "no-such-org/no-such-facelm-model" in _error(e)
    with pytest.raises(AppError):
        client.predict(handle_file(str(shared_data / f"{FACE}.jpg")), "ibug68", "./no/such/folder", False,
                       api_name="/predict")


def test_bad_edits_are_refused(client, shared_data):
    project, value, _, _ = client.predict("", [handle_file(str(shared_data / f"{FACE}.jpg"))], "", 1, "prediction",
                                          "", api_name="/annotate_load")
    with pytest.raises(AppError) as e:
        client.predict(project, {"item": value["item"], "faces": [{"points": [[1, 2]]}], "dirty": True},
                       api_name="/save_edit")
    assert "68 points" in _error(e)
    with pytest.raises(AppError) as e:
        client.predict("../../etc", {"item": "0001", "faces": [], "dirty": True}, api_name="/save_edit")
    assert "project" in _error(e)


def test_app_still_works_after_errors(client, shared_data):
    *_, result, _ = client.predict(handle_file(str(shared_data / f"{FACE2}.jpg")), "ibug68", "", False,
                                   api_name="/predict")
    assert len(result["faces"]) >= 1


@pytest.mark.slow
def test_retrain_from_the_app(client, shared_data):
    """A one-epoch fine-tune on two corrected faces, run by the app, then before/after NME."""
    files = [handle_file(str(shared_data / f"{n}.jpg")) for n in (FACE, FACE2)]
    project, *_ = client.predict("", files, "", 2, "prediction", "", api_name="/annotate_load")
    client.predict(project, "all", False, api_name="/export")
    log, table, md, best = client.predict(project, "", 1, 10, api_name="/retrain")
    assert "epoch 1:" in log, log[-2000:]
    assert Path(best, "model.safetensors").is_file()
    before, after = table["data"]
    assert before[1] == after[1] == 2 and after[2] > 0
    assert "Fine-tuned model saved" in md
