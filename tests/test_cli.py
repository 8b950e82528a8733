"""The command line on real photos: subprocess runs for the exit codes and output users see, and
in-process runs (no interpreter start-up) for the other formats and commands."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelm.cli import main
from facelm.io import read_annotations, read_pts

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "facelm", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)


@pytest.fixture(scope="module")
def photos(shared_data, tmp_path_factory) -> Path:
    """A folder of 2 real photos (one group photo of 3 faces, one 300-W face) and an unreadable file."""
    folder = tmp_path_factory.mktemp("photos")
    shutil.copy(shared_data / "dlib_examples_faces" / "2008_002506.jpg", folder / "group.jpg")
    (folder / "sub").mkdir()
    shutil.copy(shared_data / "300w" / "helen_trainset" / "100040721_1.jpg", folder / "sub" / "face.jpg")
    return folder


def test_predict_json_with_overlay_and_a_broken_file(photos, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out" / "results.json"
    r = run_cli("predict", str(photos), str(broken), "--out", str(out), "--overlay", str(tmp_path / "ov"),
                "--detector", "haar_frontal")
    assert r.returncode == 1, r.stderr  # one unreadable input: the rest is written, the status says so
    assert "broken.png" in r.stderr and "Traceback" not in r.stderr
    doc = json.loads(out.read_text())
    assert doc["scheme"] == "ibug68" and [e["image"] for e in doc["errors"]] == [str(broken)]
    by_name = {Path(im["image"]).name: im for im in doc["images"]}
    assert set(by_name) == {"group.jpg", "face.jpg"}
    group = by_name["group.jpg"]
    assert (group["width"], group["height"]) == (500, 375) and len(group["faces"]) >= 2
    for face in group["faces"]:
        assert np.asarray(face["landmarks"]).shape == (68, 2) and len(face["box"]) == 4
    overlay = Image.open(tmp_path / "ov" / "sub" / "face.jpg")
    assert overlay.size == Image.open(photos / "sub" / "face.jpg").size


def test_predict_xml_reads_back(photos, tmp_path):
    out = tmp_path / "pred.xml"
    assert main(["predict", str(photos / "group.jpg"), "--out", str(out), "--scheme", "68", "--flip", "-q",
                 "--detector", "haar_frontal"]) == 0
    aset = read_annotations(out)
    [im] = aset.images
    assert len(im.faces) >= 2 and im.faces[0].landmarks.shape == (68, 2)


@pytest.mark.parametrize("args, message", [
    (["predict", "no/such/photo.jpg", "--out", "x.json"], "no such file or folder"),
    (["predict", "{photos}/group.jpg", "--out", "x.json", "--model", "/no/such/model"], "no such folder"),
    (["predict", "{photos}/group.jpg", "--out", "x.json", "--scheme", "98"], "unknown landmark scheme"),
    (["predict", "{photos}/group.jpg", "--out", "x.json", "--detector", "yolo"], "unknown face detector"),
    (["predict", "{photos}/group.jpg", "--out", "x.json", "--min-score", "-1"], "must be a number >= 0"),
    (["predict", "{photos}/group.jpg", "--out", "x.json", "--min-face", "big"], "not a number"),
])
def test_user_errors_exit_2_without_traceback(photos, args, message, capsys):
    try:
        code = main([a.replace("{photos}", str(photos)) for a in args])
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_predict_names_the_detector_and_applies_thresholds(photos, tmp_path, capsys, yunet_file):
    out = tmp_path / "p.json"
    assert main(["predict", str(photos / "group.jpg"), "--out", str(out), "--no-refine"]) == 0
    assert "face detector: yunet" in capsys.readouterr().err  # the default, with the weights found
    doc = json.loads(out.read_text())
    faces = doc["images"][0]["faces"]
    assert doc["detector"] == doc["images"][0]["detector"] == "yunet" and len(faces) >= 2
    from facelm.detect.yunet import MIN_SCORE
    assert doc["min_score"] == MIN_SCORE and all(f["score"] >= MIN_SCORE for f in faces)  # the detector's default
    sides = sorted(min(f["box"][2] - f["box"][0], f["box"][3] - f["box"][1]) for f in faces)
    assert main(["predict", str(photos / "group.jpg"), "--out", str(out), "--no-refine", "-q",
                 "--min-face", str((sides[0] + sides[-1]) / 2)]) == 0
    assert 1 <= len(json.loads(out.read_text())["images"][0]["faces"]) < len(faces)
    assert main(["predict", str(photos / "group.jpg"), "--out", str(out), "--no-refine", "-q",
                 "--min-score", "0.999"]) == 0
    assert json.loads(out.read_text())["images"][0]["faces"] == []


def test_download_detector_offline_is_a_clear_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # read when huggingface_hub is imported: a subprocess
    r = run_cli("download-detector", "--filename", "no_such_release.onnx")
    assert r.returncode == 2 and "HF_HUB_OFFLINE" in r.stderr and "Traceback" not in r.stderr


def test_predict_pts_and_coco(photos, tmp_path):
    pts_dir = tmp_path / "pts"
    assert main(["predict", str(photos), "--out", str(pts_dir), "--format", "pts", "-q",
                 "--detector", "haar_frontal"]) == 0
    assert (pts_dir / "sub" / "face.pts").is_file() or (pts_dir / "sub" / "face_1.pts").is_file()
    group = sorted(pts_dir.glob("group_*.pts"))
    assert len(group) >= 2 and read_pts(group[0]).shape == (68, 2)
    coco = tmp_path / "coco.json"
    assert main(["predict", str(photos / "group.jpg"), "--out", str(coco), "--format", "coco", "--scheme", "5",
                 "-q", "--detector", "haar_frontal"]) == 0
    aset = read_annotations(coco)
    assert aset.scheme == "celeba5" and aset.images[0].faces[0].landmarks.shape == (5, 2)


@pytest.fixture(scope="module")
def mini_300w(shared_data, tmp_path_factory) -> Path:
    """Three 300-W faces in the data set's own layout (subset folders of .jpg + .pts)."""
    root = tmp_path_factory.mktemp("300w")
    for name in ("afw/1051618982_1", "helen_trainset/100040721_1", "helen_trainset/1002681492_1"):
        (root / name).parent.mkdir(exist_ok=True)
        for ext in (".jpg", ".pts"):
            shutil.copy(shared_data / "300w" / f"{name}{ext}", root / f"{name}{ext}")
    return root


def test_evaluate_and_export(mini_300w, tmp_path, capsys):
    ced = tmp_path / "ced.png"
    assert main(["evaluate", str(mini_300w), "--ced", str(ced), "-q"]) == 0
    out = capsys.readouterr().out
    assert "NME %" in out and "afw" in out and "helen_trainset" in out
    assert ced.stat().st_size > 1000
    report = tmp_path / "eval.json"
    assert main(["evaluate", str(mini_300w), "--boxes", "detector", "--detector", "haar_frontal",
                 "--json", str(report), "-q"]) == 0
    out = capsys.readouterr().out
    assert "faces found by the detector" in out and "refine: auto" in out
    doc = json.loads(report.read_text())
    assert doc["faces"] == 3 and doc["found"] >= 2 and doc["results"]["all"]["nme_mean"] < 0.2
    one_pass = tmp_path / "one_pass.json"
    assert main(["evaluate", str(mini_300w), "--boxes", "detector", "--detector", "haar_frontal",
                 "--no-refine", "--json", str(one_pass), "-q"]) == 0
    assert "refine: False" in capsys.readouterr().out
    assert json.loads(one_pass.read_text())["results"]["all"]["nme_mean"] != doc["results"]["all"]["nme_mean"]
    onnx = tmp_path / "m.onnx"
    assert main(["export-onnx", "--out", str(onnx)]) == 0
    assert "max |torch - onnxruntime|" in capsys.readouterr().out and onnx.stat().st_size > 100_000
