"""The Annotate tab's point editor: an SVG drawn by ``gr.HTML`` (html_template + js_on_load).

The browser side lives in this package's files: ``editor.html`` (the static template), ``editor.css``,
``state.js`` (the state logic, without the DOM; unit-tested under node, ``tests/js``) and ``editor.js``
(drawing and input). gr.HTML runs js_on_load as a function body, not a module, so :data:`JS` is
``state.js`` followed by ``editor.js``.

Python sends the editor a value (:func:`editor_value`)::

    {"project", "item", "revision", "name", "index" (0-based), "count", "done", "status",
     "uncertainty" (float, or None when no face was found: never a sentinel number),
     "width", "height", "image" (data URL), "faces": [{"points", "box", "occluded", "score"}],
     "face_uncertainty": [float or None], "names", "lines": [[indices, closed]],
     "parts": {"jaw", "brows", "eyes", "nose", "mouth": [indices]}, "message" (optional)}

and the editor answers every finished change by setting its value to an edit::

    {"project", "item", "revision" (the one the edit was made on), "faces": [{"points", "box",
     "occluded"}], "dirty": true, "seq", "op": "edit" | "delete_face" | "add_face",
     "box" (add_face only: the drawn box; the server predicts the face's points in it)}

which fires the component's ``change`` event (the app's autosave). A value the server sends back
for the same item replaces the editor's faces only when they differ from what it sent (a refused
edit, a re-prediction, an added face); then the local faces stay undoable. Undo history is per
photo: opening another photo starts a new one.

Coordinates are image pixels, 0-based with pixel centres at integers: the SVG's user space is
the image's, with the picture drawn from -0.5 to W-0.5, so what the browser shows and what
Python saves are the same numbers.

Keyboard (when no text field has focus): ← / → or P / N previous / next image, D done and next,
Ctrl+Z / Ctrl+Shift+Z (or Ctrl+Y) undo / redo, + / - / 0 zoom in / out / fit, Shift+arrows nudge
the selected points by one pixel, Delete / Backspace delete the selected face, A add a face (draw
its box; Shift+drag on the photo does the same), O flag the selected points occluded (again:
visible), 1-5 select the jaw, brows, eyes, nose or mouth, Esc deselect, L point numbers.
Shift+click adds a point to the selection; Alt+drag selects the points in a rectangle (Ctrl+drag
adds them). Navigation presses the app's buttons with ids ``flm-prev``, ``flm-next``, ``flm-done``.
"""
from __future__ import annotations

import base64
import io
import math
from importlib import resources
from pathlib import Path

from PIL import Image, ImageOps

from ..annotation_store import ProjectError
from ..schemes import Scheme, get_scheme

__all__ = ["TEMPLATE", "CSS", "JS", "editor_value", "faces_from_value", "display_data_url", "scheme_parts",
           "DISPLAY_MAX_SIDE", "DOUBT_NME"]

DISPLAY_MAX_SIDE = 1600
"""The picture sent to the browser is at most this many pixels on its long side (points keep full
resolution: the SVG stretches the picture over the image's real size)."""

DOUBT_NME = 1e9
"""Uncertainties at or above this are the app's "no face found, the box is a guess" marker: the
editor gets None for them."""


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


# Static on purpose: gr.HTML re-renders its template on every prop change, and a template that
# does not depend on the value re-renders to the same string, which leaves the live SVG alone.
TEMPLATE = _asset("editor.html")
CSS = _asset("editor.css")
JS = _asset("state.js") + "\n" + _asset("editor.js")

# Which drawing lines of a scheme make up each part the editor selects with keys 1-5.
_PART_PREFIXES = {"jaw": ("jaw",), "brows": ("brow",), "eyes": ("eye",), "nose": ("nose",),
                  "mouth": ("lip", "mouth")}


def scheme_parts(scheme: str | Scheme) -> dict[str, list[int]]:
    """The point indices of each face part (jaw, brows, eyes, nose, mouth) of a scheme, from its
    drawing connections; a part the scheme lacks is an empty list."""
    sch = get_scheme(scheme)
    parts: dict[str, list[int]] = {}
    for part, prefixes in _PART_PREFIXES.items():
        idx = [i for name, points, _ in sch.connections if name.startswith(prefixes) for i in points]
        parts[part] = sorted(set(idx))
    return parts


def _uncertainty(u) -> float | None:
    """A user-facing uncertainty: None for missing, non-finite or the no-face marker."""
    if u is None:
        return None
    u = float(u)
    return u if math.isfinite(u) and u < DOUBT_NME else None


def _value_face(face: dict, k: int) -> dict:
    occ = face.get("occluded") or []
    score = face.get("score")
    return {"points": face["points"], "box": face.get("box"),
            "occluded": [bool(occ[i]) if i < len(occ) else False for i in range(k)],
            "score": float(score) if score is not None and math.isfinite(float(score)) else None}


def display_data_url(path: str | Path, max_side: int = DISPLAY_MAX_SIDE) -> str:
    """The image as a ``data:`` URL for the browser, downscaled to ``max_side`` when larger."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        if max(im.size) > max_side:
            im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def editor_value(project: str, item, index: int, count: int, image_path: str | Path, scheme: str,
                 done: int = 0, message: str = "") -> dict:
    """What the editor draws for one project item (the fields are in the module docstring).

    ``done`` is how many of the project's ``count`` items are done; ``message`` is shown above the
    status bar (e.g. why an edit was refused)."""
    sch = get_scheme(scheme)
    faces = [_value_face(f, sch.num_points) for f in item.faces]
    face_unc = [_uncertainty(u) for u in (item.face_uncertainty or [])]
    value = {
        "project": project, "item": item.id, "revision": int(getattr(item, "revision", 0)), "name": item.name,
        "index": int(index), "count": int(count), "done": int(done), "status": item.status,
        "uncertainty": _uncertainty(item.uncertainty) if faces else None,
        "width": int(item.width), "height": int(item.height), "image": display_data_url(image_path),
        "faces": faces, "face_uncertainty": face_unc, "names": list(sch.names),
        "lines": [[list(idx), bool(closed)] for _, idx, closed in sch.connections],
        "parts": scheme_parts(sch), "dirty": False,
    }
    if message:
        value["message"] = message
    return value


def faces_from_value(value: dict | None) -> list[dict]:
    """The faces of an editor value or edit, as plain lists (for ``Project.save_faces``, which
    validates the points). A value without faces gives ``[]``; malformed faces raise rather than read
    as "no faces", which would wipe the saved points."""
    if not isinstance(value, dict) or value.get("faces") is None:
        return []
    faces = value["faces"]
    if not isinstance(faces, list) or not all(isinstance(f, dict) for f in faces):
        raise ProjectError("editor value: 'faces' must be a list of {'points': [[x, y], ...], 'box': ..., "
                           "'occluded': [bool, ...]}")
    out = []
    for f in faces:
        occ = f.get("occluded")
        if occ is not None and not (isinstance(occ, list) and all(isinstance(o, bool) for o in occ)):
            raise ProjectError("editor value: a face's 'occluded' must be a list of true/false, one per point")
        out.append({"points": f.get("points"), "box": f.get("box"), "occluded": occ})
    return out
