"""The Annotate tab's server side on real photos: a group photo (6 people), AFW photos and a photo
without a face; navigation between photos whose face counts differ; refusal of actions for
another photo or made on an older copy; adding and deleting faces; export, then resume from the
XML (or COCO) plus the original photos."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelm import annotate_session as session
from facelm.annotate_import import add_photos, match_uploads
from facelm.annotation_store import Project, faces_to_json
from facelm.image import to_rgb_array
from facelm.io import read_annotations
from facelm.start_points import predict_with_uncertainty

GROUP = "dlib_examples_faces/2008_002470.jpg"
AFW = ["300w/afw/1051618982_1.jpg", "300w/afw/111076519_1.jpg"]


@pytest.fixture(scope="module")
def group_faces(shared_data) -> int:
    """How many faces dlib's own XML annotates on the group photo (every one must be found)."""
    aset = read_annotations(shared_data / "dlib_examples_faces/testing.xml")
    return next(len(im.faces) for im in aset.images if Path(im.path).name == Path(GROUP).name)


@pytest.fixture(scope="module")
def landmarker(one_torch_thread):
    from facelm import FaceLandmarker
    return FaceLandmarker.from_pretrained()


@pytest.fixture(scope="module")
def photos(shared_data, tmp_path_factory) -> list[Path]:
    """The group photo, two AFW photos and a background crop of the group photo (no face)."""
    folder = tmp_path_factory.mktemp("photos")
    out = [shutil.copy(shared_data / p, folder / Path(p).name) for p in [GROUP, *AFW]]
    Image.fromarray(to_rgb_array(shared_data / GROUP)[:120, :120]).save(folder / "background.png")
    return [Path(p) for p in out] + [folder / "background.png"]


def _start(fl):
    return lambda img, boxes=None: predict_with_uncertainty(fl, img, boxes)


@pytest.fixture(scope="module")
def built(landmarker, photos, tmp_path_factory) -> Project:
    root = tmp_path_factory.mktemp("annotations")
    proj = Project.create(root, "built", landmarker.scheme.name)
    add_photos(proj, match_uploads(photos, [], "ibug68", 68).photos, _start(landmarker), to_rgb_array)
    return proj


@pytest.fixture
def proj(built, tmp_path) -> Project:
    """A fresh copy of the built project for each test (the model runs once per module)."""
    shutil.copytree(built.dir, tmp_path / built.id)
    return Project.open(tmp_path, built.id)


def _by_name(proj: Project) -> dict:
    return {it.name: it for it in proj.items()}


def _edit(value: dict, faces: list[dict] | None = None, **extra) -> dict:
    return {"project": value["project"], "item": value["item"], "revision": value["revision"],
            "faces": faces if faces is not None else value["faces"], "dirty": True, "seq": 1, "op": "edit", **extra}


def _moved(faces: list[dict], dx: float) -> list[dict]:
    out = [dict(f, points=[list(p) for p in f["points"]]) for f in faces]
    out[0]["points"][30] = [out[0]["points"][30][0] + dx, out[0]["points"][30][1]]
    return out


def test_start_faces_and_no_face_photo(proj, group_faces, shared_data):
    from facelm.annotation import landmark_box
    from facelm.detect import box_iou
    from facelm.io.pts import read_pts
    items = _by_name(proj)
    assert len(items["2008_002470.jpg"].faces) == group_faces
    for p in AFW:  # the annotated face is among those found (AFW crops can hold other, unannotated faces)
        annotated = landmark_box(read_pts((shared_data / p).with_suffix(".pts"))[None])
        assert box_iou(annotated, items[Path(p).name].boxes()).max() > 0.5, p
    empty = items["background.png"]
    assert empty.faces == [] and empty.uncertainty is None  # no guessed scribble, no sentinel number
    assert proj.queue()[0].name == "background.png"
    row = next(r for r in session.queue_rows(proj) if r[1] == "background.png")
    assert row[2] == 0 and row[3] == "—"
    view = session.show(proj, empty.id)
    assert view.value["uncertainty"] is None and view.value["faces"] == [] and view.value["face_uncertainty"] == []
    group = session.show(proj, items["2008_002470.jpg"].id).value
    assert len(group["faces"]) == len(group["face_uncertainty"]) == group_faces
    assert all(len(f["occluded"]) == 68 and not any(f["occluded"]) for f in group["faces"])


def test_forward_and_back_through_differing_face_counts(proj, group_faces):
    view = session.open_first(proj)
    seen = [view.value]
    for _ in range(len(proj.items())):  # the last press is past the end: it stays on the last
        view = session.step(proj, view.state, view.value, +1)
        seen.append(view.value)
    for _ in range(len(proj.items())):
        view = session.step(proj, view.state, view.value, -1)
        seen.append(view.value)
    expected = {it.id: len(it.faces) for it in proj.items()}
    for v in seen:
        assert len(v["faces"]) == expected[v["item"]]
        assert v["count"] == 4 and v["done"] == 0
    indices = [v["index"] for v in seen]
    assert indices == [0, 1, 2, 3, 3, 2, 1, 0, 0]
    assert {0, 1, group_faces} <= {len(v["faces"]) for v in seen}
    assert view.state["item"] == view.value["item"]


def test_actions_for_another_photo_are_refused(proj):
    view = session.open_first(proj)
    other = next(it for it in proj.items() if it.id != view.value["item"] and it.faces)
    before = proj.get(other.id)
    stale = session.show(proj, other.id).value  # a value the session does not hold
    for action in (lambda: session.save_edit(proj, view.state, _edit(stale, _moved(stale["faces"], 5))),
                   lambda: session.step(proj, view.state, _edit(stale, _moved(stale["faces"], 5)), +1, status="done"),
                   lambda: session.step(proj, view.state, {**stale, "dirty": False}, +1)):
        refused = action()
        assert "Not saved" in refused.message and refused.value["item"] == view.value["item"]
        assert proj.get(other.id) == before  # nothing written to the photo not shown


def test_stale_revision_is_refused_and_own_pipelined_edits_are_not(proj):
    group = _by_name(proj)["2008_002470.jpg"]
    a = session.show(proj, group.id)
    b = session.show(proj, group.id)  # a second tab on the same photo
    r0 = a.value["revision"]
    for dx in (1.0, 2.0):  # two edits sent before the first was acknowledged: both carry r0
        out = session.save_edit(proj, a.state, _edit(a.value, _moved(a.value["faces"], dx)))
        assert out.value is None and out.state is None and "Saved" in out.message  # nothing to echo back
    saved = proj.get(group.id)
    assert saved.revision == r0 + 2 and saved.status == "edited"
    assert saved.faces[0]["points"][30][0] == pytest.approx(a.value["faces"][0]["points"][30][0] + 2.0)
    late = session.save_edit(proj, b.state, _edit(b.value, _moved(b.value["faces"], 50)))
    assert "Not saved" in late.message and late.value["revision"] == r0 + 2
    assert proj.get(group.id) == saved
    # The reloaded copy can be edited again; a copy older than the one shown cannot.
    again = session.save_edit(proj, late.state, _edit(late.value, _moved(late.value["faces"], 3)))
    assert "Saved" in again.message and proj.get(group.id).revision == r0 + 3
    older = session.save_edit(proj, late.state, _edit({**late.value, "revision": r0}, late.value["faces"]))
    assert "Not saved" in older.message and proj.get(group.id).revision == r0 + 3


def test_done_counts_and_status(proj):
    view = session.open_first(proj)
    for n in range(1, 3):
        view = session.step(proj, view.state, view.value, +1, status="done")
        assert view.value["done"] == n
    assert proj.counts()["done"] == 2 and "2 of 4 done" in view.message


def test_delete_and_add_faces(proj, landmarker, group_faces):
    group = _by_name(proj)["2008_002470.jpg"]
    view = session.show(proj, group.id)
    faces = view.value["faces"]
    gone = faces[3]
    out = session.save_edit(proj, view.state, _edit(view.value, faces[:3] + faces[4:], op="delete_face"))
    assert len(out.value["faces"]) == len(out.value["face_uncertainty"]) == group_faces - 1
    assert len(proj.get(group.id).faces) == group_faces - 1

    def add(item, box):
        sp = predict_with_uncertainty(landmarker, to_rgb_array(proj.image_path(item)), np.asarray([box], np.float32))
        return faces_to_json(sp.points, sp.boxes)[0], sp.face_uncertainty()[0]
    out = session.save_edit(proj, out.state, _edit(out.value, out.value["faces"], op="add_face", box=gone["box"]),
                            add)
    assert len(out.value["faces"]) == group_faces and out.value["face_uncertainty"][-1] is not None
    new = np.asarray(out.value["faces"][-1]["points"])
    x1, y1, x2, y2 = gone["box"]
    centre = new.mean(0)
    assert x1 < centre[0] < x2 and y1 < centre[1] < y2  # the model's points, in the drawn box
    assert np.abs(new - np.asarray(gone["points"])).mean() < 0.1 * (x2 - x1)  # the face that was deleted
    # The photo without a face gets one too (0 -> 1), and can lose it again (1 -> 0).
    empty = session.show(proj, _by_name(proj)["background.png"].id)
    out = session.save_edit(proj, empty.state, _edit(empty.value, [], op="add_face", box=[10, 10, 90, 100]), add)
    assert len(out.value["faces"]) == 1
    out = session.save_edit(proj, out.state, _edit(out.value, [], op="delete_face"))
    assert out.value["faces"] == [] and proj.get(empty.value["item"]).faces == []


def _annotate_everything(proj: Project) -> dict[str, tuple]:
    """Move a point, flag some points occluded and set a status on every photo; {name: expected}."""
    expected = {}
    statuses = ["done", "edited", "done", "done"]
    for k, it in enumerate(proj.items()):
        view = session.show(proj, it.id)
        faces = _moved(view.value["faces"], 0.375 + k) if view.value["faces"] else []
        for j, f in enumerate(faces):
            f["occluded"] = [i % (3 + j) == 0 for i in range(68)]
        session.save_edit(proj, view.state, _edit(view.value, faces))
        if statuses[k] == "done":
            proj.set_status(it.id, "done")
        saved = proj.get(it.id)
        expected[it.name] = (saved.status, [(f["points"], f["occluded"]) for f in saved.faces])
    return expected


def _resume(tmp_path: Path, name: str, uploads: list[Path], files: list[Path], landmarker) -> tuple[Project, list]:
    new = Project.create(tmp_path, name, "ibug68")
    plan = match_uploads(uploads, files, "ibug68", 68)
    add_photos(new, plan.photos, _start(landmarker), to_rgb_array)
    return new, plan.missing


def _state(proj: Project) -> dict[str, tuple]:
    return {it.name: (it.status, [(f["points"], f["occluded"]) for f in it.faces]) for it in proj.items()}


def test_export_then_resume_from_xml_or_coco_with_the_original_photos(proj, photos, landmarker, tmp_path):
    expected = _annotate_everything(proj)
    files = proj.export(("edited", "done"))
    xml = read_annotations(files["xml"])
    assert sorted(Path(im.path).name for im in xml.images) == sorted(p.name for p in photos)  # no 0001_ prefix
    assert all(im.path.startswith("images/") and (Path(xml.root) / im.path).is_file() for im in xml.images)
    for f in ("xml", "coco"):
        resumed, missing = _resume(tmp_path, f"from-{f}", photos, [files[f]], landmarker)
        assert missing == []
        assert _state(resumed) == expected, f
    # Both files of one export at once: the first gives each photo, nothing is reported missing.
    both, missing = _resume(tmp_path, "from-both", photos, [files["xml"], files["coco"]], landmarker)
    assert missing == [] and _state(both) == expected
    # A photo named in the XML but not uploaded is named.
    _, missing = _resume(tmp_path, "partial", photos[1:], [files["xml"]], landmarker)
    assert missing == [photos[0].name]


def test_resume_from_the_export_folder_round_trips_without_prefixes(proj, landmarker, tmp_path):
    expected = _annotate_everything(proj)
    files = proj.export(("edited", "done"))
    exported = sorted((proj.export_dir / "images").iterdir())
    again, missing = _resume(tmp_path, "again", exported, [files["xml"]], landmarker)
    assert missing == [] and _state(again) == expected
    names = sorted(p.name for p in (again.export(("edited", "done"))["xml"].parent / "images").iterdir())
    assert names == [p.name for p in exported]  # the same names after a second round trip


def test_name_clash_is_resolved_by_content(landmarker, shared_data, tmp_path):
    """Two different photos both called face.jpg export as face.jpg and face-2.jpg, and come back to
    the right photo when the originals (same name) are uploaded again."""
    uploads = []
    for k, src in enumerate(AFW):
        (tmp_path / f"d{k}").mkdir()
        uploads.append(Path(shutil.copy(shared_data / src, tmp_path / f"d{k}" / "face.jpg")))
    proj, _ = _resume(tmp_path, "clash", uploads, [], landmarker)
    for it in proj.items():
        view = session.show(proj, it.id)
        session.save_edit(proj, view.state, _edit(view.value, _moved(view.value["faces"], 10 * int(it.id))))
    files = proj.export(("edited", "done"))
    assert sorted(p.name for p in (proj.export_dir / "images").iterdir()) == ["face-2.jpg", "face.jpg"]
    back, missing = _resume(tmp_path, "clash-back", list(reversed(uploads)), [files["xml"]], landmarker)
    assert missing == []
    by_hash = {it.sha256: it.faces for it in back.items()}
    for it in proj.items():
        assert by_hash[it.sha256] == it.faces


def test_thirty_faces_and_back_to_none(proj, photos, landmarker, group_faces):
    """A photo given 30 faces (the group photo's, repeated and shifted, as a file would give them),
    between photos of 0 and 1 face: shown, edited, one deleted, and navigated past in both directions."""
    from facelm.annotate_import import Given, Photo
    group = proj.get(_by_name(proj)["2008_002470.jpg"].id)
    pts = np.concatenate([group.landmarks() + np.float32([3 * k, 2 * k]) for k in range(5)])[:30]
    boxes = np.concatenate([group.boxes() + np.float32([3 * k, 2 * k, 3 * k, 2 * k]) for k in range(5)])[:30]
    flags = np.zeros((30, 68), bool)
    flags[7, :10] = True
    given = Given(pts, boxes, flags, "edited")
    item = add_photos(proj, [Photo(photos[0], "crowd.jpg", given)], _start(landmarker), to_rgb_array)[0]
    view = session.show(proj, item.id)
    assert len(view.value["faces"]) == len(view.value["face_uncertainty"]) == 30
    assert view.value["faces"][7]["occluded"][:10] == [True] * 10
    out = session.save_edit(proj, view.state, _edit(view.value, view.value["faces"][:29], op="delete_face"))
    assert len(out.value["faces"]) == 29 and len(proj.get(item.id).faces) == 29
    counts = []
    for delta in [+1] * 5 + [-1] * 5:
        out = session.step(proj, out.state, out.value, delta)
        counts.append(len(out.value["faces"]))
    assert {0, 1, group_faces, 29} <= set(counts)
