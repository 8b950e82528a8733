"""Property-based fuzzing of every annotation parser and writer (a short run for CI; the long run is
``python tests/tools/fuzz_parsers.py --cases 10000``).

For each format (.pts, dlib XML, keypoint CSV, CelebA CSV and .txt, Kaggle CSV, COCO JSON):

- random valid annotation sets round-trip exactly (write, read back, equal bit for bit);
- mutated real files (../shared/data, where present), mutated freshly written files, random bytes
  and "token soup" give facelm's own errors (``FacelmError`` subclasses) or a set that writes and
  reads back unchanged: never another exception type, a crash, or a numpy overflow warning.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _fuzz_helpers import (TARGETS, VALID_SETS, _scratch, check_bytes, check_round_trip, junk,
                           mutated_seeds, mutated_written)
from facelm.annotation import AnnotatedImage, AnnotationSet, Face
from facelm.errors import AnnotationFormatError, FacelmError
from facelm.io import read_annotations
from facelm.io.coco import read_coco
from facelm.io.csv_formats import read_celeba, write_keypoint_csv
from facelm.io.dlib_xml import format_dlib_xml, parse_dlib_xml, read_dlib_xml, write_dlib_xml
from facelm.io.pts import read_pts

NAMES = list(TARGETS)
# ~160 examples per parser in all: enough to catch regressions of the bugs below in CI, in seconds.
def fast(n: int) -> settings:
    return settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("name", NAMES)
def test_valid_sets_round_trip_exactly(name: str) -> None:
    @fast(50)
    @given(VALID_SETS[name])
    def prop(aset):
        check_round_trip(TARGETS[name], aset)
    prop()


@pytest.mark.parametrize("name", NAMES)
def test_mutated_files_give_only_facelm_errors(name: str) -> None:
    @fast(60)
    @given(mutated_seeds(name))
    def prop(data):
        check_bytes(TARGETS[name], data)
    prop()


@pytest.mark.parametrize("name", NAMES)
def test_mutated_written_files_give_only_facelm_errors(name: str) -> None:
    @fast(25)
    @given(mutated_written(name))
    def prop(data):
        check_bytes(TARGETS[name], data)
    prop()


@pytest.mark.parametrize("name", NAMES)
def test_random_bytes_give_only_facelm_errors(name: str) -> None:
    @fast(25)
    @given(junk(name))
    def prop(data):
        check_bytes(TARGETS[name], data)
    prop()


# ---------------------------------------------------------------- the bugs the fuzzer found, pinned

def _file(name: str, data: str | bytes):
    path = _scratch("pinned") / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("name, data, reader, match", [
    # COCO: ids that are lists or objects (TypeError: unhashable), JSON nested thousands deep
    # (RecursionError), integers of more than 4300 digits (plain ValueError).
    ("id.json", '{"images": [{"id": [1], "file_name": "a"}], "annotations": []}', read_coco, "not a number or"),
    ("image_id.json", '{"images": [], "annotations": [{"image_id": {}, "keypoints": []}]}', read_coco,
     "not a number or"),
    ("deep.json", "[" * 100000 + "]" * 100000, read_coco, "nested too deeply"),
    ("bigint.json", '{"images": [{"id": ' + "1" * 5000 + ', "file_name": "a"}]}', read_coco, "not valid JSON"),
    ("info.json", '{"images": [], "annotations": [], "info": {"description": [[1]]}}', read_coco, "not text"),
    # CelebA list: "²".isdigit() is true but int("²") fails (plain ValueError).
    ("sup.txt", "\u00b2\nlefteye_x\n", read_celeba, "unexpected header"),
    ("sup2.txt", "\u00b2\nlefteye_x\n", read_annotations, "none of the known tables"),
    # dlib XML: unknown encodings (LookupError), part names of thousands of digits (plain ValueError).
    ("enc.xml", "<?xml version='1.0' encoding='no-such-codec'?><dataset/>", read_dlib_xml, "unknown encoding"),
    ("part.xml", "<dataset><images><image file='a'><box top='0' left='0' width='1' height='1'><part name='"
     + "1" * 5000 + "' x='1' y='2'/></box></image></images></dataset>", read_dlib_xml, "not a point number"),
    # Numbers beyond float32 became infinity silently (then no writer could write the set back).
    ("big.xml", "<dataset><images><image file='a'><box top='0' left='0' width='1e300' height='1'/></image>"
     "</images></dataset>", read_dlib_xml, "beyond the float32 range"),
    ("sum.xml", "<dataset><images><image file='a'><box top='0' left='3e38' width='3e38' height='1'/></image>"
     "</images></dataset>", read_dlib_xml, "beyond the float32 range"),
    ("big.pts", "version: 1\nn_points: 5\n{\n1e300 1\n1 1\n1 1\n1 1\n1 1\n}\n", read_pts, "beyond the float32"),
    ("big.csv", "image_id,lefteye_x,lefteye_y,righteye_x,righteye_y,nose_x,nose_y,leftmouth_x,leftmouth_y,"
     "rightmouth_x,rightmouth_y\na.jpg,1,2,3,4,5,6,7,8,9,1e39\n", read_celeba, "beyond the float32"),
])
def test_pinned_findings_are_format_errors(name: str, data: str, reader, match: str) -> None:
    with pytest.raises(AnnotationFormatError, match=match):
        reader(_file(name, data))


def test_coco_huge_coordinates_are_refused() -> None:
    doc = {"images": [{"id": 1, "file_name": "a"}],
           "annotations": [{"image_id": 1, "keypoints": [1e300, 1, 2] * 5}]}
    with pytest.raises(AnnotationFormatError, match="float32"):
        read_coco(_file("bigkp.json", json.dumps(doc)))


def test_xml_writer_keeps_line_ends_and_tabs_and_refuses_what_xml_cannot_hold() -> None:
    face = Face(np.ones((5, 2), np.float32), box=np.array([0, 0, 2, 2], np.float32))
    aset = AnnotationSet([AnnotatedImage("a\tb\r\nc.jpg", [face])], scheme="celeba5", name="x\r\ny", comment="\r")
    back = parse_dlib_xml(format_dlib_xml(aset, precision=None), scheme="celeba5")
    assert back.images == aset.images and (back.name, back.comment) == ("x\r\ny", "\r")
    for bad in ("a\x01.jpg", "a\x00", "\ud800", "\uffff"):
        with pytest.raises(AnnotationFormatError, match="XML cannot hold"):
            write_dlib_xml(AnnotationSet([AnnotatedImage(bad, [face])], scheme="celeba5"), _scratch("pinned") / "w.xml")


@pytest.mark.parametrize("bad", ["", " a.jpg", "a.jpg\t"])
def test_table_writers_refuse_names_that_would_not_read_back(bad: str) -> None:
    aset = AnnotationSet([AnnotatedImage(bad, [Face(np.ones((5, 2), np.float32))])], scheme="celeba5")
    with pytest.raises(AnnotationFormatError, match="white space"):
        write_keypoint_csv(aset, _scratch("pinned") / "w.csv")


def test_wide_headers_are_refused_fast() -> None:
    # _layout counted duplicates with list.count: O(n^2) on a 100,000-column header (minutes).
    header = "image_id," + ",".join(f"c{i}" for i in range(100000)) + "\n"
    with pytest.raises(FacelmError):
        read_celeba(_file("wide.csv", header))


@fast(30)
@given(st.binary(max_size=64))
def test_auto_detection_on_junk(data: bytes) -> None:
    for suffix in (".csv", ".txt", ".xml", ".json", ".pts"):
        try:
            read_annotations(_file("junk" + suffix, data))
        except FacelmError:
            pass
