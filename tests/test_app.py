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
from facelm.metrics import nme  # noqa: E402

FACE = "300w/afw/1051618982_1"
FACE2 = "300w/afw/111076519_1"


def _error(excinfo) -> str:
    return str(excinfo.value)


def test_endpoints_are_named(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/predict", "/keep_faces", "/compare", "/compare_upload", "/evaluate", "/annotate_load", "/save_edit", "/export",
            "/annotate_next", "/annotate_resume", "/load_model", "/retrain_command"} <= names


def test_predict_real_face(client, shared_data):
    img = shared_data / f"{FACE}.jpg"
    drawn, summary, result, files, table, keep = client.predict(handle_file(str(img)), "ibug68", "", False, 0.58,
                                                                api_name="/predict")
    assert Path(drawn).is_file()
    assert "Found" in summary and "yunet" in summary  # the tests point FACELM_YUNET at the shared weights
    assert result["scheme"] == "ibug68" and result["detector"] == "yunet"
    image = result["images"][0]
    assert image["width"] == 480 and len(image["faces"]) >= 1
    pts = np.asarray(image["faces"][0]["landmarks"], np.float32)
    assert pts.shape == (68, 2)
    gt = read_pts(shared_data / f"{FACE}.pts")
    # The detected face is the annotated one, and the points are where a face's points go.
    assert nme(pts, gt, "ibug68")[0] < 0.25
    # Each face's score is shown in the table, as in the JSON.
    assert [row[1] for row in table["data"]] == [round(f["score"], 3) for f in image["faces"]]
    suffixes = sorted(Path(f).suffix for f in files)
    assert suffixes == [".json", ".json", ".pts", ".xml"]
    xml = next(f for f in files if f.endswith(".xml"))
    np.testing.assert_array_equal(read_annotations(xml).images[0].faces[0].landmarks, pts)


def test_predict_threshold_and_dropped_faces(client, shared_data):
    """A group photo: a higher threshold keeps fewer faces; faces dropped by the user leave the downloads."""
    photo = handle_file(str(shared_data / "dlib_examples_faces" / "2008_002470.jpg"))
    _, _, result, files, table, keep = client.predict(photo, "ibug68", "", False, 0.5, api_name="/predict")
    faces = result["images"][0]["faces"]
    # The faces to keep: every face at first, each labelled with its score.
    assert len(faces) >= 6 and keep["value"] == list(range(len(faces)))
    assert [label for label, _ in keep["choices"]][0] == f"face 1 · score {faces[0]['score']:.2f}"
    assert any(f.endswith("_pts.zip") for f in files)
    ranked = sorted(f["score"] for f in faces)
    cut = (ranked[len(faces) // 2 - 1] + ranked[len(faces) // 2]) / 2  # between two scores: no rounding tie
    _, _, strict, _, _, _ = client.predict(photo, "ibug68", "", False, cut, api_name="/predict")
    assert len(strict["images"][0]["faces"]) == sum(f["score"] >= cut for f in faces) < len(faces)
    # The browser session holds the last prediction; drop all but faces 1 and 3 of it.
    import gradio_client
    session = gradio_client.Client(client.src, verbose=False)
    session.predict(photo, "ibug68", "", False, 0.5, api_name="/predict")
    drawn, summary, kept, files, table = session.predict([0, 2], api_name="/keep_faces")
    assert "dropped" in summary and len(kept["images"][0]["faces"]) == 2
    assert [row[3] for row in table["data"]].count("dropped") == len(table["data"]) - 2
    coco = read_annotations(next(f for f in files if f.endswith("_coco.json")))
    assert len(coco.images[0].faces) == 2


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
    _, queue, md = client.predict(project, {"item": value["item"], "revision": value["revision"], "faces": faces,
                                            "dirty": True}, api_name="/save_edit")
    assert "Saved" in md
    assert {r[0]: r[4] for r in queue["data"]}[value["item"]] == "edited"

    exported, md = client.predict(project, "edited and done", False, api_name="/export")
    xml = next(f for f in exported if f.endswith(".xml"))
    aset = read_annotations(xml)
    assert len(aset.images) == 1  # only the edited image
    np.testing.assert_array_equal(aset.images[0].faces[0].landmarks, moved.astype(np.float32))  # exact
    coco = read_annotations(next(f for f in exported if f.endswith("_coco.json")))
    np.testing.assert_array_equal(coco.images[0].faces[0].landmarks, moved.astype(np.float32))
    # The saved XML beside the images reads back with its images, as training reads it; the images
    # keep the photos' own names.
    saved = read_annotations(app.ANNOTATIONS_DIR / project / "export" / "annotations.xml")
    assert (Path(saved.root) / saved.images[0].path).is_file()
    assert Path(saved.images[0].path).name in {f"{Path(n).name}.jpg" for n in (FACE, FACE2)}
    assert saved.images[0].status == "edited"

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
    client.predict(project, {"item": value["item"], "revision": value["revision"], "faces": value["faces"],
                             "dirty": True}, api_name="/save_edit")
    client.predict(project, None, api_name="/annotate_done")
    exported, _ = client.predict(project, "edited and done", False, api_name="/export")
    xml = next(f for f in exported if f.endswith(".xml"))
    # The exported XML with the ORIGINAL photo: matched by its own name, status "done" kept.
    _, value2, queue, md = client.predict("", [handle_file(xml), handle_file(str(shared_data / f"{FACE}.jpg"))], "", 1,
                                          "prediction", "", api_name="/annotate_load")
    assert queue["data"][0][4] == "done" and "1 with the points of the uploaded annotation files" in md
    np.testing.assert_array_equal(np.asarray(value2["faces"][0]["points"], np.float32),
                                  np.asarray(value["faces"][0]["points"], np.float32))


def test_compare_upload_flags_another_photos_points(client, shared_data):
    """The .pts of another photo is flagged, not scored: no nonsense NME."""
    _, table, summary = client.predict(handle_file(str(shared_data / "dlib_examples_faces/2008_002470.jpg")),
                                       handle_file(str(shared_data / f"{FACE}.pts")), "", api_name="/compare_upload")
    assert summary.startswith("### Not scored") and "%" not in summary.split("\n")[0]
    assert table["data"][0][1] == "—" and "not scored" in table["data"][0][2]


def test_retrain_command(client):
    project, *_ = client.predict(api_name="/new_project")
    cmd = client.predict(project, "", 3, 50, api_name="/retrain_command")
    assert cmd.splitlines()[0].endswith(" -m train.train \\")  # the interpreter that runs it, then the module
    assert "--epochs 3" in cmd and "--max-faces 50" in cmd and "--init-from" in cmd
    assert f"{project}/export/retrain_train.xml" in cmd and f"{project}/retrain/run-1" in cmd
    assert cmd == client.predict(project, "", 3, 50, api_name="/retrain_command")  # what runs is what is shown


def test_two_tabs_on_one_photo_never_overwrite_each_other(served, shared_data):
    """Two sessions show the same photo; the first saves; the second's edit, made on the older copy,
    is refused: nothing written, and it gets the saved copy back with a message."""
    a, b = Client(served[1], verbose=False), Client(served[1], verbose=False)
    project, va, _, _ = a.predict("", [handle_file(str(shared_data / f"{FACE}.jpg"))], "", 1, "prediction", "",
                                  api_name="/annotate_load")
    vb = b.predict(project, api_name="/annotate_resume")[1]
    assert vb["item"] == va["item"] and vb["revision"] == va["revision"]
    mine = [dict(f, points=[[x + 4.0, y] for x, y in f["points"]]) for f in va["faces"]]
    _, _, md = a.predict(project, {**va, "faces": mine, "dirty": True}, api_name="/save_edit")
    assert "Saved" in md
    theirs = [dict(f, points=[[x - 9.0, y] for x, y in f["points"]]) for f in vb["faces"]]
    reloaded, _, md = b.predict(project, {**vb, "faces": theirs, "dirty": True}, api_name="/save_edit")
    assert "Not saved" in md and "someone else" in reloaded["message"]
    assert reloaded["revision"] == va["revision"] + 1 and reloaded["faces"][0]["points"] == mine[0]["points"]
    saved = served[0].Project.open(served[0].ANNOTATIONS_DIR, project).get(va["item"])
    assert saved.faces[0]["points"] == mine[0]["points"]
    # "Done" from the stale tab is refused the same way; after the reload it goes through.
    _, _, md = b.predict(project, vb, api_name="/annotate_done")
    assert "Not saved" in md
    assert served[0].Project.open(served[0].ANNOTATIONS_DIR, project).get(va["item"]).status == "edited"
    b.predict(project, reloaded, api_name="/annotate_done")
    assert served[0].Project.open(served[0].ANNOTATIONS_DIR, project).get(va["item"]).status == "done"


def test_shared_app_refuses_typed_names_and_slows_guessing(served, client, shared_data, monkeypatch):
    app = served[0]
    monkeypatch.setattr(app, "RESTRICTED", True)
    try:
        with pytest.raises(AppError, match="not allowed"):
            client.predict("faces", [handle_file(str(shared_data / f"{FACE}.jpg"))], "", 1, "prediction", "",
                           api_name="/annotate_load")
        with pytest.raises(AppError, match="not allowed"):
            client.predict("faces", api_name="/annotate_resume")
        errors = []
        for _ in range(5):
            with pytest.raises(AppError) as e:
                client.predict(app.new_project_id(), api_name="/annotate_resume")
            errors.append(_error(e))
        assert all("no saved project" in m for m in errors[:3]) and "wait" in errors[4]
    finally:
        app._resume_throttle.succeeded("127.0.0.1")


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
        client.predict(project, {"item": value["item"], "revision": value["revision"],
                                 "faces": [{"points": [[1, 2]]}], "dirty": True}, api_name="/save_edit")
    assert "68 points" in _error(e)
    with pytest.raises(AppError) as e:
        client.predict("../../etc", {"item": "0001", "faces": [], "dirty": True}, api_name="/save_edit")
    assert "project" in _error(e)


def test_app_still_works_after_errors(client, shared_data):
    _, _, result, *_ = client.predict(handle_file(str(shared_data / f"{FACE2}.jpg")), "ibug68", "", False,
                                      api_name="/predict")
    assert len(result["images"][0]["faces"]) >= 1


@pytest.mark.slow
def test_retrain_from_the_app(client, shared_data):
    """A one-epoch fine-tune on two corrected faces, run by the app, then before/after NME."""
    files = [handle_file(str(shared_data / f"{n}.jpg")) for n in (FACE, FACE2)]
    project, *_ = client.predict("", files, "", 2, "prediction", "", api_name="/annotate_load")
    client.predict(project, "all", False, api_name="/export")
    shown = client.predict(project, "", 1, 10, api_name="/retrain_command")
    log, table, md, best = client.predict(project, "", 1, 10, api_name="/retrain")
    assert "epoch 1:" in log, log[-2000:]
    assert log.startswith(f"$ {shown}\n")  # the command shown is the one that ran, --out included
    assert Path(best, "model.safetensors").is_file() and f"--out {Path(best).parent}" in shown.replace("\\\n  ", " ")
    before, after = table["data"]
    assert [before[0], after[0]] == ["before", "after"]
    assert before[1] == after[1] == 1 and after[2] > 0  # the one face held out of the two
    assert "held out" in md and ("worse" in md) == (after[2] > before[2])
