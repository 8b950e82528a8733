"""The app's autosaved annotation projects: one folder per project, every edit written atomically.

::

    annotations/<project>/
        project.json          scheme, model, creation time, the images in load order
        images/0001_name.jpg  a copy of each image (exports name images relative to the project)
        items/0001.json       one image: its faces (points + box), the model's own prediction,
                              status (predicted / edited / done), uncertainty, when it was saved
        annotations.xml       exports (dlib imglab XML and COCO), image paths relative to here
        annotations_coco.json
        export/               zips for download (.pts folder, the whole dataset)

A project id is random per browser session (``new_project_id``), so two users never write into the
same folder; the id is all it takes to resume after a restart. Each save replaces one small item
file with ``atomic_write_text``, so killing the server loses at most the edit in flight and never
leaves a half-written file. Coordinates are stored as JSON floats of the float32 values, which read
back bit-for-bit.
"""
from __future__ import annotations

import io
import json
import math
import re
import secrets
import shutil
import threading
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .annotation import AnnotatedImage, AnnotationSet, Face, landmark_box
from .errors import FacelmError
from .image import MAX_PIXELS, load_pil
from .io.coco import write_coco
from .io.dlib_xml import write_dlib_xml
from .io.pts import format_pts
from .paths import atomic_write_bytes, atomic_write_text, safe_join
from .schemes import get_scheme

__all__ = ["STATUSES", "Item", "Project", "ProjectError", "new_project_id", "valid_project_id"]

STATUSES = ("predicted", "edited", "done")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class ProjectError(FacelmError, ValueError):
    """A project id that is malformed or unknown, or an edit that does not fit the project."""


def new_project_id() -> str:
    """``20250101-120000-a1b2c3``: sortable by time, unguessable enough to keep sessions apart."""
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def valid_project_id(project_id: str) -> str:
    pid = (project_id or "").strip()
    if not _ID_RE.fullmatch(pid):
        raise ProjectError(f"project name {project_id!r}: use 1-64 letters, digits, '-' or '_' "
                           "(starting with a letter or digit)")
    return pid


def _lock(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(str(path.resolve()), threading.Lock())


def _safe_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._") or "image"
    return stem[:60]


def _floats(a: np.ndarray) -> list:
    """float32 values as JSON-ready Python floats (exact: float32 -> float64 -> repr -> float32)."""
    return np.asarray(a, np.float32).astype(np.float64).tolist()


@dataclass
class Item:
    """One image of a project and its faces."""
    id: str
    image: str
    """Image path relative to the project folder (``images/0001_name.jpg``)."""
    name: str
    """The file name it was loaded from."""
    width: int
    height: int
    faces: list[dict] = field(default_factory=list)
    """``{"points": [[x, y], ...], "box": [x1, y1, x2, y2]}``, 0-based pixel coordinates."""
    predicted: list[dict] = field(default_factory=list)
    """The model's starting points, kept to measure how much people corrected."""
    status: str = "predicted"
    uncertainty: float = 0.0
    """The model's disagreement with itself on the mirrored image (NME); the queue sorts by it."""
    source: str = ""
    updated: float = 0.0
    face_uncertainty: list[float] = field(default_factory=list)
    """Each face's own disagreement (the item's ``uncertainty`` is the worst of them)."""

    def landmarks(self) -> np.ndarray:
        k = len(self.faces[0]["points"]) if self.faces else 0
        return np.asarray([f["points"] for f in self.faces], np.float32).reshape(len(self.faces), k, 2)

    def boxes(self) -> np.ndarray:
        return np.asarray([f["box"] for f in self.faces], np.float32).reshape(len(self.faces), 4)


def faces_to_json(landmarks: np.ndarray, boxes: np.ndarray | None = None) -> list[dict]:
    """(N, K, 2) points and (N, 4) boxes (default: the points' tight boxes) as item faces."""
    landmarks = np.asarray(landmarks, np.float32)
    if boxes is None:
        boxes = landmark_box(landmarks) if len(landmarks) else np.zeros((0, 4), np.float32)
    return [{"points": _floats(p), "box": _floats(b)} for p, b in zip(landmarks, np.asarray(boxes, np.float32))]


class Project:
    """An annotation project folder. Create with :meth:`create`, reopen with :meth:`open`."""

    def __init__(self, root: str | Path, project_id: str):
        self.id = valid_project_id(project_id)
        self.root = Path(root)
        self.dir = safe_join(self.root, self.id)
        self._lock = _lock(self.dir)

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, project_id: str, scheme: str, model: str = "") -> Project:
        """Open the project, creating it (empty) when it does not exist yet."""
        p = cls(root, project_id)
        with p._lock:
            if not (p.dir / "project.json").is_file():
                (p.dir / "images").mkdir(parents=True, exist_ok=True)
                (p.dir / "items").mkdir(exist_ok=True)
                p._write_meta({"id": p.id, "scheme": get_scheme(scheme).name, "model": model,
                               "created": time.time(), "items": []})
        return p

    @classmethod
    def open(cls, root: str | Path, project_id: str) -> Project:
        p = cls(root, project_id)
        if not (p.dir / "project.json").is_file():
            raise ProjectError(f"no saved project {p.id!r} (looked in {p.dir})")
        return p

    def exists(self) -> bool:
        return (self.dir / "project.json").is_file()

    # -- metadata --------------------------------------------------------------------------------
    @property
    def meta(self) -> dict:
        try:
            return json.loads((self.dir / "project.json").read_text("utf-8"))
        except FileNotFoundError:
            raise ProjectError(f"no saved project {self.id!r}") from None

    def _write_meta(self, meta: dict) -> None:
        atomic_write_text(self.dir / "project.json", json.dumps(meta, indent=1))

    @property
    def scheme(self) -> str:
        return self.meta["scheme"]

    # -- items -----------------------------------------------------------------------------------
    def add_image(self, source: str | Path | bytes | np.ndarray, name: str, faces: list[dict],
                  uncertainty: float = 0.0, status: str = "predicted", source_label: str = "",
                  predicted: list[dict] | None = None, face_uncertainty: list[float] | None = None) -> Item:
        """Copy an image into the project and save its first item file. Returns the item."""
        if status not in STATUSES:
            raise ProjectError(f"status {status!r}: expected one of {STATUSES}")
        data, ext, (w, h) = _image_bytes(source)
        with self._lock:
            meta = self.meta
            n = max((int(i) for i in meta["items"]), default=0) + 1
            item_id = f"{n:04d}"
            rel = f"images/{item_id}_{_safe_stem(name)}{ext}"
            atomic_write_bytes(safe_join(self.dir, rel), data)
            item = Item(id=item_id, image=rel, name=Path(name).name, width=w, height=h, faces=faces,
                        predicted=predicted if predicted is not None else faces, status=status,
                        uncertainty=float(uncertainty) if math.isfinite(uncertainty) else 1e9,
                        source=source_label, updated=time.time(),
                        face_uncertainty=[float(u) for u in face_uncertainty or []])
            self._write_item(item)
            meta["items"].append(item_id)
            self._write_meta(meta)
        return item

    def _item_path(self, item_id: str) -> Path:
        if not re.fullmatch(r"\d{4,9}", str(item_id)):
            raise ProjectError(f"no image {item_id!r} in project {self.id}")
        return self.dir / "items" / f"{item_id}.json"

    def _write_item(self, item: Item) -> None:
        atomic_write_text(self._item_path(item.id), json.dumps(asdict(item)))

    def get(self, item_id: str) -> Item:
        try:
            return Item(**json.loads(self._item_path(item_id).read_text("utf-8")))
        except FileNotFoundError:
            raise ProjectError(f"no image {item_id!r} in project {self.id}") from None

    def items(self) -> list[Item]:
        return [self.get(i) for i in self.meta["items"]]

    def queue(self) -> list[Item]:
        """Items worst first: highest model uncertainty at the top (ties in load order)."""
        return sorted(self.items(), key=lambda it: (-it.uncertainty, it.id))

    def image_path(self, item: Item) -> Path:
        return safe_join(self.dir, item.image)

    def save_faces(self, item_id: str, faces: list[dict], status: str | None = None) -> Item:
        """Replace an item's faces (validated against the scheme) and save it atomically."""
        k = get_scheme(self.scheme).num_points
        clean = [_clean_face(f, k, i) for i, f in enumerate(faces)]
        with self._lock:
            item = self.get(item_id)
            item.faces = clean
            item.status = status or ("edited" if item.status == "predicted" else item.status)
            if item.status not in STATUSES:
                raise ProjectError(f"status {item.status!r}: expected one of {STATUSES}")
            item.updated = time.time()
            self._write_item(item)
        return item

    def set_status(self, item_id: str, status: str) -> Item:
        if status not in STATUSES:
            raise ProjectError(f"status {status!r}: expected one of {STATUSES}")
        with self._lock:
            item = self.get(item_id)
            item.status = status
            item.updated = time.time()
            self._write_item(item)
        return item

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUSES}
        for it in self.items():
            out[it.status] = out.get(it.status, 0) + 1
        return out

    # -- export ----------------------------------------------------------------------------------
    def annotation_set(self, statuses: tuple[str, ...] = STATUSES) -> AnnotationSet:
        """The chosen items as an AnnotationSet rooted at the project folder."""
        images = []
        for it in self.items():
            if it.status not in statuses or not it.faces:
                continue
            faces = [Face(np.asarray(f["points"], np.float32), np.asarray(f["box"], np.float32)) for f in it.faces]
            images.append(AnnotatedImage(path=it.image, faces=faces, width=it.width, height=it.height))
        return AnnotationSet(images=images, scheme=self.scheme, name=f"facelm project {self.id}",
                             comment="exported by the facelm app; 0-based pixel coordinates", root=str(self.dir))

    def export(self, statuses: tuple[str, ...] = ("edited", "done"), precision: int | None = None) -> dict[str, Path]:
        """Write ``annotations.xml`` (dlib imglab; ``precision=None``: exact float coordinates,
        ``0``: integers as dlib writes them), ``annotations_coco.json``, a zip of 300-W ``.pts``
        files with their images and a zip of the whole dataset (both files and images)."""
        aset = self.annotation_set(statuses)
        if not aset.images:
            raise ProjectError("nothing to export: no image has the status " + " or ".join(statuses)
                               + " yet (edit points, or mark images done)")
        out = self.dir / "export"
        out.mkdir(exist_ok=True)
        xml = self.dir / "annotations.xml"
        coco = self.dir / "annotations_coco.json"
        with self._lock:
            write_dlib_xml(aset, xml, precision=precision)
            write_coco(aset, coco)
            pts_zip = out / f"{self.id}_pts.zip"
            atomic_write_bytes(pts_zip, self._pts_zip(aset))
            full_zip = out / f"{self.id}_dataset.zip"
            atomic_write_bytes(full_zip, self._dataset_zip(aset, [xml, coco]))
        return {"xml": xml, "coco": coco, "pts_zip": pts_zip, "dataset_zip": full_zip}

    def _pts_zip(self, aset: AnnotationSet) -> bytes:
        """300-W layout: ``NAME.pts`` beside ``NAME.jpg``, one face per file (``NAME_2`` for a
        photo's second face, with its own copy of the image, as 300-W crops do)."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for im in aset.images:
                src = safe_join(self.dir, im.path)
                stem, ext = Path(im.path).stem, Path(im.path).suffix
                for k, face in enumerate(im.faces, 1):
                    name = stem if len(im.faces) == 1 else f"{stem}_{k}"
                    z.writestr(f"{name}.pts", format_pts(face.landmarks, name))
                    z.write(src, f"{name}{ext}")
        return buf.getvalue()

    def _dataset_zip(self, aset: AnnotationSet, files: list[Path]) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for f in files:
                z.write(f, f"{self.id}/{f.name}")
            for im in aset.images:
                z.write(safe_join(self.dir, im.path), f"{self.id}/{im.path}")
        return buf.getvalue()

    def copy_exports(self, files: dict[str, Path], target: str | Path) -> list[str]:
        """Copies of export files in ``target`` (downloads are served from there, never from the
        project folder itself)."""
        target = Path(target)
        target.mkdir(parents=True, exist_ok=True)
        out = []
        for f in files.values():
            shutil.copyfile(f, target / f.name)
            out.append(str(target / f.name))
        return out


def _clean_face(face: dict, k: int, i: int) -> dict:
    try:
        pts = np.asarray(face["points"], np.float64)
        box = face.get("box")
    except (TypeError, KeyError, ValueError):
        raise ProjectError(f"face {i}: expected {{'points': [[x, y], ...], 'box': [x1, y1, x2, y2]}}") from None
    if pts.shape != (k, 2):
        raise ProjectError(f"face {i}: expected {k} points as [x, y] pairs, got shape {pts.shape}")
    if not np.isfinite(pts).all() or np.abs(pts).max() > 1e6:
        raise ProjectError(f"face {i}: points must be finite pixel coordinates")
    if box is None:
        b = landmark_box(pts.astype(np.float32))
    else:
        try:
            b = np.asarray(box, np.float64).reshape(-1)
        except (TypeError, ValueError):
            b = np.zeros(0)
        if b.shape != (4,) or not np.isfinite(b).all():
            raise ProjectError(f"face {i}: box must be 4 finite numbers x1, y1, x2, y2")
        b = np.array([min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])])
    return {"points": _floats(pts), "box": _floats(b)}


def _image_bytes(source: str | Path | bytes | np.ndarray) -> tuple[bytes, str, tuple[int, int]]:
    """The bytes to store for an image, its extension and its size. JPEG and PNG files without an
    EXIF rotation are copied byte for byte; anything else is re-encoded as PNG after applying the
    rotation, so that every tool sees the pixels the points were placed on."""
    if isinstance(source, np.ndarray):
        im = Image.fromarray(np.ascontiguousarray(source[..., :3]).astype(np.uint8))
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        return buf.getvalue(), ".png", im.size
    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    im = load_pil(raw, MAX_PIXELS)  # readable errors for non-images and bombs, before anything else
    with Image.open(io.BytesIO(raw)) as probe:
        fmt = probe.format
        orientation = probe.getexif().get(274, 1)
    if fmt in ("JPEG", "PNG") and orientation in (1, None) and im.mode in ("RGB", "L", "RGBA", "P", "LA"):
        return raw, ".jpg" if fmt == "JPEG" else ".png", im.size
    buf = io.BytesIO()
    im.convert("RGB").save(buf, format="PNG")
    return buf.getvalue(), ".png", im.size
