"""Photos into an annotation project: uploads matched to the annotation files uploaded with them
(resuming an export), and the next photos of a dataset.

Matching an annotation entry to an uploaded photo: by file name (the name in the file, without its
folders); where several uploads share that name, or none has it, by the photo's SHA-256 when the
file records it (facelm's exports do: ``facelm_sha256``); then by name without extension (a photo
re-encoded as PNG is exported as ``NAME.png``). An entry no upload matches is reported by name.
When several files give the same photo (the XML and the COCO JSON of one export), the first wins.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .annotation import AnnotatedImage, landmark_box
from .annotation_store import STATUSES, Item, Project, faces_to_json
from .errors import FacelmError
from .io import read_annotations
from .io.pts import read_pts
from .start_points import StartPoints

__all__ = ["ANNOTATION_SUFFIXES", "Given", "Photo", "ImportPlan", "split_uploads", "match_uploads",
           "dataset_photos", "add_photos"]

ANNOTATION_SUFFIXES = (".xml", ".pts", ".json")


@dataclass
class Given:
    """Faces an annotation file gives for one photo."""
    points: np.ndarray
    """(N, K, 2) float32."""
    boxes: np.ndarray
    """(N, 4) float32."""
    occluded: np.ndarray
    """(N, K) bool."""
    status: str = "edited"


@dataclass
class Photo:
    """One photo to add: a file or pixels, its name, and the faces it resumes from (None: predict)."""
    source: Path | np.ndarray
    name: str
    given: Given | None = None
    label: str = "upload"


@dataclass
class ImportPlan:
    photos: list[Photo] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Photos named in the uploaded annotation files that no uploaded photo matches."""

    def message(self) -> str:
        if not self.missing:
            return ""
        n = len(self.missing)
        shown = ", ".join(self.missing[:10]) + (f" and {n - 10} more" if n > 10 else "")
        if n == 1:
            return (f"1 photo named in the annotation file was not uploaded: {shown}. Upload it with the file "
                    "to resume its points.")
        return (f"{n} photos named in the annotation file were not uploaded: {shown}. Upload them with the file to "
                "resume their points.")


def split_uploads(files: Iterable[str | Path] | None) -> tuple[list[Path], list[Path]]:
    """(photos, annotation files) of an upload."""
    images, anns = [], []
    for f in files or []:
        p = Path(f)
        (anns if p.suffix.lower() in ANNOTATION_SUFFIXES else images).append(p)
    return images, anns


def _given(im: AnnotatedImage, k: int) -> Given:
    faces = [f for f in im.faces if f.num_points]
    status = im.status if im.status in STATUSES and im.status != "predicted" else "edited"
    if not faces:
        return Given(np.zeros((0, k, 2), np.float32), np.zeros((0, 4), np.float32), np.zeros((0, k), bool), status)
    return Given(np.stack([f.landmarks for f in faces]), np.stack([f.box_or_landmark_box() for f in faces]),
                 np.stack([f.occluded_flags() for f in faces]), status)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def match_uploads(images: list[Path], annotation_files: list[Path], scheme: str, k: int) -> ImportPlan:
    """Each uploaded photo with the faces the uploaded annotation files give it (see the module
    docstring for how they are matched); photos no file mentions start from the model."""
    entries: list[tuple[str, str | None, Given]] = []  # (name in the file, its sha256, faces)
    for a in annotation_files:
        if a.suffix.lower() == ".pts":  # 300-W: NAME.pts beside NAME.jpg
            pts = read_pts(a, scheme)[None]
            entries.append((a.stem, None, Given(pts, landmark_box(pts), np.zeros(pts.shape[:2], bool))))
            continue
        for im in read_annotations(a, scheme).images:
            entries.append((Path(im.path.replace("\\", "/")).name, im.sha256, _given(im, k)))

    given: dict[int, Given] = {}
    hashes: dict[int, str] = {}

    def digest(i: int) -> str:
        if i not in hashes:
            hashes[i] = _sha256(images[i])
        return hashes[i]

    missing = []
    for name, sha, faces in entries:
        free = [i for i in range(len(images)) if i not in given]
        same_name = [i for i in free if images[i].name == name or (not Path(name).suffix and images[i].stem == name)]
        pick = []
        if sha:
            pick = [i for i in same_name if digest(i) == sha] or [i for i in free if digest(i) == sha]
        if not pick and (len(same_name) == 1 or (same_name and not sha)):
            pick = same_name
        if not pick:
            stems = [i for i in free if images[i].stem == Path(name).stem]
            pick = stems if len(stems) == 1 else []
        if pick:
            given[pick[0]] = faces
        elif not any(images[i].name == name for i in given):  # already given by another file (XML + COCO)
            missing.append(name)
    return ImportPlan([Photo(p, p.name, given.get(i)) for i, p in enumerate(images)], missing)


def dataset_photos(ds, proj: Project, n_images: int, keep_points: bool) -> list[Photo]:
    """The next ``n_images`` photos of a Hugging Face dataset (one row per face) that ``proj`` does
    not hold yet, with all their faces; ``keep_points`` resumes from the dataset's points."""
    have = {(it.source, it.name) for it in proj.items()}
    paths = ds["image_path"] if "image_path" in ds.column_names else [f"{i}.png" for i in range(len(ds))]
    sources = ds["source"] if "source" in ds.column_names else ["dataset"] * len(ds)
    by_image: dict[tuple[str, str], list[int]] = {}
    for i, (source, path) in enumerate(zip(sources, paths)):
        key = (source, Path(path).name)
        if key in have:
            continue
        if key in by_image or len(by_image) < n_images:
            by_image.setdefault(key, []).append(i)
    photos = []
    for (source, name), rows in by_image.items():
        sub = ds.select(rows)
        given = None
        if keep_points:
            pts = np.asarray(sub["landmarks"], np.float32)
            given = Given(pts, landmark_box(pts), np.zeros(pts.shape[:2], bool))
        photos.append(Photo(np.asarray(sub[0]["image"].convert("RGB")), name, given, source))
    return photos


def add_photos(proj: Project, photos: Iterable[Photo], start: Callable[[np.ndarray, np.ndarray | None], StartPoints],
               to_rgb: Callable[[Path | np.ndarray], np.ndarray]) -> list[Item]:
    """Add each photo to ``proj``: the model's starting points (``start(img, boxes)``: in the given
    faces' boxes when the photo resumes from a file, else in the faces it finds), kept as the item's
    ``predicted``; the given faces, flags and status when there are some."""
    added = []
    for photo in photos:
        img = to_rgb(photo.source)
        g = photo.given
        sp = start(img, None if g is None else g.boxes)
        predicted = faces_to_json(sp.points, sp.boxes)
        faces = predicted if g is None else faces_to_json(g.points, g.boxes, g.occluded)
        added.append(proj.add_image(img if isinstance(photo.source, np.ndarray) else photo.source, photo.name,
                                    faces, sp.photo_uncertainty, "predicted" if g is None else g.status,
                                    photo.label, predicted=predicted, face_uncertainty=sp.face_uncertainty()))
    return added


def check_point_count(photos: list[Photo], k: int) -> None:
    for p in photos:
        if p.given is not None and len(p.given.points) and p.given.points.shape[1] != k:
            raise FacelmError(f"{p.name}: {p.given.points.shape[1]} points per face, the model's scheme has {k}")
