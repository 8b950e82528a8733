"""dlib's imglab XML (as in iBUG 300-W's ``labels_ibug_300W_train.xml`` and dlib's examples)::

    <dataset><name/><comment/>
    <images>
      <image file='a.jpg' width='500' height='375'>
        <box top='90' left='194' width='37' height='37' [ignore='1']>
          <part name='00' x='201' y='107'/> ...

Conventions:

- Box -> ``Face.box``: ``x1 = left``, ``y1 = top``, ``x2 = left + width``, ``y2 = top + height``;
  writing inverts this exactly. (dlib's own ``rectangle`` has ``right = left + width - 1``; we keep
  continuous coordinates so that a box's width is ``x2 - x1``.)
- Part names are point indices (``'00'``..``'67'``, zero-padded so that dlib's string order is point
  order). A box may omit parts: dlib's "part not present", NaN in memory; writing omits NaN points.
  A box with no parts at all (a detection-only file such as dlib's ``training.xml``) reads as a face
  with landmarks of shape (0, 2).
- Image paths are relative to the XML file's folder (``AnnotationSet.root``).
- Parsed only with ``defusedxml``: DTDs, entities and external references are refused.
- facelm's own attributes, which dlib's loader ignores (checked with
  ``dlib.image_dataset_metadata.load_image_dataset_metadata``): ``facelm_status='done'`` on an
  ``<image>`` (``AnnotatedImage.status``), ``facelm_sha256='...'`` (``AnnotatedImage.sha256``) and
  ``facelm_occluded='1'`` on a ``<part>`` (``Face.occluded``). Written only where set, so plain
  files stay plain.
- Other box attributes and children (``label``, dlib's box-level ``occluded``, ``pose`` ...) are not kept.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
import numpy as np
from defusedxml import DefusedXmlException

from ..annotation import AnnotatedImage, AnnotationSet, Face
from ..errors import AnnotationFormatError
from ..paths import atomic_write_bytes
from ..schemes import Scheme, get_scheme
from ._common import (PathLike, SchemeLike, format_coord, parse_number, read_bytes, resolve_scheme, to_float32,
                      writable_count)

__all__ = ["read_dlib_xml", "parse_dlib_xml", "format_dlib_xml", "write_dlib_xml"]

_STATUS = "facelm_status"
_SHA256 = "facelm_sha256"
_OCCLUDED = "facelm_occluded"
_OCCLUDED_ATTR = f" {_OCCLUDED}='1'"
STYLESHEET = "<?xml-stylesheet type='text/xsl' href='image_metadata_stylesheet.xsl'?>\n"


def parse_dlib_xml(data: bytes, source: str = "<xml>", scheme: SchemeLike = None,
                   root: str | None = None) -> AnnotationSet:
    """Parse imglab XML bytes (the XML declares its own encoding, so bytes, not text)."""
    if not data.strip():
        raise AnnotationFormatError("empty file", source)
    try:
        doc = SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as e:
        raise AnnotationFormatError(f"refused: DTDs, entities and external references are not allowed ({e!r})",
                                    source) from None
    except ParseError as e:
        line, col = getattr(e, "position", (0, 0))
        raise AnnotationFormatError(f"not well-formed XML: {_reason(e)} (truncated or wrong encoding?)", source,
                                    f"line {line}, column {col}") from None
    except (LookupError, ValueError) as e:  # <?xml encoding='no-such-codec'?>
        raise AnnotationFormatError(f"not readable XML: {e}", source) from None
    if doc.tag != "dataset":
        raise AnnotationFormatError(f"root element is <{doc.tag}>, expected <dataset> (not a dlib imglab file)", source)
    images_el = doc.find("images")
    if images_el is None:
        raise AnnotationFormatError("no <images> element", source, "<dataset>")

    # Parts first go into {index: (x, y)}: the point count is only known once every box is seen.
    raw: list[tuple[AnnotatedImage, list[tuple[Face, dict[int, tuple[float, float]], str]]]] = []
    for i, image_el in enumerate(images_el.findall("image"), 1):
        where = f"image {i}"
        path = _attr(image_el, "file", source, where)
        where = f"image {i} ({path!r})"
        width, height = (_int_attr(image_el, a, source, where) for a in ("width", "height"))
        boxes = []
        for j, box_el in enumerate(image_el.findall("box"), 1):
            bwhere = f"{where} box {j}"
            top, left, w, h = (parse_number(_attr(box_el, a, source, bwhere), source, f"{bwhere} attribute {a!r}")
                               for a in ("top", "left", "width", "height"))
            # Same float64 arithmetic as format_dlib_xml's inverse, so float boxes round-trip exactly.
            box = to_float32(np.array([left, top, left + w, top + h]), source=source, where=bwhere)
            ignore = _int_attr(box_el, "ignore", source, bwhere) or 0
            boxes.append((Face(np.zeros((0, 2), np.float32), box=box, ignore=bool(ignore)),
                          _parts(box_el, source, bwhere), bwhere))
        raw.append((AnnotatedImage(path=path, width=width, height=height, status=image_el.get(_STATUS),
                                   sha256=image_el.get(_SHA256)), boxes))

    resolved = _scheme_of(raw, scheme, source)
    for image, boxes in raw:
        for face, parts, bwhere in boxes:
            if parts:
                face.landmarks = _landmarks(parts, resolved.num_points, source, bwhere)
                hidden = [i for i, (*_, occluded) in parts.items() if occluded]
                if hidden:
                    face.occluded = np.zeros(resolved.num_points, bool)
                    face.occluded[hidden] = True
            image.faces.append(face)
    return AnnotationSet(images=[im for im, _ in raw], scheme=resolved.name, name=doc.findtext("name") or "",
                         comment=doc.findtext("comment") or "", root=root)


def read_dlib_xml(path: PathLike, scheme: SchemeLike = None) -> AnnotationSet:
    path = Path(path)
    return parse_dlib_xml(read_bytes(path), str(path), scheme, root=str(path.parent))


def format_dlib_xml(aset: AnnotationSet, precision: int | None = 0, stylesheet: bool = True,
                    target: str = "<xml>") -> bytes:
    """imglab XML bytes, laid out exactly as dlib's imglab writes them.

    ``precision=0`` (default) writes integers, the only thing dlib's loader reads; coordinates are
    rounded half up. ``precision=N`` writes N decimals, ``precision=None`` the shortest decimals that
    read back to the same float32 (exact round trip). Faces without a box get their landmarks' box.
    """
    writable_count(aset, target, allow_empty=True)
    texts = [("name", aset.name), ("comment", aset.comment)] + [("image path", im.path) for im in aset.images]
    for what, text in texts:
        _check_xml_text(text, what, target)
    fmt = _formatter(precision)
    out = ["<?xml version='1.0' encoding='ISO-8859-1'?>\n", STYLESHEET if stylesheet else "", "<dataset>\n",
           f"<name>{_esc(aset.name)}</name>\n", f"<comment>{_esc(aset.comment)}</comment>\n", "<images>\n"]
    for im in aset.images:
        size = "".join(f" {a}='{v}'" for a, v in (("width", im.width), ("height", im.height)) if v)
        status = "".join(f" {a}={_quote(v)}" for a, v in ((_STATUS, im.status), (_SHA256, im.sha256)) if v)
        out.append(f"  <image file={_quote(im.path)}{size}{status}>\n")
        for face in im.faces:
            x1, y1, x2, y2 = (float(v) for v in face.box_or_landmark_box())
            left, top = fmt(x1), fmt(y1)
            width, height = fmt(x2, -float(left)), fmt(y2, -float(top))
            out.append(f"    <box top='{top}' left='{left}' width='{width}' height='{height}'")
            if face.ignore:
                out.append(" ignore='1'")
            hidden = face.occluded_flags()
            parts = [f"      <part name='{k:02d}' x='{fmt(x)}' y='{fmt(y)}'{_OCCLUDED_ATTR if hidden[k] else ''}/>\n"
                     for k, (x, y) in enumerate(face.landmarks) if math.isfinite(x) and math.isfinite(y)]
            out.append(">\n" + "".join(parts) + "    </box>\n" if parts else "/>\n")
        out.append("  </image>\n")
    out.append("</images>\n</dataset>")
    # dlib declares ISO-8859-1; characters beyond it become character references, which any XML reader takes.
    return "".join(out).encode("iso-8859-1", "xmlcharrefreplace")


def write_dlib_xml(aset: AnnotationSet, path: PathLike, precision: int | None = 0, stylesheet: bool = True) -> None:
    atomic_write_bytes(path, format_dlib_xml(aset, precision, stylesheet, str(path)))


def _formatter(precision: int | None):
    """``fmt(value, offset)``: the text for ``value`` such that a reader computing ``text - offset``
    gets ``value`` back (offset = -left for a box's width, since x2 = left + width)."""
    if precision is None:
        return format_coord
    if precision < 0:
        raise ValueError(f"precision must be None or >= 0, got {precision}")

    def fmt(value: float, offset: float = 0.0) -> str:
        v = float(np.float32(value)) + offset
        if precision == 0:
            return str(math.floor(v + 0.5))
        s = f"{v:.{precision}f}".rstrip("0").rstrip(".")
        return "0" if s == "-0" else s
    return fmt


def _scheme_of(raw, scheme: SchemeLike, source: str) -> Scheme:
    """Point count = highest part index + 1 over the file, unless the caller names the scheme (then
    ``_landmarks`` refuses indices beyond it, and boxes may omit trailing parts)."""
    if scheme is not None:
        return get_scheme(scheme)
    top, where = -1, None
    for _, boxes in raw:
        for _, parts, bwhere in boxes:
            if parts and max(parts) > top:
                top, where = max(parts), bwhere
    if top < 0:  # detection-only file: any scheme fits
        return get_scheme("ibug68")
    return resolve_scheme(top + 1, None, source, where)


def _parts(box_el: Element, source: str, bwhere: str) -> dict[int, tuple[float, float, bool]]:
    """{index: (x, y, occluded)}."""
    parts: dict[int, tuple[float, float, bool]] = {}
    for n, part_el in enumerate(box_el.findall("part"), 1):
        name = _attr(part_el, "name", source, f"{bwhere} part {n}")
        pwhere = f"{bwhere} part {name!r}"
        if not (name.strip().isascii() and name.strip().isdigit()) or len(name.strip()) > 9:
            raise AnnotationFormatError("part name is not a point number such as '07'", source, pwhere)
        index = int(name)
        if index in parts:
            raise AnnotationFormatError("duplicate part name", source, pwhere)
        x, y = (parse_number(_attr(part_el, a, source, pwhere), source, f"{pwhere} attribute {a!r}")
                for a in ("x", "y"))
        parts[index] = (x, y, (_int_attr(part_el, _OCCLUDED, source, pwhere) or 0) != 0)
    return parts


def _landmarks(parts: dict[int, tuple[float, float, bool]], k: int, source: str, bwhere: str) -> np.ndarray:
    pts = np.full((k, 2), np.nan, dtype=np.float64)
    for index, (x, y, _) in parts.items():
        if index >= k:
            raise AnnotationFormatError(f"part index {index} is beyond the scheme's {k} points", source,
                                        f"{bwhere} part '{index:02d}'")
        pts[index] = (x, y)
    return to_float32(pts, source=source, where=bwhere)


def _attr(el: Element, name: str, source: str, where: str) -> str:
    value = el.get(name)
    if value is None:
        raise AnnotationFormatError(f"<{el.tag}> has no {name!r} attribute", source, where)
    return value


def _int_attr(el: Element, name: str, source: str, where: str) -> int | None:
    value = el.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise AnnotationFormatError(f"attribute {name}={value!r} is not an integer", source, where) from None


def _reason(e: ParseError) -> str:
    return str(e).split(":")[0]


# Characters XML 1.0 cannot carry at all, not even as &#...; references.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _check_xml_text(text: str, what: str, target: str) -> None:
    m = _XML_ILLEGAL.search(text)
    if m:
        raise AnnotationFormatError(f"{what} {text[:60]!r} holds the character {m.group()!r}, which XML cannot hold; "
                                    "nothing was written", target)


def _esc(text: str) -> str:
    # A raw "\r" in text would come back as "\n" (XML normalises line ends): write it as a reference.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _quote(text: str) -> str:
    # Raw tabs and line ends in an attribute come back as spaces (attribute value normalisation).
    return "'" + _esc(text).replace("'", "&apos;").replace("\t", "&#9;").replace("\n", "&#10;") + "'"
