"""COCO keypoints JSON: ``images``, ``annotations`` (``keypoints`` flat ``[x, y, v, ...]``,
``num_keypoints``, ``bbox`` ``[x, y, w, h]``) and ``categories`` (point names, skeleton).

Mapping to and from ``AnnotationSet``:

- ``v == 0`` (not labelled) reads as NaN; NaN writes as ``0, 0, 0``. ``v == 1`` (labelled but hidden)
  reads as a point flagged in ``Face.occluded``, and an occluded point writes ``v = 1``; every other
  point writes ``v = 2`` (visible).
- ``AnnotatedImage.status`` (the annotation app's review status) <-> the image entry's extra key
  ``"facelm_status"``, ``AnnotatedImage.sha256`` <-> ``"facelm_sha256"`` (other COCO tools ignore
  unknown keys).
- ``bbox`` <-> ``Face.box`` (``x2 = x + w``). COCO wants a bbox on every annotation, so a face without
  a box gets its landmarks' box plus the extra key ``"facelm_box_from_landmarks": true``, which reads
  back as ``box = None`` (other COCO tools ignore unknown keys).
- ``iscrowd`` <-> ``Face.ignore`` (both mean "do not train or score on this region").
- ``info.description`` <-> ``AnnotationSet.name``, ``info.comment`` <-> ``comment``.
- ``skeleton`` is built from the scheme's drawing connections (1-based pairs, as COCO has them).
- Coordinates are taken as 0-based pixel coordinates, like everything in memory.
- Numbers are written as the shortest decimals that read back to the same float32 (a box's
  ``x2 = x + w`` included, except for a corner absurdly close to 0 beside a large other corner).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..annotation import AnnotatedImage, AnnotationSet, Face
from ..errors import AnnotationFormatError
from ..paths import atomic_write_text
from ..schemes import Scheme
from ._common import (PathLike, SchemeLike, format_coord, format_coords, known_scheme, read_text, resolve_scheme,
                      to_float32, writable_count)

__all__ = ["read_coco", "parse_coco", "format_coco", "write_coco", "skeleton"]

_FROM_LANDMARKS = "facelm_box_from_landmarks"
_STATUS = "facelm_status"
_SHA256 = "facelm_sha256"


def skeleton(scheme: Scheme) -> list[list[int]]:
    """COCO's 1-based point pairs for the scheme's polylines."""
    pairs = []
    for _, idx, closed in scheme.connections:
        chain = list(idx) + ([idx[0]] if closed and len(idx) > 2 else [])
        pairs += [[a + 1, b + 1] for a, b in zip(chain, chain[1:])]
    return pairs


def parse_coco(doc: Any, source: str = "<coco>", scheme: SchemeLike = None, root: str | None = None) -> AnnotationSet:
    """An ``AnnotationSet`` from a decoded COCO keypoints document."""
    if not isinstance(doc, dict):
        raise AnnotationFormatError("top level is not a JSON object", source)
    images_json = _list(doc, "images", source, "top level")
    anns_json = _list(doc, "annotations", source, "top level")

    images: list[AnnotatedImage] = []
    by_id: dict[Any, AnnotatedImage] = {}
    for i, entry in enumerate(images_json):
        where = f"images[{i}]"
        _require(entry, ("id", "file_name"), source, where)
        _check_id(entry["id"], "id", source, where)
        if entry["id"] in by_id:
            raise AnnotationFormatError(f"duplicate image id {entry['id']!r}", source, where)
        file_name = entry["file_name"]
        if not isinstance(file_name, str) or not file_name:
            raise AnnotationFormatError("file_name is not a non-empty string", source, where)
        extra = {key: entry.get(key) for key in (_STATUS, _SHA256)}
        for key, value in extra.items():
            if value is not None and not isinstance(value, str):
                raise AnnotationFormatError(f"{key} {_short(value)} is not text", source, where)
        image = AnnotatedImage(path=file_name, width=_opt_int(entry, "width", source, where),
                               height=_opt_int(entry, "height", source, where), status=extra[_STATUS],
                               sha256=extra[_SHA256])
        by_id[entry["id"]] = image
        images.append(image)

    resolved: Scheme | None = None
    for i, ann in enumerate(anns_json):
        where = f"annotations[{i}]"
        _require(ann, ("image_id", "keypoints"), source, where)
        if "id" in ann:
            where += f" (id {_short(ann['id'])})"
        _check_id(ann["image_id"], "image_id", source, where)
        if ann["image_id"] not in by_id:
            raise AnnotationFormatError(f"image_id {ann['image_id']!r} is not in images", source, where)
        kp = _numbers(ann["keypoints"], "keypoints", source, where)
        if len(kp) % 3:
            raise AnnotationFormatError(f"keypoints has {len(kp)} values, not a multiple of 3 (x, y, v)", source, where)
        resolved = resolved or resolve_scheme(len(kp) // 3, scheme, source, where)
        if len(kp) // 3 != resolved.num_points:
            raise AnnotationFormatError(f"{len(kp) // 3} keypoints, but the file's scheme {resolved.name!r} has "
                                        f"{resolved.num_points}", source, where)
        triples = np.asarray(kp, dtype=np.float64).reshape(-1, 3)
        pts = np.where(triples[:, 2:3] == 0, np.nan, triples[:, :2])
        box = None
        if not ann.get(_FROM_LANDMARKS, False) and ann.get("bbox") is not None:
            bbox = _numbers(ann["bbox"], "bbox", source, where)
            if len(bbox) != 4:
                raise AnnotationFormatError(f"bbox has {len(bbox)} values, expected [x, y, w, h]", source, where)
            x, y, w, h = bbox
            box = to_float32(np.array([x, y, x + w, y + h]), source=source, where=where)
        hidden = triples[:, 2] == 1
        by_id[ann["image_id"]].faces.append(Face(to_float32(pts, source=source, where=where), box=box,
                                                ignore=bool(ann.get("iscrowd", 0)),
                                                occluded=hidden if hidden.any() else None))

    if resolved is None:
        resolved = _scheme_from_categories(doc, scheme, source)
    info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
    return AnnotationSet(images=images, scheme=resolved.name, name=_text(info, "description", source),
                         comment=_text(info, "comment", source), root=root)


def read_coco(path: PathLike, scheme: SchemeLike = None) -> AnnotationSet:
    path = Path(path)
    text = read_text(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise AnnotationFormatError(f"not valid JSON: {e.msg} (truncated file?)", str(path),
                                    f"line {e.lineno}, column {e.colno}") from None
    except RecursionError:  # "[[[[..." thousands deep
        raise AnnotationFormatError("not a COCO file: JSON nested too deeply", str(path)) from None
    except ValueError as e:  # an integer of more than 4300 digits
        raise AnnotationFormatError(f"not valid JSON: {e}", str(path)) from None
    return parse_coco(doc, str(path), scheme, root=str(path.parent))


def format_coco(aset: AnnotationSet, target: str = "<coco>") -> str:
    k = writable_count(aset, target)
    scheme = known_scheme(aset.scheme)
    category = {"id": 1, "name": "face", "supercategory": "face",
                "keypoints": list(scheme.names) if scheme else [str(i) for i in range(k)],
                "skeleton": skeleton(scheme) if scheme else []}
    images, annotations = [], []
    for image_id, im in enumerate(aset.images, 1):
        entry: dict[str, Any] = {"id": image_id, "file_name": im.path}
        entry.update({key: v for key, v in (("width", im.width), ("height", im.height)) if v is not None})
        entry.update({key: v for key, v in ((_STATUS, im.status), (_SHA256, im.sha256)) if v})
        images.append(entry)
        for face in im.faces:
            annotations.append(_annotation(face, len(annotations) + 1, image_id))
    doc = {"info": {"description": aset.name, "comment": aset.comment},
           "images": images, "annotations": annotations, "categories": [category]}
    return json.dumps(doc, allow_nan=False, indent=1) + "\n"


def write_coco(aset: AnnotationSet, path: PathLike) -> None:
    atomic_write_text(path, format_coco(aset, str(path)))


def _annotation(face: Face, ann_id: int, image_id: int) -> dict[str, Any]:
    keypoints: list[float | int] = []
    texts = format_coords(face.landmarks, missing="")
    for x, y, hidden in zip(texts[::2], texts[1::2], face.occluded_flags().tolist()):
        keypoints += [_json_number(x), _json_number(y), 1 if hidden else 2] if x and y else [0, 0, 0]
    if face.box is not None:
        x1, y1, x2, y2 = (float(v) for v in face.box)
    elif np.isfinite(face.landmarks).any():
        x1, y1, x2, y2 = (float(v) for v in face.landmark_box())
    else:
        x1 = y1 = x2 = y2 = 0.0
    x, y = _num(x1), _num(y1)
    w, h = _num(x2, -x), _num(y2, -y)  # the reader computes x2 = x + w in float64: invert exactly that
    ann = {"id": ann_id, "image_id": image_id, "category_id": 1, "keypoints": keypoints,
           "num_keypoints": int(np.isfinite(face.landmarks).all(axis=1).sum()), "bbox": [x, y, w, h],
           "area": _area(float(w) * float(h)), "iscrowd": int(face.ignore)}
    if face.box is None:
        ann[_FROM_LANDMARKS] = True
    return ann


def _num(value: float, offset: float = 0.0) -> float | int:
    """Short JSON number that reads back (minus ``offset``) to the same float32."""
    return _json_number(format_coord(value, offset))


def _area(area: float) -> float | int:
    """COCO's informational ``area`` (readers ignore it): short when it fits a float32, else the float64
    product as it is (a box 1e20 wide and tall would overflow float32 and stop the writer)."""
    return _num(area) if abs(area) < 3e38 else area


def _json_number(text: str) -> float | int:
    # json.dumps writes a float as its shortest repr, so float("34.32") comes out as 34.32 again;
    # whole numbers stay integers, as COCO files usually have them.
    return int(text) if text.lstrip("-").isdigit() else float(text)


def _scheme_from_categories(doc: dict, scheme: SchemeLike, source: str) -> Scheme:
    """A file without annotations still names its scheme through its category's keypoints."""
    cats = doc.get("categories")
    if isinstance(cats, list) and cats and isinstance(cats[0], dict) and isinstance(cats[0].get("keypoints"), list):
        return resolve_scheme(len(cats[0]["keypoints"]), scheme, source, "categories[0]")
    return resolve_scheme(68, scheme if scheme is not None else "ibug68", source, None)


def _list(doc: dict, key: str, source: str, where: str) -> list:
    value = doc.get(key)
    if not isinstance(value, list):
        raise AnnotationFormatError(f"{key!r} is missing or not a list (not a COCO file?)", source, where)
    return value


def _require(entry: Any, keys: tuple[str, ...], source: str, where: str) -> None:
    if not isinstance(entry, dict):
        raise AnnotationFormatError("is not a JSON object", source, where)
    for key in keys:
        if key not in entry:
            raise AnnotationFormatError(f"has no {key!r}", source, where)


def _numbers(value: Any, key: str, source: str, where: str) -> list[float]:
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              and math.isfinite(v) for v in value):
        raise AnnotationFormatError(f"{key} is not a list of finite numbers", source, where)
    return value


def _text(info: dict, key: str, source: str) -> str:
    value = info.get(key)
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        raise AnnotationFormatError(f"info.{key} is not text", source, "info")
    return str(value)


def _check_id(value: Any, key: str, source: str, where: str) -> None:
    """COCO ids are numbers (some tools use strings); a list or object as an id cannot be looked up."""
    if not isinstance(value, (int, float, str)):
        raise AnnotationFormatError(f"{key} {_short(value)} is not a number or a string", source, where)


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:  # a list nested hundreds deep
        text = f"<deeply nested {type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


def _opt_int(entry: dict, key: str, source: str, where: str) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise AnnotationFormatError(f"{key} {_short(value)} is not an integer", source, where)
    return value
