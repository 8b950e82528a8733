"""The project store's own rules: export names, revisions and who saved last, and items saved by
older versions of the app."""
from __future__ import annotations

import json

import pytest

from _app_helpers import one_face, tiny_photo
from facelm.annotation_store import Item, Project, StaleRevisionError, export_names


def _item(i: int, name: str, stored: str) -> Item:
    return Item(id=f"{i:04d}", image=f"images/{i:04d}_{stored}", name=name, width=1, height=1)


def test_export_names_are_the_photos_own_and_deduplicated_only_on_clashes():
    items = [_item(1, "a.jpg", "a.jpg"), _item(2, "b.JPEG", "b.jpg"), _item(3, "a.jpg", "a.jpg"),
             _item(4, "a-2.jpg", "a-2.jpg"), _item(5, "c.webp", "c.png"), _item(6, "A.JPG", "A.jpg")]
    assert export_names(items) == {"0001": "a.jpg", "0002": "b.JPEG", "0003": "a-3.jpg", "0004": "a-2.jpg",
                                   "0005": "c.png", "0006": "A-4.JPG"}  # case-blind, as on macOS and Windows


def test_revision_guard(tmp_path):
    proj = Project.create(tmp_path, "p", "ibug68")
    item = proj.add_image(tiny_photo(tmp_path / "x.png"), "x.png", [])
    assert item.revision == 0 and item.faces == []
    saved = proj.save_faces(item.id, one_face(1), base_revision=0, writer="tab-a")
    assert (saved.revision, saved.saved_by, saved.faces[0]["occluded"]) == (1, "tab-a", [False] * 68)
    proj.save_faces(item.id, one_face(2), base_revision=0, writer="tab-a")  # tab a's own later edit
    with pytest.raises(StaleRevisionError):
        proj.save_faces(item.id, one_face(3), base_revision=0, writer="tab-b")  # tab b saw revision 0
    with pytest.raises(StaleRevisionError):
        proj.set_status(item.id, "done", base_revision=1, writer="tab-b")
    assert proj.get(item.id).faces[0]["points"][0] == [2.0, 2.5]
    done = proj.set_status(item.id, "done", base_revision=2, writer="tab-b")
    assert (done.revision, done.status, done.saved_by) == (3, "done", "tab-b")


def test_items_saved_by_older_versions_read(tmp_path):
    proj = Project.create(tmp_path, "p", "ibug68")
    item = proj.add_image(tiny_photo(tmp_path / "x.png"), "x.png", one_face(4))
    raw = json.loads((proj.dir / "items" / f"{item.id}.json").read_text())
    for key in ("revision", "saved_by", "sha256"):
        raw.pop(key)
    raw["uncertainty"], raw["face_uncertainty"] = 1e9, [1e9]  # the old "no face found" sentinel
    raw["faces"] = [{"points": f["points"], "box": f["box"]} for f in raw["faces"]]
    (proj.dir / "items" / f"{item.id}.json").write_text(json.dumps(raw))
    old = proj.get(item.id)
    assert old.revision == 0 and old.uncertainty is None and old.face_uncertainty == [None]
    assert old.faces[0]["occluded"] == [False] * 68
