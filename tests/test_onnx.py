"""ONNX export: every registered architecture exports, and onnxruntime agrees with torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facelm import FaceLandmarker
from facelm.crop import crop_face
from facelm.photo_evaluation import iter_annotated
from facelm.hub import load_model
from facelm.image import to_rgb_array
from facelm.models import LandmarkModel, list_backbones, list_heads
from facelm.onnx_backend import OnnxRunner, check_export, export_onnx

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOLERANCE_PX = 1e-3


def _random_model(backbone: str, head: str) -> LandmarkModel:
    """A small random model whose every weight matters (the regression head starts at zero, and
    fresh BatchNorm statistics are the identity, which would hide export mistakes)."""
    torch.manual_seed(0)
    kw = {"width": 64} if backbone == "resnet18" else {"width": 8}
    neighbors = [[(i + 1) % 68, (i + 5) % 68, (i + 9) % 68] for i in range(68)] if head == "pipnet" else None
    model = LandmarkModel(backbone=backbone, head=head, input_size=32, neighbors=neighbors, **kw).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, std=0.02)
    return model


@pytest.mark.parametrize("head", list_heads())
@pytest.mark.parametrize("backbone", list_backbones())
def test_every_architecture_exports_with_dynamic_batch(backbone, head):
    model = _random_model(backbone, head)
    data = export_onnx(model)
    for batch in (1, 3):  # traced at batch 1: other batch sizes must work too
        assert check_export(model, data, batch=batch) < TOLERANCE_PX


@pytest.fixture(scope="module")
def bundled():
    return load_model()


@pytest.fixture(scope="module")
def onnx_fl(bundled) -> FaceLandmarker:
    return FaceLandmarker(bundled, detector=None, backend="onnx", num_threads=1)


@pytest.fixture(scope="module")
def photos(shared_data):
    return list(iter_annotated(sorted((shared_data / "300w").rglob("*.pts"))[::200]))


def test_bundled_model_onnx_matches_torch_on_real_faces(bundled, onnx_fl, photos, tmp_path):
    torch_fl = FaceLandmarker(bundled, detector=None)
    for ph in photos:
        a = torch_fl.predict(ph.path, boxes=ph.boxes).landmarks
        b = onnx_fl.predict(ph.path, boxes=ph.boxes).landmarks
        assert np.abs(a - b).max() < TOLERANCE_PX
    # A batch of several real crops at once, through an exported file on disk.
    path = tmp_path / "model.onnx"
    export_onnx(bundled, path)
    crops = [crop_face(to_rgb_array(ph.path), ph.boxes[0], bundled.input_size, bundled.crop_scale)[0] for ph in photos]
    x = np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2), dtype=np.float32)
    with torch.inference_mode():
        ref = bundled.predict(torch.from_numpy(x)).numpy()
    assert np.abs(OnnxRunner(path)(x) - ref).max() < TOLERANCE_PX


def test_onnx_backend_with_flip_test(bundled, onnx_fl, photos, monkeypatch):
    ph = photos[1]
    monkeypatch.setattr(onnx_fl, "flip_test", True)
    a = FaceLandmarker(bundled, detector=None, flip_test=True).predict(ph.path, boxes=ph.boxes).landmarks
    assert np.abs(a - onnx_fl.predict(ph.path, boxes=ph.boxes).landmarks).max() < TOLERANCE_PX


def test_unknown_backend(bundled):
    with pytest.raises(ValueError, match="unknown backend"):
        FaceLandmarker(bundled, detector=None, backend="tensorrt")


def test_int8_export_is_close_to_float_on_held_out_faces(bundled, shared_data, tmp_path):
    """``export-onnx --int8``: calibrated on training faces, judged on validation faces. Quantization
    moves points a little (docs/speed.md), never wildly."""
    from facelm.cli import main
    from facelm.metrics import nme
    out = tmp_path / "int8.onnx"
    assert main(["export-onnx", "--int8", "--out", str(out), "--calib", str(shared_data / "300w"),
                 "--calib-faces", "48"]) == 0
    assert out.stat().st_size < 0.6 * len(export_onnx(bundled))
    fp32 = FaceLandmarker(bundled, detector=None)
    int8 = FaceLandmarker(bundled, detector=None, backend="onnx", onnx_file=out, num_threads=1)
    held_out = list(iter_annotated([shared_data / "300w"], every=10, split="validation"))
    a, b = ([float(nme(fl.predict(ph.path, boxes=ph.boxes).landmarks, ph.landmarks, "ibug68").mean())
             for ph in held_out] for fl in (fp32, int8))
    assert np.mean(b) < np.mean(a) + 0.003, (np.mean(a), np.mean(b))
    assert max(abs(x - y) for x, y in zip(a, b)) < 0.01


def test_onnx_file_must_fit_the_model(bundled, tmp_path):
    other = tmp_path / "other.onnx"
    export_onnx(_random_model("simple_cnn", "regression"), other)  # 32 px input, not 112
    with pytest.raises(ValueError, match="crops of shape"):
        FaceLandmarker(bundled, detector=None, backend="onnx", onnx_file=other)
    with pytest.raises(ValueError, match="needs backend='onnx'"):
        FaceLandmarker(bundled, detector=None, onnx_file=other)
