"""Hostile files: XML entity attacks, decompression bombs, file names that try to leave their folder,
and oversized uploads; through the library and through the running app.

(The two classic XML attacks, a 3-level entity bomb and a SYSTEM entity on /etc/passwd, are in
test_io_xml.py; these are the other ways in.)
"""
from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from _app_helpers import MAX_FILE_SIZE, shared_app, tiny_photo
from facelm.annotation import AnnotatedImage, AnnotationSet, Face
from facelm.annotation_store import Project, ProjectError
from facelm.errors import AnnotationFormatError, ImageError, UnsafePathError
from facelm.image import MAX_PIXELS, load_pil, to_rgb_array
from facelm.io import image_file, read_annotations, save_embedded_images, write_annotations
from facelm.io.dlib_xml import read_dlib_xml
from facelm.io.pts import write_pts_folder
from facelm.paths import safe_join

SECRET = "TOP-SECRET-CONTENT-4711"

# ------------------------------------------------------------------------------------------ XML

PARTS = "".join(f"<part name='{i:02d}' x='{i}' y='{i}'/>" for i in range(5))
BOX = f"<box top='0' left='0' width='10' height='10'>{PARTS}</box>"


def _xml_attacks(secret_file: Path) -> dict[str, bytes]:
    uri = secret_file.as_uri()
    laughs = "<!ENTITY l0 'lol'>" + "".join(f"<!ENTITY l{i} '{('&l%d;' % (i - 1)) * 10}'>" for i in range(1, 10))
    attacks = {
        "billion laughs, 10 levels": f"<!DOCTYPE dataset [{laughs}]><dataset><name>&l9;</name><images/></dataset>",
        "quadratic blowup": f"<!DOCTYPE dataset [<!ENTITY a '{'x' * 50000}'>]><dataset><name>{'&a;' * 5000}</name>"
                            "<images/></dataset>",
        "external entity in an attribute": f"<!DOCTYPE dataset [<!ENTITY x SYSTEM '{uri}'>]><dataset><images>"
                                           f"<image file='&x;'>{BOX}</image></images></dataset>",
        "parameter entity": f"<!DOCTYPE dataset [<!ENTITY % p SYSTEM '{uri}'> %p;]><dataset><images/></dataset>",
        "external DTD": "<!DOCTYPE dataset SYSTEM 'http://127.0.0.1:9/evil.dtd'><dataset><images/></dataset>",
        "public external DTD": "<!DOCTYPE dataset PUBLIC '-//E//EN' 'http://127.0.0.1:9/e.dtd'><dataset><images/>"
                               "</dataset>",
        "internal DTD only": "<!DOCTYPE dataset [<!ELEMENT dataset ANY>]><dataset><images/></dataset>",
        "unparsed entity": f"<!DOCTYPE dataset [<!NOTATION n SYSTEM 'x'><!ENTITY u SYSTEM '{uri}' NDATA n>]>"
                           "<dataset><images/></dataset>",
    }
    out = {k: ("<?xml version='1.0'?>\n" + v).encode() for k, v in attacks.items()}
    # The same XXE in UTF-16 (a filter on ASCII bytes would miss it).
    out["external entity, UTF-16"] = ("<?xml version='1.0' encoding='UTF-16'?>\n<!DOCTYPE dataset [<!ENTITY x "
                                      f"SYSTEM '{uri}'>]><dataset><name>&x;</name><images/></dataset>").encode("utf-16")
    return out


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    f = tmp_path / "outside" / "secret.txt"
    f.parent.mkdir()
    f.write_text(SECRET)
    return f


def test_xml_entity_attacks_are_refused(tmp_path: Path, secret_file: Path) -> None:
    for name, data in _xml_attacks(secret_file).items():
        f = tmp_path / "attack.xml"
        f.write_bytes(data)
        t = time.perf_counter()
        for read in (read_dlib_xml, read_annotations):
            with pytest.raises(AnnotationFormatError) as e:
                read(f)
            assert "refused" in str(e.value), name
            assert SECRET not in str(e.value)
        assert time.perf_counter() - t < 2, f"{name}: took {time.perf_counter() - t:.1f} s to refuse"


def test_xinclude_is_not_processed(tmp_path: Path, secret_file: Path) -> None:
    f = tmp_path / "xi.xml"
    f.write_text("<dataset xmlns:xi='http://www.w3.org/2001/XInclude'><name><xi:include href="
                 f"'{secret_file}' parse='text'/></name><images/></dataset>")
    aset = read_dlib_xml(f)
    assert SECRET not in aset.name + aset.comment


# ------------------------------------------------------------------------------------- image bombs

def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG of a few bytes of pixel data whose header says ``width`` x ``height``."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + \
        _chunk(b"IEND", b"")


def png_bomb(width: int, height: int) -> bytes:
    """A real decompression bomb: a complete 1-bit black PNG, ~1000x smaller than its pixels."""
    row = b"\x00" * (1 + (width + 7) // 8)
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _patched(fmt: str, width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format=fmt)
    b = bytearray(buf.getvalue())
    if fmt == "JPEG":  # SOF0: FFC0, length, precision, height, width
        i = b.index(b"\xff\xc0")
        b[i + 5:i + 9] = struct.pack(">HH", height, width)
    elif fmt == "GIF":  # logical screen and image descriptor sizes
        b[6:10] = struct.pack("<HH", width, height)
        i = b.index(b"\x2c")
        b[i + 5:i + 9] = struct.pack("<HH", width, height)
    elif fmt == "BMP":
        b[18:26] = struct.pack("<ii", width, height)
    return bytes(b)


BOMBS = {
    "PNG header 20000x20000": lambda: png_claiming(20000, 20000),
    "PNG header 1x4294967295": lambda: png_claiming(1, 2**31 - 1),
    "JPEG header 60000x60000": lambda: _patched("JPEG", 60000, 60000),
    "GIF header 65535x65535": lambda: _patched("GIF", 65535, 65535),
    "BMP header 30000x30000": lambda: _patched("BMP", 30000, 30000),
    "real PNG bomb 8100x8100 (1 kB per MB)": lambda: png_bomb(8100, 8100),
}


@pytest.mark.parametrize("name", BOMBS)
def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path, name: str) -> None:
    data = BOMBS[name]()
    assert len(data) < 200_000
    path = tmp_path / "bomb.img"
    path.write_bytes(data)
    t = time.perf_counter()
    for source in (data, path, str(path)):
        with pytest.raises(ImageError, match="limit|bomb"):
            to_rgb_array(source)
        with pytest.raises(ImageError, match="limit|bomb"):
            load_pil(source)
    assert time.perf_counter() - t < 3


def test_pixel_limit_is_exactly_the_documented_one() -> None:
    assert MAX_PIXELS == 64_000_000
    buf = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buf, format="PNG")
    assert to_rgb_array(buf.getvalue(), max_pixels=10_000).shape == (100, 100, 3)
    with pytest.raises(ImageError, match="above the limit of 9,999"):
        to_rgb_array(buf.getvalue(), max_pixels=9_999)
    # A header at the limit passes the size check (and then fails honestly on the missing pixels).
    side = int(MAX_PIXELS ** 0.5)
    with pytest.raises(ImageError, match="not a readable image"):
        load_pil(png_claiming(side, side))
    with pytest.raises(ImageError, match="above the limit"):
        load_pil(png_claiming(side, side + 1))
    # Arrays and PIL images too, without allocating anything: a broadcast view claims 9000x9000.
    with pytest.raises(ImageError, match="above the limit"):
        to_rgb_array(np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (9000, 9000, 3)))


def test_landmarker_refuses_bombs(tmp_path: Path) -> None:
    from facelm import FaceLandmarker
    fl = FaceLandmarker.from_pretrained(None, detector=None)
    (tmp_path / "bomb.png").write_bytes(png_bomb(8100, 8100))
    for source in (tmp_path / "bomb.png", png_claiming(20000, 20000)):
        with pytest.raises(ImageError, match="limit"):
            fl.predict(source, boxes=[[0, 0, 10, 10]])
    small = FaceLandmarker.from_pretrained(None, detector=None, max_pixels=1000)
    with pytest.raises(ImageError, match="above the limit of 1,000"):
        small.predict(np.zeros((40, 40, 3), np.uint8), boxes=[[0, 0, 10, 10]])


# ------------------------------------------------------------------------------------- file names

ESCAPES = ["../secret.jpg", "sub/../../secret.jpg", "..\\secret.jpg", "/etc/passwd", "C:\\secret.jpg",
           "\\\\host\\share\\secret.jpg", "link/secret.jpg", "filelink.jpg", "a\x00.jpg"]


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """``root/`` with a symlinked folder and file leading out of it, and a secret beside it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir(exist_ok=True)
    (outside / "secret.jpg").write_bytes(b"secret")
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    (root / "link").symlink_to(outside)
    (root / "filelink.jpg").symlink_to(outside / "secret.jpg")
    (root / "sub").mkdir()
    (root / "ok.jpg").write_bytes(b"fine")
    return root


def _xml_naming(root: Path, names: list[str]) -> Path:
    from xml.sax.saxutils import quoteattr
    images = "".join(f"<image file={quoteattr(n.replace(chr(0), '&#0;'))}>{BOX}</image>" for n in names
                     if "\x00" not in n)
    f = root / "hostile.xml"
    f.write_text(f"<dataset><images>{images}<image file='ok.jpg'>{BOX}</image></images></dataset>")
    return f


def test_xml_referenced_images_cannot_leave_their_folder(planted: Path) -> None:
    aset = read_dlib_xml(_xml_naming(planted, ESCAPES))
    *hostile, ok = aset.images
    for im in hostile:
        with pytest.raises(UnsafePathError):
            image_file(aset, im)
    assert image_file(aset, ok).read_bytes() == b"fine"
    for name in ESCAPES:
        with pytest.raises(UnsafePathError):
            safe_join(planted, name)


def test_dataset_loader_refuses_escaping_image_names(planted: Path) -> None:
    from facelm.data import load_dataset
    with pytest.raises(UnsafePathError):
        load_dataset(_xml_naming(planted, ["../secret.jpg"]))


def test_writers_cannot_write_outside_their_folder(planted: Path, tmp_path: Path) -> None:
    face = Face(np.ones((5, 2), np.float32))
    for name in ["../../evil.jpg", "/tmp/evil.jpg", "link/evil.jpg", "..\\evil.jpg"]:
        aset = AnnotationSet([AnnotatedImage(name, [face], pixels=np.zeros((4, 4), np.uint8))], scheme="celeba5")
        with pytest.raises(UnsafePathError):
            write_pts_folder(aset, planted)
        with pytest.raises(UnsafePathError):
            write_annotations(aset, planted, format="pts")  # a folder of .pts
        with pytest.raises(UnsafePathError):
            save_embedded_images(aset, planted)
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}
    assert written == {"secret.jpg", "outside/secret.jpg", "root/ok.jpg"}
    assert (tmp_path / "outside" / "secret.jpg").read_bytes() == b"secret"


def test_annotation_store_keeps_to_its_folder(planted: Path, tmp_path: Path) -> None:
    for pid in ["../x", "/tmp/x", "a/b", "..", "", ".hidden", "a" * 65, "x\x00"]:
        with pytest.raises(ProjectError):
            Project.create(planted, pid, "celeba5")
    (planted / "linked").symlink_to(tmp_path / "outside")  # a project folder planted as a link
    with pytest.raises(UnsafePathError):
        Project.create(planted, "linked", "celeba5")
    proj = Project.create(planted, "p1", "celeba5")
    item = proj.add_image(tiny_photo(tmp_path / "face.png"), "../../../../tmp/evil name.png", [])
    assert proj.image_path(item).resolve().parent == (planted / "p1" / "images").resolve()
    for item_id in ["../../x", "0001/../../x", "/etc/passwd", "1"]:
        with pytest.raises(ProjectError):
            proj.save_faces(item_id, [])
    assert not (tmp_path / "outside" / "project.json").exists()


# ------------------------------------------------------------------------------------- the app

@pytest.fixture(scope="module")
def app():
    return shared_app()


def _upload(app, name: str, data: bytes) -> httpx.Response:
    return httpx.post(app.url + "gradio_api/upload", files=[("files", (name, data, "application/octet-stream"))],
                      timeout=60)


def test_oversized_uploads_are_refused(app) -> None:
    # FACELM_MAX_FILE_SIZE reaches Gradio's launch(max_file_size=...) (the app's default is 20mb).
    assert httpx.get(app.url + "config", timeout=30).json()["max_file_size"] == MAX_FILE_SIZE
    big = _upload(app, "big.jpg", b"\xff" * (MAX_FILE_SIZE + 1))
    assert big.status_code == 413 and "maximum allowed size" in big.text
    ok = _upload(app, "ok.jpg", b"\xff" * (MAX_FILE_SIZE - 1000))
    assert ok.status_code == 200, ok.text
    # gradio_client refuses before sending, with the server's limit.
    from gradio_client import handle_file
    f = Path(app.workdir) / "big.jpg"
    f.write_bytes(b"\xff" * (MAX_FILE_SIZE + 1))
    with pytest.raises(ValueError, match="maximum file size"):
        app.client().predict(handle_file(str(f)), api_name="/predict")


def test_upload_names_cannot_escape(app, tmp_path: Path) -> None:
    target = tmp_path / "escaped.png"
    for name in [f"../../../../../../..{target}", str(target), "..\\..\\escaped.png"]:
        r = _upload(app, name, b"\x89PNG not really")
        assert r.status_code in (200, 400), r.text
        if r.status_code == 200:
            [stored] = r.json()
            assert Path(stored).resolve().is_relative_to((Path(app.workdir) / "gradio").resolve()), stored
    assert not target.exists()


def test_file_route_does_not_serve_other_files(app) -> None:
    project_file = next(iter(Path(app.annotations).rglob("project.json")), None)
    for path in ["/etc/passwd", str(Path(app.annotations)), *( [str(project_file)] if project_file else []),
                 str(Path(app.workdir) / "app.log"), "../../../../etc/passwd"]:
        r = httpx.get(app.url + "gradio_api/file=" + path, timeout=30)
        assert r.status_code in (403, 404), (path, r.status_code)
        assert "root:" not in r.text


def test_app_refuses_hostile_inputs_and_keeps_serving(app, tmp_path: Path, secret_file: Path) -> None:
    from gradio_client import handle_file
    client = app.client()
    photo = tiny_photo(tmp_path / "face.png")
    # XML attacks uploaded to the compare and annotate tabs.
    xxe = tmp_path / "face.xml"
    xxe.write_bytes(_xml_attacks(secret_file)["external entity in an attribute"])
    for call in (lambda: client.predict(handle_file(str(photo)), handle_file(str(xxe)), "", api_name="/compare_upload"),
                 lambda: client.predict("", [handle_file(str(photo)), handle_file(str(xxe))], "", 1, "prediction", "",
                                        api_name="/annotate_load")):
        with pytest.raises(Exception, match="refused") as e:
            call()
        assert SECRET not in str(e.value)
    # Decompression bombs as the photo: a header claiming 400 M pixels (Pillow's own guard, in the
    # app's upload handling) and a real 65.6 M pixel bomb (between facelm's limit and Pillow's).
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(20000, 20000))
    with pytest.raises(Exception, match="limit|bomb|too large"):
        client.predict(handle_file(str(bomb)), api_name="/predict")
    bomb.write_bytes(png_bomb(8100, 8100))
    with pytest.raises(Exception, match="above the limit of 64,000,000"):
        client.predict(handle_file(str(bomb)), api_name="/predict")
    # Project ids that try to leave the annotations folder.
    for pid in ["../../outside", "/tmp", "..", "a/../../b"]:
        for api, args in [("/annotate_resume", (pid,)), ("/save_edit", (pid, {"item": "0001", "dirty": True,
                                                                              "faces": []})),
                          ("/export", (pid, "all", False))]:
            with pytest.raises(Exception, match="project name"):
                client.predict(*args, api_name=api)
    # Local dataset paths outside the demo data and the annotations (FACELM_LOCAL_PATHS=restricted).
    for spec in ["/etc", str(tmp_path), str(Path(app.annotations) / ".." / "..")]:
        with pytest.raises(Exception, match="limited"):
            client.predict(spec, 0, "", api_name="/compare")
    # Still serving normal requests.
    out = client.predict(handle_file(str(photo)), api_name="/predict")
    assert isinstance(out[2], dict) and out[2]["images"][0]["width"] == 96
    assert not any(p.name in ("outside", "b") for p in Path(app.annotations).parent.rglob("*"))
    client.close()


MALFORMED_EDITS = [
    {"faces": [{"points": [[1, 2]], "box": None}]},  # too few points
    {"faces": [{"points": [[1, 2, 3]] * 68}]},
    {"faces": [{"points": [[1, 2]] * 67 + [[1]]}]},  # ragged
    {"faces": [{"points": [["a", 2]] * 68}]},
    {"faces": [{"points": [[None, 2]] * 68}]},
    {"faces": [{"points": [[1e300, 2]] * 68}]},
    {"faces": [{"points": [[1, 2]] * 68, "box": {"a": 1}}]},
    {"faces": [{"points": [[1, 2]] * 68, "box": [1, 2, 3]}]},
    {"faces": [{"points": {"x": 1}}]},
    {"item": ["0001"], "faces": []},
    {"item": "9999", "faces": []},
    {"faces": "nope"},
    {"faces": [[1, 2]]},
    {"faces": [{"points": [[1, 2]] * 68, "occluded": [1] * 68}]},  # flags must be true/false
    {"faces": [{"points": [[1, 2]] * 68, "occluded": [False] * 5}]},
    {"revision": "0", "faces": []},
    {"op": "format_disk", "faces": []},
    {"op": "add_face", "box": [1, 2, 3], "faces": []},
]


@pytest.fixture(scope="module")
def edit_target(app, tmp_path_factory):
    from gradio_client import handle_file
    client = app.client()
    photo = tiny_photo(tmp_path_factory.mktemp("edit") / "face.png")
    project = client.predict("", [handle_file(str(photo))], "", 1, "prediction", "", api_name="/annotate_load")[0]
    yield client, project, Path(app.annotations) / project / "items" / "0001.json"
    client.close()


@pytest.mark.parametrize("edit", MALFORMED_EDITS)
def test_malformed_edits_are_refused_and_change_nothing(edit_target, edit: dict) -> None:
    client, project, item_file = edit_target
    before = item_file.read_bytes()
    with pytest.raises(Exception):
        client.predict(project, {"item": "0001", "revision": 0, "dirty": True, **edit}, api_name="/save_edit")
    assert item_file.read_bytes() == before
