"""Hub save/load against local folders (no network): config + safetensors + model card."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from facelm import FaceLandmarker, ModelLoadError
from facelm.hub import DEFAULT_MODEL_DIR, load_model, push_model
from facelm.models import LandmarkModel


def test_bundled_model_is_small_safetensors_and_loads_offline() -> None:
    files = {p.name for p in DEFAULT_MODEL_DIR.iterdir()}
    assert {"config.json", "model.safetensors"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pth", ".pkl")) for f in files)
    assert (DEFAULT_MODEL_DIR / "model.safetensors").stat().st_size < 10_000_000
    model = load_model()
    cfg = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    for key in ("backbone", "head", "scheme", "input_size", "crop_scale", "num_points"):
        assert key in cfg
    assert model.scheme == cfg["scheme"] and not model.training
    assert FaceLandmarker.from_pretrained().model.num_points == cfg["num_points"]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = LandmarkModel(backbone="dwsep_resnet", width=8, input_size=48, crop_scale=1.25,
                          neighbors=[[(i + 1) % 68] for i in range(68)])
    model.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["backbone"] == "dwsep_resnet" and cfg["input_size"] == 48 and cfg["crop_scale"] == 1.25
    loaded = load_model(tmp_path / "m")
    x = torch.rand(2, 3, 48, 48) * 255
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict(x), model.eval().predict(x))
    copy = Path(push_model(tmp_path / "m", str(tmp_path / "mirror")))
    assert (copy / "model.safetensors").read_bytes() == (tmp_path / "m" / "model.safetensors").read_bytes()


def test_clear_errors_for_missing_or_broken_models(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such folder"):
        load_model(str(tmp_path / "nope" / "deeper"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="not a facelm model folder"):
        load_model(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="cannot load model"):
        load_model(broken)


def test_unknown_hub_id_fails_fast_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.time()
    with pytest.raises(ModelLoadError, match="Hugging Face Hub"):
        load_model("no-such-org/no-such-model")
    assert time.time() - t < 20


def test_float16_weights_load_as_float32_and_predict_alike(tmp_path: Path, shared_data: Path) -> None:
    """Half-size files for shipping: float16 on disk, float32 in memory, the same points within noise."""
    from facelm.photo_evaluation import iter_annotated
    from facelm.model_card import write_model_card
    model = load_model()
    torch.manual_seed(0)
    with torch.no_grad():  # the bundled weights are already float16 values: move them off that grid
        for p in model.parameters():
            p.mul_(1 + 1e-3 * torch.randn_like(p))
    model.save_pretrained(tmp_path / "f")
    model.half().save_pretrained(tmp_path / "h")
    half = load_model(tmp_path / "h")
    assert {p.dtype for p in half.parameters()} == {torch.float32}
    assert (tmp_path / "h" / "model.safetensors").stat().st_size < 0.55 * (tmp_path / "f" / "model.safetensors").stat().st_size
    photo = next(iter(iter_annotated([shared_data / "dlib_examples_faces" / "training_with_face_landmarks.xml"])))
    # the weights' test, so the PyTorch model runs them (the ONNX exports are tested in test_onnx_files.py)
    full, got = (FaceLandmarker.from_pretrained(tmp_path / d, detector=None, backend="torch")
                 .predict(photo.path, boxes=photo.boxes).landmarks for d in ("f", "h"))
    assert np.abs(got - full).max() < 0.1  # pixels in the photo
    write_model_card(tmp_path / "h")
    assert "float16 weights, computed in float32" in (tmp_path / "h" / "README.md").read_text()
