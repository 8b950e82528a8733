"""onnxruntime by default: the ONNX files shipped with the bundled models, the export cached for a model
folder or Hub repo without one, and damaged or stale files."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from facelm import FaceLandmarker, ModelLoadError
from facelm import onnx_files
from facelm.cli import main as cli_main
from facelm.photo_evaluation import iter_annotated
from facelm.hub import WEIGHTS_DIR, bundled_models, load_model
from facelm.metrics import nme
from facelm.onnx_backend import weights_sha256
from facelm.onnx_files import cached_export_path

pytestmark = pytest.mark.usefixtures("one_torch_thread")

INT8_MEAN_NME_GAP = 0.0005
"""The shipped int8 file's mean NME may exceed the float model's by at most 0.05 NME points (0.0005)
over a whole validation split, GT boxes: the rule for shipping int8 rather than float (docs/speed.md)."""
POINT_TOLERANCE = {"ibug68": (0.0075, 0.02), "celeba5": (0.015, None)}
"""How far the int8 file's points may lie from the PyTorch model's on real faces, per scheme, in
inter-ocular distances (NME of one against the other): (mean over the faces, largest single face).
The 5-point faces are 80 px photos, some barely faces, where a point can move further."""


@pytest.fixture
def exports(monkeypatch, tmp_path) -> list[str]:
    """Names of the models exported during a test (onnx_files exports through this name), into a
    cache of the test's own: other tests of the session may have exported the same weights."""
    monkeypatch.setenv("FACELM_CACHE", str(tmp_path / "facelm-cache"))
    calls: list[str] = []
    real = onnx_files.export_onnx
    monkeypatch.setattr(onnx_files, "export_onnx", lambda model, *a: calls.append(model.scheme) or real(model, *a))
    return calls


def _copy_model(name: str, to: Path, with_onnx: bool = False) -> Path:
    to.mkdir(parents=True)
    for f in ("config.json", "model.safetensors") + (("model_int8.onnx",) if with_onnx else ()):
        shutil.copy2(WEIGHTS_DIR / name / f, to / f)
    return to


def test_every_bundled_model_ships_its_onnx_file_and_runs_it_by_default(exports):
    for name in bundled_models():
        shipped = WEIGHTS_DIR / name / "model_int8.onnx"
        assert shipped.is_file() and shipped.stat().st_size < 4_000_000
        fl = FaceLandmarker.from_pretrained(name, detector=None)
        assert fl.backend == "onnx" and fl._onnx.path == shipped
        assert fl._onnx.weights_sha256 == weights_sha256(fl.model)  # exported from these very weights
        torch_fl = FaceLandmarker.from_pretrained(name, detector=None, backend="torch")
        assert torch_fl.backend == "torch" and torch_fl._onnx is None
    assert FaceLandmarker.from_pretrained(detector=None)._onnx.path == WEIGHTS_DIR / "ibug68" / "model_int8.onnx"
    assert exports == []  # nothing exported when a file ships


@pytest.mark.parametrize("name, data", [("ibug68", "300w"), ("ibug68_fast", "300w"),
                                        ("celeba5", "five_point/list_landmarks.csv")])
def test_shipped_int8_keeps_the_float_models_accuracy(name, data, shared_data):
    """Whole validation split (faces train.train never trains on), GT boxes, one pass."""
    photos = list(iter_annotated([shared_data / data], split="validation"))
    scheme = load_model(name).scheme
    onnx_fl = FaceLandmarker.from_pretrained(name, detector=None)
    torch_fl = FaceLandmarker.from_pretrained(name, detector=None, backend="torch")
    int8, fp32, gt = [], [], []
    for ph in photos:
        int8.append(onnx_fl.predict(ph.path, boxes=ph.boxes).landmarks)
        fp32.append(torch_fl.predict(ph.path, boxes=ph.boxes).landmarks)
        gt.append(ph.landmarks)
    int8, fp32, gt = (np.concatenate(a) for a in (int8, fp32, gt))
    gap = float(nme(int8, gt, scheme).mean() - nme(fp32, gt, scheme).mean())
    assert gap < INT8_MEAN_NME_GAP, gap
    apart = nme(int8, fp32, scheme)
    mean_bound, max_bound = POINT_TOLERANCE[scheme]
    assert apart.mean() < mean_bound, apart.mean()
    assert max_bound is None or apart.max() < max_bound, apart.max()


def test_model_folder_without_onnx_is_exported_once_and_cached(tmp_path, shared_data, exports):
    folder = _copy_model("ibug68_fast", tmp_path / "model")
    photo = next(iter(iter_annotated([shared_data / "300w"], every=50, split="validation")))
    fl = FaceLandmarker.from_pretrained(folder, detector=None)
    cached = cached_export_path(weights_sha256(fl.model))
    assert exports == ["ibug68"] and fl._onnx.path == cached and cached.is_file()
    # The float export gives the PyTorch model's points.
    a = fl.predict(photo.path, boxes=photo.boxes).landmarks
    b = FaceLandmarker.from_pretrained(folder, detector=None, backend="torch").predict(photo.path, boxes=photo.boxes)
    assert np.abs(a - b.landmarks).max() < 1e-3
    # A second load, e.g. in another process, reads the cache.
    again = FaceLandmarker.from_pretrained(folder, detector=None)
    assert exports == ["ibug68"] and again._onnx.path == cached
    np.testing.assert_array_equal(again.predict(photo.path, boxes=photo.boxes).landmarks, a)
    # A damaged cache entry (a crash mid-write on a file system without atomic rename, a bad disk)
    # is exported again, not an error: the cache is ours.
    for damage in (b"not onnx at all", cached.read_bytes()[:1000]):
        cached.write_bytes(damage)
        fixed = FaceLandmarker.from_pretrained(folder, detector=None)
        np.testing.assert_array_equal(fixed.predict(photo.path, boxes=photo.boxes).landmarks, a)
    assert exports == ["ibug68"] * 3


def test_cache_folder_follows_facelm_cache(tmp_path, monkeypatch, exports):
    monkeypatch.setenv("FACELM_CACHE", str(tmp_path / "elsewhere"))
    fl = FaceLandmarker.from_pretrained(_copy_model("celeba5", tmp_path / "m"), detector=None)
    assert fl._onnx.path.parent == tmp_path / "elsewhere" / "onnx" and exports == ["celeba5"]
    monkeypatch.delenv("FACELM_CACHE")
    assert cached_export_path("x").parent == Path.home() / ".cache" / "facelm" / "onnx"


def test_damaged_shipped_onnx_is_a_clear_error(tmp_path, capsys):
    folder = _copy_model("ibug68_fast", tmp_path / "model", with_onnx=True)
    onnx = folder / "model_int8.onnx"
    onnx.write_bytes(onnx.read_bytes()[:5000])  # an interrupted download
    with pytest.raises(ModelLoadError, match="model_int8.onnx: not a readable ONNX model.*backend='torch'"):
        FaceLandmarker.from_pretrained(folder, detector=None)
    assert FaceLandmarker.from_pretrained(folder, detector=None, backend="torch").backend == "torch"
    # The command line says the same in one line, no traceback.
    photo = tmp_path / "face.png"
    from PIL import Image
    Image.new("RGB", (64, 64)).save(photo)
    assert cli_main(["predict", str(photo), "--out", str(tmp_path / "out.json"), "--model", str(folder), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "model_int8.onnx" in err and "Traceback" not in err


def test_onnx_file_of_other_weights_is_refused(tmp_path, exports):
    """A folder retrained in place, or a stale file beside new weights, would give wrong points silently."""
    model = load_model("ibug68_fast")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.01)
    folder = tmp_path / "retrained"
    model.save_pretrained(folder)
    shutil.copy2(WEIGHTS_DIR / "ibug68_fast" / "model_int8.onnx", folder / "model_int8.onnx")
    with pytest.raises(ModelLoadError, match="exported from other weights"):
        FaceLandmarker.from_pretrained(folder, detector=None)
    with pytest.raises(ModelLoadError, match="exported from other weights"):
        FaceLandmarker(model, detector=None, backend="onnx", onnx_file=folder / "model_int8.onnx")
    (folder / "model_int8.onnx").unlink()
    assert FaceLandmarker.from_pretrained(folder, detector=None)._onnx.weights_sha256 == weights_sha256(model)
    assert exports == ["ibug68"]


def _fake_hub_repo(cache: Path, repo: str, files: dict[str, Path]) -> None:
    """A Hub repo as huggingface_hub's cache lays it out after a download (what offline loading reads)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    for name, src in files.items():
        shutil.copy2(src, snap / name)


def test_hub_repo_onnx_file_is_used_offline(tmp_path, monkeypatch, exports):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("FACELM_CACHE", str(tmp_path / "cache"))  # not the export other tests cached
    src = WEIGHTS_DIR / "ibug68_fast"
    weights = {f: src / f for f in ("config.json", "model.safetensors")}
    _fake_hub_repo(tmp_path / "hub", "someone/with-onnx", dict(weights, **{"model_int8.onnx": src / "model_int8.onnx"}))
    _fake_hub_repo(tmp_path / "hub", "someone/without-onnx", weights)
    fl = FaceLandmarker.from_pretrained("someone/with-onnx", detector=None)
    assert fl._onnx.path.name == "model_int8.onnx" and str(tmp_path / "hub") in str(fl._onnx.path)
    assert exports == []
    plain = FaceLandmarker.from_pretrained("someone/without-onnx", detector=None)
    assert exports == ["ibug68"] and plain._onnx.path == cached_export_path(weights_sha256(plain.model))
