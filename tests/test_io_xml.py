from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _io_helpers import raises_at, write
from facelm.annotation import AnnotatedImage, AnnotationSet, Face
from facelm.errors import SchemeError
from facelm.io import read_annotations, write_annotations
from facelm.io.dlib_xml import format_dlib_xml, parse_dlib_xml, read_dlib_xml, write_dlib_xml

DLIB_FILES = ["training_with_face_landmarks.xml", "testing_with_face_landmarks.xml", "training.xml", "testing.xml"]


def doc(images: str, name: str = "n") -> str:
    return (f"<?xml version='1.0' encoding='ISO-8859-1'?>\n"
            f"<dataset><name>{name}</name><images>{images}</images></dataset>")


def box(parts: str = "", **attrs: str) -> str:
    a = {"top": "10", "left": "20", "width": "30", "height": "40", **attrs}
    return "<box " + " ".join(f"{k}='{v}'" for k, v in a.items() if v is not None) + f">{parts}</box>"


def parts(n: int, skip: tuple[int, ...] = ()) -> str:
    return "".join(f"<part name='{i:02d}' x='{i}' y='{i + 1}'/>" for i in range(n) if i not in skip)


# ------------------------------------------------------------------ dlib's real files

def test_training_file_known_values(shared_data: Path) -> None:
    aset = read_dlib_xml(shared_data / "dlib_examples_faces" / "training_with_face_landmarks.xml")
    assert aset.name == "Training faces" and aset.comment.startswith("These are images from the PASCAL VOC 2011")
    assert aset.scheme == "ibug68" and len(aset.images) == 4 and aset.num_faces() == 18
    first = aset.images[0]
    assert (first.path, first.width, first.height) == ("2007_007763.jpg", 500, 375)
    face = first.faces[0]
    assert face.box.tolist() == [194, 90, 194 + 37, 90 + 37]  # x1=left, y1=top, x2=left+width, y2=top+height
    assert face.landmarks.shape == (68, 2) and face.landmarks[0].tolist() == [201, 107]
    assert face.landmarks[16].tolist() == [231, 105]
    assert (Path(aset.root) / first.path).is_file()


def test_testing_file_known_values(shared_data: Path) -> None:
    aset = read_dlib_xml(shared_data / "dlib_examples_faces" / "testing_with_face_landmarks.xml")
    assert len(aset.images) == 5 and aset.num_faces() == 25
    assert aset.images[0].path == "2008_002470.jpg" and len(aset.images[0].faces) == 6
    assert aset.images[0].faces[0].box.tolist() == [274, 181, 274 + 52, 181 + 53]
    assert all(np.isfinite(f.landmarks).all() for im in aset.images for f in im.faces)


@pytest.mark.parametrize("name", DLIB_FILES)
def test_real_files_round_trip_byte_for_byte(shared_data: Path, tmp_path: Path, name: str) -> None:
    src = shared_data / "dlib_examples_faces" / name
    aset = read_annotations(src)
    assert format_dlib_xml(aset) == src.read_bytes()  # dlib's own layout, byte for byte
    write_annotations(aset, tmp_path / name)
    back = read_dlib_xml(tmp_path / name)
    assert back.images == aset.images and (back.name, back.comment) == (aset.name, aset.comment)


def test_detection_only_file_has_empty_landmarks(shared_data: Path) -> None:
    aset = read_dlib_xml(shared_data / "dlib_examples_faces" / "training.xml")
    assert aset.num_faces() == 18
    assert all(f.landmarks.shape == (0, 2) and f.box is not None for im in aset.images for f in im.faces)


# ------------------------------------------------------------------ conventions

def test_float_precision_round_trips_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    faces = [Face(rng.uniform(0, 500, (68, 2)), box=[12.3, 45.6, 78.9, 101.7]) for _ in range(3)]
    aset = AnnotationSet([AnnotatedImage("a.jpg", faces, width=640, height=480)], name="x & <y>", comment="c")
    write_dlib_xml(aset, tmp_path / "f.xml", precision=None)
    back = read_dlib_xml(tmp_path / "f.xml")
    assert back.images == aset.images and back.name == "x & <y>"


def test_integer_output_rounds_half_up() -> None:
    aset = AnnotationSet([AnnotatedImage("a.jpg", [Face(np.full((5, 2), 10.5), box=[0.4, 0.6, 10.5, 20.49])])],
                         scheme="celeba5")
    out = format_dlib_xml(aset).decode()
    assert "<box top='1' left='0' width='11' height='19'>" in out
    assert "<part name='00' x='11' y='11'/>" in out
    assert "x='10.50'" not in format_dlib_xml(aset, precision=2).decode()
    assert "x='10.5'" in format_dlib_xml(aset, precision=2).decode()


def test_ignore_missing_parts_and_stylesheet() -> None:
    pts = np.arange(136, dtype=np.float32).reshape(68, 2)
    pts[[3, 60]] = np.nan
    aset = AnnotationSet([AnnotatedImage("a.jpg", [Face(pts, box=[1, 2, 3, 4], ignore=True)])])
    out = format_dlib_xml(aset, stylesheet=False)
    assert b"xml-stylesheet" not in out and b"ignore='1'" in out
    assert b"name='03'" not in out and b"name='60'" not in out  # dlib's "part not present"
    assert parse_dlib_xml(out).images == aset.images


def test_faces_without_box_get_their_landmark_box() -> None:
    aset = AnnotationSet([AnnotatedImage("a.jpg", [Face(np.array([[1, 2], [5, 9], [3, 3], [4, 4], [2, 2]]))])],
                         scheme="celeba5")
    back = parse_dlib_xml(format_dlib_xml(aset))
    assert back.images[0].faces[0].box.tolist() == [1, 2, 5, 9]


def test_non_latin_names_survive(tmp_path: Path) -> None:
    aset = AnnotationSet([AnnotatedImage("фото/café 1'.jpg", [Face(np.zeros((5, 2)), box=[0, 0, 1, 1])])],
                         scheme="celeba5", comment="日本")
    write_dlib_xml(aset, tmp_path / "u.xml")
    back = read_dlib_xml(tmp_path / "u.xml")
    assert back.images == aset.images and back.comment == "日本"


def test_explicit_scheme_and_inferred_count() -> None:
    data = doc(f"<image file='a.jpg'>{box(parts(5))}</image>").encode()
    assert parse_dlib_xml(data).scheme == "celeba5"
    assert parse_dlib_xml(doc("<image file='a.jpg'>" + box() + "</image>").encode(), scheme="kaggle15").scheme == \
        "kaggle15"


# ------------------------------------------------------------------ bad input

def test_refuses_entity_expansion_bomb(tmp_path: Path) -> None:
    bomb = ("<?xml version='1.0'?>\n<!DOCTYPE dataset [<!ENTITY a 'aaaaaaaaaa'>"
            "<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'><!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'>]>"
            "<dataset><name>&c;</name><images/></dataset>")
    f = write(tmp_path, "bomb.xml", bomb)
    with raises_at(f, match="refused"):
        read_dlib_xml(f)


def test_refuses_external_entities(tmp_path: Path) -> None:
    xxe = ("<?xml version='1.0'?>\n<!DOCTYPE dataset [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
           "<dataset><name>&x;</name><images/></dataset>")
    f = write(tmp_path, "xxe.xml", xxe)
    with raises_at(f, match="refused"):
        read_annotations(f)


@pytest.mark.parametrize("content, where, match", [
    (doc("<image file='a.jpg'>" + box()), "line 2, column", "not well-formed"),       # truncated
    (doc("<image>" + box() + "</image>"), "image 1", "no 'file' attribute"),
    (doc("<image file='a.jpg'/><image file='b.jpg'>" + box(top=None) + "</image>"),
     "image 2 ('b.jpg') box 1", "no 'top' attribute"),
    (doc("<image file='a.jpg'>" + box(left="abc") + "</image>"), "image 1 ('a.jpg') box 1 attribute 'left'",
     "not a number"),
    (doc("<image file='a.jpg' width='5x'>" + box() + "</image>"), "image 1 ('a.jpg')", "not an integer"),
    (doc("<image file='a.jpg'/><image file='b.jpg'/><image file='c.jpg'>" + box() +
         box(parts(68) + "<part name='17' x='1' y='2'/>") + "</image>"),
     "image 3 ('c.jpg') box 2 part '17'", "duplicate part name"),
    (doc("<image file='a.jpg'>" + box("<part name='00' x='1'/>") + "</image>"), "image 1 ('a.jpg') box 1 part '00'",
     "no 'y' attribute"),
    (doc("<image file='a.jpg'>" + box("<part name='nose' x='1' y='1'/>") + "</image>"),
     "image 1 ('a.jpg') box 1 part 'nose'", "not a point number"),
    (doc("<image file='a.jpg'>" + box("<part x='1' y='1'/>") + "</image>"), "image 1 ('a.jpg') box 1 part 1",
     "no 'name' attribute"),
    (doc("<image file='a.jpg'>" + box("<part name='00' x='1' y='nan'/>") + "</image>"),
     "image 1 ('a.jpg') box 1 part '00' attribute 'y'", "not a finite number"),
    ("<?xml version='1.0'?><annotation><object/></annotation>", None, "expected <dataset>"),
    ("<?xml version='1.0'?><dataset><name/></dataset>", "<dataset>", "no <images>"),
])
def test_malformed_files_name_the_element(tmp_path: Path, content: str, where: str | None, match: str) -> None:
    f = write(tmp_path, "bad.xml", content)
    with raises_at(f, where, match=match):
        read_dlib_xml(f)


def test_wrong_point_count_is_a_scheme_error(tmp_path: Path) -> None:
    f = write(tmp_path, "67.xml", doc(f"<image file='a.jpg'>{box(parts(5))}{box(parts(67))}</image>"))
    with raises_at(f, "image 1 ('a.jpg') box 2", error=SchemeError, match="67 points"):
        read_dlib_xml(f)
    g = write(tmp_path, "70.xml", doc(f"<image file='a.jpg'>{box(parts(70))}</image>"))
    with raises_at(g, "image 1 ('a.jpg') box 1", error=SchemeError, match="70 points"):
        read_dlib_xml(g)
    with raises_at(g, "image 1 ('a.jpg') box 1 part '68'", match="beyond the scheme's 68"):
        read_dlib_xml(g, scheme="ibug68")
    # With the scheme named, a box may leave out trailing parts: they are missing (NaN).
    h = write(tmp_path, "60.xml", doc(f"<image file='a.jpg'>{box(parts(60))}</image>"))
    pts = read_dlib_xml(h, scheme="ibug68").images[0].faces[0].landmarks
    assert pts.shape == (68, 2) and np.isnan(pts[60:]).all() and np.isfinite(pts[:60]).all()


def test_wrong_encoding_and_empty_file(tmp_path: Path) -> None:
    f = write(tmp_path, "enc.xml", b"<?xml version='1.0' encoding='UTF-8'?>\n<dataset><name>\xff\xfe</name>"
                                   b"<images/></dataset>")
    with raises_at(f, "line 2, column", match="not well-formed"):
        read_dlib_xml(f)
    g = write(tmp_path, "empty.xml", b"  \n")
    with raises_at(g, match="empty file"):
        read_dlib_xml(g)


def test_status_occluded_and_hash_attributes_round_trip_and_dlib_ignores_them(shared_data: Path,
                                                                              tmp_path: Path) -> None:
    """facelm's own attributes (facelm_status on <image>, facelm_occluded on <part>, facelm_sha256)
    come back through facelm's reader; dlib's own loader, where installed, reads the same file and
    the same points."""
    aset = read_dlib_xml(shared_data / "dlib_examples_faces/training_with_face_landmarks.xml")
    aset.images[0].status, aset.images[0].sha256 = "done", "cd" * 32
    aset.images[0].faces[0].occluded = np.arange(aset.images[0].faces[0].num_points) % 4 == 1
    write_dlib_xml(aset, tmp_path / "a.xml")
    text = (tmp_path / "a.xml").read_text("iso-8859-1")
    assert "facelm_status='done'" in text and text.count("facelm_occluded='1'") == 17
    back = read_dlib_xml(tmp_path / "a.xml")
    assert back.images == aset.images
    assert back.images[1].status is None and back.images[1].faces[0].occluded is None
    try:
        import dlib
    except ImportError:
        return  # dlib is not a requirement; the check above still ran
    meta = dlib.image_dataset_metadata.load_image_dataset_metadata(str(tmp_path / "a.xml"))
    assert len(meta.images) == len(aset.images)
    first = meta.images[0].boxes[0]
    assert (first.parts["00"].x, first.parts["00"].y) == tuple(int(v) for v in aset.images[0].faces[0].landmarks[0])
