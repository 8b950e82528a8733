"""One browser session of the Annotate tab: which photo it shows, and which actions it accepts.

The server is the one source of truth for the photo on screen. Each session keeps a small
``Shown`` record (the app stores it in a ``gr.State``): the project, the item it last showed, the
revision it showed, and the session's own token. An action for another photo, for another project,
or made on a copy older than the one shown is refused: nothing is written, and the session answers
with a fresh copy of the photo it holds (with a ``message``) for the editor to load. A save is
written only while the stored revision is the one the edit was made on, or the last save was this
session's own (``Project.save_faces(base_revision=..., writer=...)``, checked under the project's
lock), so a second tab or a second person who saved in between is never overwritten: the late edit
is refused and reloaded instead.

The browser keeps sending edits while earlier ones are still being saved, all made on the revision
it was shown: those are the same person's newer work and are accepted. An accepted edit changes
neither the editor (it already shows the edit) nor the session record, so nothing needs echoing back.

Every function returns a ``View``: the editor value to show and the session record to keep (None:
leave as they are), the queue's rows and a progress line.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass

from .annotation_store import Item, Project, ProjectError, StaleRevisionError
from .editor import editor_value, faces_from_value

__all__ = ["Shown", "View", "queue_rows", "progress_md", "show", "open_first", "save_edit", "step", "goto",
           "replace_faces", "QUEUE_HEADERS"]

QUEUE_HEADERS = ["#", "image", "faces", "uncertainty %", "status"]
OPS = ("edit", "delete_face", "add_face")


@dataclass
class Shown:
    project: str
    item: str
    shown_revision: int
    session: str
    """A random token of this browser session: saves record it (``Item.saved_by``)."""

    @classmethod
    def from_state(cls, state: dict | None) -> Shown | None:
        try:
            return cls(**state) if isinstance(state, dict) and state else None
        except TypeError:
            return None


@dataclass
class View:
    value: dict | None
    """The editor value to show; None leaves the editor alone (an accepted edit is already on screen)."""
    rows: list[list]
    message: str
    state: dict | None
    """The session record to keep; None leaves it as it is."""


def queue_rows(proj: Project, queue: list[Item] | None = None) -> list[list]:
    """The queue as the app shows it: id, name, faces, uncertainty % ("—" without a face), status
    (``queue``: ``proj.queue()`` when the caller has read it already)."""
    return [[it.id, it.name, len(it.faces), "—" if it.uncertainty is None else round(100 * it.uncertainty, 2),
             it.status] for it in (proj.queue() if queue is None else queue)]


def progress_md(proj: Project, note: str = "", queue: list[Item] | None = None) -> str:
    c = proj.counts(queue)
    total = sum(c.values())
    return (f"**Project `{proj.id}`** · {c['done']} of {total} done · {c['edited']} edited · "
            f"{c['predicted']} to check" + (f"\n\n{note}" if note else ""))


def show(proj: Project, item_id: str | None, note: str = "", message: str = "", state: dict | None = None) -> View:
    """Open ``item_id`` (the queue's first when None or unknown) and hold it for the session whose
    record is ``state`` (a new session when None)."""
    queue = proj.queue()
    if not queue:
        return View({}, [], progress_md(proj, note, queue), None)
    ids = [it.id for it in queue]
    pos = ids.index(item_id) if item_id in ids else 0
    item = queue[pos]
    done = proj.counts(queue)["done"]
    value = editor_value(proj.id, item, pos, len(queue), proj.image_path(item), proj.scheme, done, message)
    held = Shown.from_state(state)
    token = held.session if held else secrets.token_hex(8)
    return View(value, queue_rows(proj, queue), progress_md(proj, note or message, queue),
                asdict(Shown(proj.id, item.id, item.revision, token)))


def open_first(proj: Project, note: str = "", state: dict | None = None) -> View:
    return show(proj, None, note, state=state)


def _refuse(proj: Project, held: Shown | None, value: dict | None, why: str) -> View:
    """Nothing written: show the photo the session holds again (or, for a session that holds none,
    e.g. after a restart, the photo the action named), fresh from disk."""
    named = value.get("item") if isinstance(value, dict) else None
    target = held.item if held and held.project == proj.id else named if isinstance(named, str) else None
    return show(proj, target, message=f"Not saved: {why}. The image was reloaded; please redo the change.",
                state=asdict(held) if held else None)


def _check(proj: Project, held: Shown | None, value: dict) -> str | None:
    """Why this action must be refused, or None."""
    if held is None or held.project != proj.id:
        return "this page no longer holds that image (the server restarted or the project changed)"
    if value.get("project") not in (None, proj.id):
        return f"the action was for project {value.get('project')!r}"
    if value.get("item") != held.item:
        return f"the action was for image {value.get('item')}, but image {held.item} is the one shown"
    rev = value.get("revision")
    if rev < held.shown_revision:
        return f"the action was made on revision {rev} of image {held.item}, an older copy than the one shown"
    return None


def _validate(proj: Project, value: dict) -> None:
    """Malformed actions are errors (a bug or a hostile client), not refusals."""
    if not isinstance(value.get("item"), str):
        raise ProjectError("editor value: 'item' must be an image id such as '0001'")
    proj.get(value["item"])  # an unknown id is an error too
    rev = value.get("revision")
    if not isinstance(rev, int) or isinstance(rev, bool):
        raise ProjectError("editor value: 'revision' (the revision the edit was made on) must be an integer")
    if value.get("op", "edit") not in OPS:
        raise ProjectError(f"editor value: 'op' must be one of {', '.join(OPS)}")


def _write(proj: Project, held: Shown, value: dict, faces: list[dict] | None, status: str | None,
           face_uncertainty: list | None = None) -> Item | str:
    """Save under the revision check; the saved item, or why it was refused."""
    guard = {"base_revision": value["revision"], "writer": held.session}
    try:
        if faces is None:
            return proj.set_status(held.item, status, **guard)
        return proj.save_faces(held.item, faces, status, face_uncertainty=face_uncertainty, **guard)
    except StaleRevisionError:
        return "someone else saved this image in the meantime"


def save_edit(proj: Project, state: dict | None, edit: dict,
              add_face: Callable[[Item, list[float]], tuple[dict, float | None]] | None = None) -> View | None:
    """An edit from the editor (``op``: "edit", "delete_face" or "add_face"). None when there is
    nothing to save (a value that is not a dirty edit)."""
    if not isinstance(edit, dict) or not edit.get("dirty"):
        return None
    _validate(proj, edit)
    held = Shown.from_state(state)
    why = _check(proj, held, edit)
    if why:
        return _refuse(proj, held, edit, why)
    faces = faces_from_value(edit)
    op = edit.get("op", "edit")
    unc = None
    if op in ("add_face", "delete_face"):
        current = proj.get(held.item)
        unc = list(current.face_uncertainty) + [None] * max(0, len(current.faces) - len(current.face_uncertainty))
        if op == "delete_face":
            unc = _after_delete(current.faces, faces, unc)
        else:
            if add_face is None:
                raise ProjectError("adding a face needs a model")
            face, u = add_face(current, _box(edit.get("box")))
            faces = faces + [face]
            unc = unc[:len(faces) - 1] + [None] * max(0, len(faces) - 1 - len(unc)) + [u]
    result = _write(proj, held, edit, faces, None, unc)
    if isinstance(result, str):
        return _refuse(proj, held, edit, result)
    note = f"Saved image {result.id} ({result.name}), revision {result.revision}."
    if op == "edit":
        queue = proj.queue()
        return View(None, queue_rows(proj, queue), progress_md(proj, note, queue), None)
    return show(proj, result.id, note=note, state=state)


def _after_delete(before: list[dict], after: list[dict], unc: list) -> list:
    """Face uncertainties kept for the faces that remain (matched by their box)."""
    boxes = [f["box"] for f in before]
    out = []
    for f in after:
        try:
            out.append(unc[boxes.index([float(v) for v in f["box"]])])
        except (ValueError, TypeError, KeyError):
            out.append(None)
    return out


def _box(box) -> list[float]:
    try:
        b = [float(v) for v in box]
    except (TypeError, ValueError):
        b = []
    if len(b) != 4 or not all(v == v and abs(v) < 1e6 for v in b):
        raise ProjectError("add_face: 'box' must be 4 finite numbers x1, y1, x2, y2")
    x1, x2, y1, y2 = min(b[0], b[2]), max(b[0], b[2]), min(b[1], b[3]), max(b[1], b[3])
    if x2 - x1 < 4 or y2 - y1 < 4:
        raise ProjectError("add_face: draw a box at least 4 pixels wide and tall around the face")
    return [x1, y1, x2, y2]


def _save_then(proj: Project, state: dict | None, value: dict | None,
               status: str | None) -> tuple[Shown | None, View | None]:
    """The common start of Next / Previous / Done / go-to: check the action against the photo held,
    and save the value's faces when it is dirty (and the status, for Done). A refusal comes back as
    the View to return."""
    held = Shown.from_state(state)
    if not isinstance(value, dict) or not value.get("item"):
        # An API call without the editor's value acts on the photo this session holds.
        if held is None or held.project != proj.id:
            if status:
                raise ProjectError("open an image first")
            return held, None
        value = {"project": proj.id, "item": held.item, "revision": proj.get(held.item).revision}
    dirty = bool(value.get("dirty"))
    if dirty or status:
        _validate(proj, value)
    elif not isinstance(value.get("revision"), int):
        value = {**value, "revision": held.shown_revision if held else -1}
    why = _check(proj, held, value)
    if why:
        return held, _refuse(proj, held, value, why)
    if dirty or status:
        faces = faces_from_value(value) if dirty and value.get("faces") is not None else None
        result = _write(proj, held, value, faces, status) if faces is not None or status else None
        if isinstance(result, str):
            return held, _refuse(proj, held, value, result)
    return held, None


def step(proj: Project, state: dict | None, value: dict | None, delta: int, status: str | None = None) -> View:
    """Next (+1) / Previous (-1) in the queue; with ``status`` (Done) the photo shown is marked first."""
    held, refused = _save_then(proj, state, value, status)
    if refused:
        return refused
    ids = [it.id for it in proj.queue()]
    if not ids:
        raise ProjectError("load images first")
    current = held.item if held and held.project == proj.id else None
    pos = ids.index(current) if current in ids else -delta if delta > 0 else 0
    new = min(max(pos + delta, 0), len(ids) - 1)
    note = "That was the last image in the queue." if delta > 0 and pos + delta >= len(ids) else \
        "This is the first image." if delta < 0 and pos + delta < 0 else ""
    return show(proj, ids[new], note=note, state=state)


def goto(proj: Project, state: dict | None, value: dict | None, item_id: str) -> View:
    """Open ``item_id`` (a queue row clicked), saving the shown photo's pending edit first."""
    proj.get(str(item_id))
    _, refused = _save_then(proj, state, value, None)
    return refused or show(proj, str(item_id), state=state)


def replace_faces(proj: Project, state: dict | None, value: dict | None,
                  predict: Callable[[Item, list[dict]], list[dict]], note: str) -> View:
    """Replace the shown photo's faces with ``predict(item, faces)`` (re-predict in the boxes)."""
    if not isinstance(value, dict) or not value.get("item"):
        raise ProjectError("open an image first")
    _validate(proj, value)
    held = Shown.from_state(state)
    why = _check(proj, held, value)
    if why:
        return _refuse(proj, held, value, why)
    item = proj.get(held.item)
    faces = faces_from_value(value) if value.get("faces") is not None else item.faces
    result = _write(proj, held, value, predict(item, faces), None)
    if isinstance(result, str):
        return _refuse(proj, held, value, result)
    return show(proj, result.id, note=note, state=state)
