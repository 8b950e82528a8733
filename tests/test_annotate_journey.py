"""An annotator's whole journey through the app's API (what the editor sends, as gradio_client):
32 real photos (30 from AFW, dlib's group photo of six, a photo with no face), forward through all
of them editing a point and flagging one occluded on each, deleting and adding faces, marking some
done, back to the start; export; kill and restart the server; resume from the exported XML plus the
ORIGINAL photos, and find every point, flag and status again."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _app_helpers import shared_app
from facelm.annotation_store import Project
from facelm.image import to_rgb_array

pytestmark = pytest.mark.slow


def _photos(shared_data: Path, tmp_path: Path) -> list[Path]:
    afw = sorted((shared_data / "300w/afw").glob("*.jpg"))[:30]
    group = shared_data / "dlib_examples_faces/2008_002470.jpg"
    empty = tmp_path / "background.png"
    Image.fromarray(to_rgb_array(group)[:120, :120]).save(empty)
    return [*afw, group, empty]


def _group_faces(shared_data: Path) -> int:
    """How many faces dlib's own XML annotates on the group photo (every one must be found)."""
    from facelm.io import read_annotations
    aset = read_annotations(shared_data / "dlib_examples_faces/testing.xml")
    return next(len(im.faces) for im in aset.images if Path(im.path).name == "2008_002470.jpg")


def _send(client, project: str, value: dict, faces: list[dict], **extra):
    edit = {"project": project, "item": value["item"], "revision": value["revision"], "faces": faces,
            "dirty": True, "seq": 1, "op": "edit", **extra}
    return client.predict(project, edit, api_name="/save_edit")


def test_journey_over_32_photos_with_export_restart_and_resume(shared_data, tmp_path):
    from gradio_client import handle_file
    server = shared_app()
    client = server.client()
    photos = _photos(shared_data, tmp_path)
    project, value, queue, _ = client.predict("", [handle_file(str(p)) for p in photos], "", 32, "prediction", "",
                                              api_name="/annotate_load")
    assert len(queue["data"]) == 32 and value["count"] == 32
    faces_per_photo = {row[1]: row[2] for row in queue["data"]}
    assert faces_per_photo["background.png"] == 0 and faces_per_photo["2008_002470.jpg"] == _group_faces(shared_data)

    seen = []
    for step in range(32):
        assert value["index"] == step and len(value["faces"]) == faces_per_photo[value["name"]]
        assert (value["uncertainty"] is None) == (not value["faces"])  # no face: no number
        seen.append(value["item"])
        faces = [dict(f) for f in value["faces"]]
        if value["name"] == "2008_002470.jpg":  # a face deleted, then drawn again
            box = faces[0]["box"]
            value, _, md = _send(client, project, value, faces[1:], op="delete_face")
            assert len(value["faces"]) == faces_per_photo[value["name"]] - 1, md
            value, _, md = _send(client, project, value, value["faces"], op="add_face", box=box)
            assert len(value["faces"]) == faces_per_photo[value["name"]], md
            faces = [dict(f) for f in value["faces"]]
        if not faces:  # the background crop, or a face the detector missed: drawn by hand
            w, h = value["width"], value["height"]
            value, _, md = _send(client, project, value, [], op="add_face", box=[w / 6, h / 6, 5 * w / 6, 5 * h / 6])
            assert len(value["faces"]) == 1, md
            faces = [dict(f) for f in value["faces"]]
        if faces:
            faces[0] = dict(faces[0], points=[list(p) for p in faces[0]["points"]],
                            occluded=[i == step % 68 for i in range(68)])
            faces[0]["points"][30][0] += 1.25 + step
        _, _, md = _send(client, project, value, faces)
        assert "Saved" in md, md
        done = step % 4 == 0
        value, _, md = client.predict(project, {**value, "faces": faces},
                                      api_name="/annotate_done" if done else "/annotate_next")
        assert ("Not saved" not in md) and value["done"] == step // 4 + 1, md
    assert sorted(seen) == sorted(row[0] for row in queue["data"])  # every photo shown once, none skipped
    for step in range(31, -1, -1):
        assert value["item"] == seen[step]
        value, _, _ = client.predict(project, value, api_name="/annotate_prev")
    proj = Project.open(server.annotations, project)
    expected = {it.name: (it.status, [(f["points"], f["occluded"]) for f in it.faces]) for it in proj.items()}
    assert sum(s == "done" for s, _ in expected.values()) == 8
    assert all(any(any(o) for _, o in faces) for _, faces in expected.values())  # a flag on every photo

    client.predict(project, "edited and done", False, api_name="/export")
    xml = proj.export_dir / "annotations.xml"
    assert sorted(p.name for p in (proj.export_dir / "images").iterdir()) == sorted(p.name for p in photos)
    server.kill()
    server.start()
    client = server.client()
    resumed, value, queue, md = client.predict("", [handle_file(str(xml))] + [handle_file(str(p)) for p in photos],
                                               "", 32, "prediction", "", api_name="/annotate_load")
    assert "not uploaded" not in md
    back = {it.name: (it.status, [(f["points"], f["occluded"]) for f in it.faces])
            for it in Project.open(server.annotations, resumed).items()}
    assert back == expected
    assert value["done"] == 8 and np.isin([row[4] for row in queue["data"]], ["edited", "done"]).all()
    client.close()
