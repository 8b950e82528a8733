"""The app's autosaved annotation projects: one folder per project, every edit written atomically.

::

    annotations/<project>/
        project.json          scheme, model, creation time, the images in load order
        images/0001_name.jpg  a copy of each image (internal storage name; exports use the photo's own)
        items/0001.json       one image: its faces (points, box, occluded flags), the model's own
                              prediction, status (predicted / edited / done), revision, uncertainty
        export/               the last export: annotations.xml (dlib imglab), annotations_coco.json
                              and images/<the photo's own name> (paths in both are relative to here)
        downloads/            zips for download (.pts folder, the whole export folder)

A project id the app makes is a timestamp plus 96 random bits (``new_project_id``), so two users never
write into the same folder and nobody can guess another's; the id is all it takes to resume after a
restart. Each save replaces one small item file with ``atomic_write_text``, so killing the server
loses at most the edit in flight and never leaves a half-written file. Coordinates are stored as JSON
floats of the float32 values, which read back bit-for-bit.

Every save of an item increments its ``revision`` and records who saved it (``saved_by``, a browser
session's token). ``save_faces(..., base_revision=r, writer=w)`` writes only when the stored revision
is still ``r``, or when the last save was ``w``'s own (checked and written under the project's lock):
an edit made on an older copy of the image is refused instead of overwriting someone else's newer work.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import secrets
import shutil
import tempfile
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
from .io.pts import format_pts, pts_file_name
from .paths import atomic_write_bytes, atomic_write_text, safe_join
from .schemes import get_scheme

__all__ = ["STATUSES", "Item", "Project", "ProjectError", "StaleRevisionError", "new_project_id",
           "valid_project_id", "faces_to_json", "export_names", "EXPORT_XML", "EXPORT_COCO"]

STATUSES = ("predicted", "edited", "done")
EXPORT_XML = "annotations.xml"
EXPORT_COCO = "annotations_coco.json"
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class ProjectError(FacelmError, ValueError):
    """A project id that is malformed or unknown, or an edit that does not fit the project."""


class StaleRevisionError(ProjectError):
    """The item was saved by someone else since the edit's copy was shown; nothing was written."""


def new_project_id() -> str:
    """``20250101-120000-<24 hex digits>``: sortable by time, with 96 random bits nobody can guess."""
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(12)


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


def _finite_or_none(value: float | None) -> float | None:
    """Uncertainty as stored: a finite float, or None for "no face, nothing to be unsure about".
    Projects saved before None existed used 1e9 for that."""
    if value is None or not math.isfinite(value) or value >= 1e9:
        return None
    return float(value)


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
    """``{"points": [[x, y], ...], "box": [x1, y1, x2, y2], "occluded": [bool, ...]}``, 0-based pixels."""
    predicted: list[dict] = field(default_factory=list)
    """The model's starting points, kept to measure how much people corrected."""
    status: str = "predicted"
    uncertainty: float | None = None
    """The model's disagreement with itself on the mirrored image (NME, worst face); None when the
    photo started without a face. Fixed at load time, so the queue order stays put while people work."""
    source: str = ""
    updated: float = 0.0
    face_uncertainty: list[float | None] = field(default_factory=list)
    """Each face's own disagreement (None for a face the model was not asked about)."""
    revision: int = 0
    """Incremented by every save of this item."""
    sha256: str = ""
    """Of the image bytes as loaded (matches the original photo when it is uploaded again)."""
    saved_by: str = ""
    """The token of the session that saved it last ("" when loaded)."""

    def __post_init__(self) -> None:
        self.uncertainty = _finite_or_none(self.uncertainty)
        self.faces = [_with_flags(f) for f in self.faces]
        self.face_uncertainty = [_finite_or_none(u) for u in self.face_uncertainty]

    def landmarks(self) -> np.ndarray:
        k = len(self.faces[0]["points"]) if self.faces else 0
        return np.asarray([f["points"] for f in self.faces], np.float32).reshape(len(self.faces), k, 2)

    def boxes(self) -> np.ndarray:
        return np.asarray([f["box"] for f in self.faces], np.float32).reshape(len(self.faces), 4)


def _with_flags(face: dict) -> dict:
    """A stored face with its ``occluded`` flags (all False where an older file has none)."""
    if face.get("occluded") is None:
        face = {**face, "occluded": [False] * len(face.get("points") or [])}
    return face


def faces_to_json(landmarks: np.ndarray, boxes: np.ndarray | None = None,
                  occluded: np.ndarray | None = None) -> list[dict]:
    """(N, K, 2) points, (N, 4) boxes (default: the points' tight boxes) and (N, K) occluded flags
    (default: none) as item faces."""
    landmarks = np.asarray(landmarks, np.float32)
    if boxes is None:
        boxes = landmark_box(landmarks) if len(landmarks) else np.zeros((0, 4), np.float32)
    if occluded is None:
        occluded = np.zeros(landmarks.shape[:2], bool)
    return [{"points": _floats(p), "box": _floats(b), "occluded": [bool(v) for v in o]}
            for p, b, o in zip(landmarks, np.asarray(boxes, np.float32), np.asarray(occluded, bool))]


def export_names(items: list[Item]) -> dict[str, str]:
    """{item id: file name in exports}: the photo's own name (with the stored file's extension when
    the image had to be re-encoded), de-duplicated (``name-2.jpg``) only where two photos share a name."""
    wanted = {}
    for it in items:
        own, stored = Path(it.name), Path(it.image).suffix
        same = own.suffix.lower().replace("jpeg", "jpg") == stored.lower().replace("jpeg", "jpg")
        wanted[it.id] = own.name if same and own.name else f"{own.stem or 'image'}{stored}"
    reserved = {n.lower() for n in wanted.values()}
    taken: set[str] = set()
    out: dict[str, str] = {}
    for it in items:
        name = wanted[it.id]
        if name.lower() in taken:
            stem, ext, n = Path(name).stem, Path(name).suffix, 2
            while f"{stem}-{n}{ext}".lower() in taken | reserved:
                n += 1
            name = f"{stem}-{n}{ext}"
        taken.add(name.lower())
        out[it.id] = name
    return out


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

    @property
    def export_dir(self) -> Path:
        return self.dir / "export"

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
                  uncertainty: float | None = None, status: str = "predicted", source_label: str = "",
                  predicted: list[dict] | None = None,
                  face_uncertainty: list[float | None] | None = None) -> Item:
        """Copy an image into the project and save its first item file. Returns the item."""
        if status not in STATUSES:
            raise ProjectError(f"status {status!r}: expected one of {STATUSES}")
        data, ext, (w, h), digest = _image_bytes(source)
        k = get_scheme(self.scheme).num_points
        faces = [_clean_face(f, k, i) for i, f in enumerate(faces)]
        with self._lock:
            meta = self.meta
            n = max((int(i) for i in meta["items"]), default=0) + 1
            item_id = f"{n:04d}"
            rel = f"images/{item_id}_{_safe_stem(name)}{ext}"
            atomic_write_bytes(safe_join(self.dir, rel), data)
            item = Item(id=item_id, image=rel, name=Path(name).name, width=w, height=h, faces=faces,
                        predicted=predicted if predicted is not None else faces, status=status,
                        uncertainty=uncertainty, source=source_label, updated=time.time(),
                        face_uncertainty=list(face_uncertainty or []), sha256=digest)
            self._write_item(item)
            meta["items"].append(item_id)
            self._write_meta(meta)
        return item

    def _item_path(self, item_id: str) -> Path:
        if not isinstance(item_id, str) or not re.fullmatch(r"\d{4,9}", item_id):
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
        """Items worst first: photos without a face, then the highest model uncertainty (ties in load order)."""
        return sorted(self.items(), key=lambda it: (it.uncertainty is not None, -(it.uncertainty or 0.0), it.id))

    def image_path(self, item: Item) -> Path:
        return safe_join(self.dir, item.image)

    def save_faces(self, item_id: str, faces: list[dict], status: str | None = None,
                   base_revision: int | None = None, writer: str = "",
                   face_uncertainty: list[float | None] | None = None) -> Item:
        """Replace an item's faces (validated against the scheme) and save it atomically. With
        ``base_revision`` (the revision the edit was made on), refuse (``StaleRevisionError``) unless
        the stored revision is that one or the last save was ``writer``'s own."""
        k = get_scheme(self.scheme).num_points
        clean = [_clean_face(f, k, i) for i, f in enumerate(faces)]
        if status is not None and status not in STATUSES:
            raise ProjectError(f"status {status!r}: expected one of {STATUSES}")
        with self._lock:
            item = self._get_expecting(item_id, base_revision, writer)
            item.faces = clean
            item.status = status or ("edited" if item.status == "predicted" else item.status)
            if face_uncertainty is not None:
                item.face_uncertainty = [_finite_or_none(u) for u in face_uncertainty]
            return self._save(item, writer)

    def set_status(self, item_id: str, status: str, base_revision: int | None = None, writer: str = "") -> Item:
        if status not in STATUSES:
            raise ProjectError(f"status {status!r}: expected one of {STATUSES}")
        with self._lock:
            item = self._get_expecting(item_id, base_revision, writer)
            item.status = status
            return self._save(item, writer)

    def _get_expecting(self, item_id: str, base_revision: int | None, writer: str) -> Item:
        item = self.get(item_id)
        if base_revision is None or item.revision == base_revision or (writer and item.saved_by == writer
                                                                        and item.revision > base_revision):
            return item
        raise StaleRevisionError(f"image {item_id} ({item.name}) was saved elsewhere since it was shown "
                                 f"(revision {item.revision}, the edit was made on {base_revision})")

    def _save(self, item: Item, writer: str) -> Item:
        item.revision += 1
        item.updated = time.time()
        item.saved_by = writer
        self._write_item(item)
        return item

    def counts(self, items: list[Item] | None = None) -> dict[str, int]:
        """Items per status (of ``items`` when the caller has read them already)."""
        out = {s: 0 for s in STATUSES}
        for it in self.items() if items is None else items:
            out[it.status] = out.get(it.status, 0) + 1
        return out

    # -- export ----------------------------------------------------------------------------------
    def annotation_set(self, statuses: tuple[str, ...] = STATUSES) -> AnnotationSet:
        """The chosen items as an AnnotationSet rooted at the export folder, each image under its
        export name (``images/<the photo's own name>``) with its status; photos without faces
        included (a photo confirmed to hold no face is an answer too)."""
        chosen = [it for it in self.items() if it.status in statuses]
        names = export_names(chosen)
        images = []
        for it in chosen:
            faces = [Face(np.asarray(f["points"], np.float32), np.asarray(f["box"], np.float32),
                          occluded=np.asarray(f["occluded"], bool) if any(f["occluded"]) else None)
                     for f in it.faces]
            images.append(AnnotatedImage(path=f"images/{names[it.id]}", faces=faces, width=it.width,
                                         height=it.height, status=it.status, sha256=it.sha256 or None))
        return AnnotationSet(images=images, scheme=self.scheme, name=f"facelm project {self.id}",
                             comment="exported by the facelm app; 0-based pixel coordinates",
                             root=str(self.export_dir))

    def export(self, statuses: tuple[str, ...] = ("edited", "done"), precision: int | None = None) -> dict[str, Path]:
        """Write ``export/annotations.xml`` (dlib imglab; ``precision=None``: exact float coordinates,
        ``0``: integers as dlib writes them), ``export/annotations_coco.json`` and ``export/images/``
        (each photo under its own name), plus zips of 300-W ``.pts`` files with their images and of
        the whole export folder, in ``downloads/``."""
        aset = self.annotation_set(statuses)
        if not aset.images:
            raise ProjectError("nothing to export: no image has the status " + " or ".join(statuses)
                               + " yet (edit points, or mark images done)")
        ids = [it.id for it in self.items() if it.status in statuses]
        downloads = self.dir / "downloads"
        downloads.mkdir(exist_ok=True)
        with self._lock:
            staging = Path(tempfile.mkdtemp(prefix=".export-", dir=self.dir))
            (staging / "images").mkdir()
            for item_id, im in zip(ids, aset.images):
                _link_or_copy(self.image_path(self.get(item_id)), staging / im.path)
            write_dlib_xml(aset, staging / EXPORT_XML, precision=precision)
            write_coco(aset, staging / EXPORT_COCO)
            old = self.dir / f".export-old-{secrets.token_hex(4)}"
            if self.export_dir.exists():
                os.replace(self.export_dir, old)
            os.replace(staging, self.export_dir)
            shutil.rmtree(old, ignore_errors=True)
            pts_zip = downloads / f"{self.id}_pts.zip"
            atomic_write_bytes(pts_zip, self._pts_zip(aset))
            full_zip = downloads / f"{self.id}_dataset.zip"
            atomic_write_bytes(full_zip, self._dataset_zip())
        return {"xml": self.export_dir / EXPORT_XML, "coco": self.export_dir / EXPORT_COCO,
                "pts_zip": pts_zip, "dataset_zip": full_zip}

    def _pts_zip(self, aset: AnnotationSet) -> bytes:
        """300-W layout: ``NAME.pts`` beside ``NAME.jpg``, one face per file (``NAME_2`` for a
        photo's second face, with its own copy of the image, as 300-W crops do)."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for im in aset.images:
                src = safe_join(self.export_dir, im.path)
                stem, ext = Path(im.path).stem, Path(im.path).suffix
                for k, face in enumerate(im.faces, 1):
                    name = Path(pts_file_name(stem, k, len(im.faces))).stem
                    z.writestr(f"{name}.pts", format_pts(face.landmarks, name))
                    z.write(src, f"{name}{ext}")
        return buf.getvalue()

    def _dataset_zip(self) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(self.export_dir.rglob("*")):
                if f.is_file():
                    z.write(f, f"{self.id}/{f.relative_to(self.export_dir).as_posix()}")
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


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


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
    occluded = face.get("occluded")
    if occluded is None:
        occluded = [False] * k
    if not isinstance(occluded, list) or len(occluded) != k or not all(isinstance(v, bool) for v in occluded):
        raise ProjectError(f"face {i}: occluded must be a list of {k} true/false flags")
    return {"points": _floats(pts), "box": _floats(b), "occluded": list(occluded)}


def _image_bytes(source: str | Path | bytes | np.ndarray) -> tuple[bytes, str, tuple[int, int], str]:
    """The bytes to store for an image, its extension, its size and the SHA-256 of the bytes given.
    JPEG and PNG files without an EXIF rotation are copied byte for byte; anything else is re-encoded
    as PNG after applying the rotation, so that every tool sees the pixels the points were placed on."""
    if isinstance(source, np.ndarray):
        im = Image.fromarray(np.ascontiguousarray(source[..., :3]).astype(np.uint8))
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        return buf.getvalue(), ".png", im.size, hashlib.sha256(buf.getvalue()).hexdigest()
    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    im = load_pil(raw, MAX_PIXELS)  # readable errors for non-images and bombs, before anything else
    with Image.open(io.BytesIO(raw)) as probe:
        fmt = probe.format
        orientation = probe.getexif().get(274, 1)
    if fmt in ("JPEG", "PNG") and orientation in (1, None) and im.mode in ("RGB", "L", "RGBA", "P", "LA"):
        return raw, ".jpg" if fmt == "JPEG" else ".png", im.size, digest
    buf = io.BytesIO()
    im.convert("RGB").save(buf, format="PNG")
    return buf.getvalue(), ".png", im.size, digest
