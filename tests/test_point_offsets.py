"""Mirror-asymmetry calibration: LandmarkModel.point_offset and train.point_offsets."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facelm.crop_cache import CropCache, cache_size
from facelm.hub import load_model, stores_float16
from facelm.models import LandmarkModel
from facelm.onnx_backend import check_export, export_onnx
from facelm.schemes import get_scheme
from train.point_offsets import asymmetric_offset, main as calibrate_main, mirror_gap
from train.crop_eval import gt_in_crop, predict_cache

pytestmark = pytest.mark.usefixtures("one_torch_thread")
IBUG = get_scheme("ibug68")


def _model(input_size: int = 48) -> LandmarkModel:
    torch.manual_seed(0)
    nb = [[(i + 1) % 68, (i + 7) % 68] for i in range(68)]
    return LandmarkModel(width=8, input_size=input_size, neighbors=nb).eval()


def _field(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.5, (68, 2))


def test_point_offset_moves_predictions_and_survives_save_load_resize_and_export(tmp_path: Path) -> None:
    bare = _model()
    offset = _field(0)
    moved = bare.with_offsets(offset, None)
    x = torch.rand(2, 3, 48, 48) * 255
    with torch.no_grad():
        np.testing.assert_allclose(moved.predict(x) - bare.predict(x), np.round(offset, 4)[None].repeat(2, 0), atol=1e-5)
    moved.save_pretrained(tmp_path / "m")
    again = load_model(tmp_path / "m")
    torch.testing.assert_close(again.point_offset, moved.point_offset)
    # another input size keeps the offset's size relative to the face
    torch.testing.assert_close(moved.with_input_size(96).point_offset, moved.point_offset * 2)
    assert check_export(moved, export_onnx(moved)) < 1e-3
    with pytest.raises(ValueError, match="68 x 2"):
        LandmarkModel(width=8, input_size=48, point_offset=[[0.0, 0.0]])


def test_calibration_removes_exactly_the_antisymmetric_part_of_the_error() -> None:
    model = _model()
    antisym = (_field(1) - IBUG.mirror_displacements(_field(1))) / 2
    sym = (_field(2) + IBUG.mirror_displacements(_field(2))) / 2
    np.testing.assert_allclose(IBUG.mirror_displacements(antisym), -antisym)
    n, c = 6, cache_size(48, 1.75)
    images = np.random.default_rng(3).integers(0, 255, (n, c, c, 3), dtype=np.uint8)
    off = (c - 48) // 2
    probe = CropCache(images, np.zeros((n, 68, 2), np.float32), np.array(["x"] * n), 48, 1.75)
    pred = predict_cache(model, probe, IBUG)
    # labels = what the network says minus a field: the network's mean error is that field
    labels = (pred - antisym - sym + off).astype(np.float32)
    cache = CropCache(images, labels, probe.sources, 48, 1.75)
    offset = asymmetric_offset(model, cache, IBUG)
    np.testing.assert_allclose(offset, -antisym, atol=1e-4)
    calibrated = model.with_offsets(offset, None)
    residual = (predict_cache(calibrated, cache, IBUG) - gt_in_crop(cache)).mean(0)
    np.testing.assert_allclose(residual, sym, atol=1e-3)  # the symmetric part is left as it was


@pytest.mark.slow
def test_calibrating_the_bundled_fast_model_lowers_validation_error(tmp_path: Path, shared_data: Path, capsys) -> None:
    """ibug68_fast is a network trained with mirrored faces plus a calibrated offset. From its weights
    without the offset, the 300-W training split gives back the offset it ships with, and that offset
    lowers the NME of the held-out validation faces."""
    shipped = load_model("ibug68_fast")
    assert shipped.point_offset.abs().mean() > 0.05
    shipped.with_offsets(None, None).half().save_pretrained(tmp_path / "bare")
    summary = calibrate_main([str(tmp_path / "bare"), "--data", str(shared_data / "300w"),
                              "--out", str(tmp_path / "cal")])
    assert "validation before" in capsys.readouterr().out
    before, after = summary["val_before"]["all"], summary["val_after"]["all"]
    assert after < before - 0.0004, (before, after)
    assert summary["train_faces"] > 1000
    offset = np.array(summary["offset_px"])
    np.testing.assert_allclose(IBUG.mirror_displacements(offset), -offset, atol=1e-3)
    assert stores_float16(tmp_path / "cal")  # float16 in, float16 out
    assert json.loads((tmp_path / "cal" / "calibration.json").read_text())["train_faces"] == summary["train_faces"]
    calibrated = load_model(tmp_path / "cal")
    # float16 weights as shipped, so the same offset to the rounding of its estimate
    torch.testing.assert_close(calibrated.point_offset, shipped.point_offset, atol=5e-3, rtol=0)
    torch.testing.assert_close(calibrated.mirror_offset, shipped.mirror_offset, atol=5e-3, rtol=0)
    gap = np.array(summary["mirror_offset_px"])
    np.testing.assert_allclose(IBUG.mirror_displacements(gap), -gap, atol=1e-3)


def test_mirror_shift_keeps_the_labels_asymmetry_on_mirrored_faces() -> None:
    from facelm.augment import MirrorFlip
    from torchvision import tv_tensors
    pts = torch.rand(68, 2) * 40
    shift = torch.from_numpy(_field(4)).float()
    kp = tv_tensors.KeyPoints(pts, canvas_size=(48, 48))
    plain = MirrorFlip(IBUG.flip, p=1.0)(kp).as_subclass(torch.Tensor)
    kept = MirrorFlip(IBUG.flip, p=1.0, shift=shift)(kp).as_subclass(torch.Tensor)
    torch.testing.assert_close(kept - plain, shift)
    torch.testing.assert_close(plain[:, 0], 47 - pts[list(IBUG.flip), 0])


def test_training_from_a_calibrated_model_moves_its_offset_into_the_network(tmp_path: Path, shared_data: Path,
                                                                             capsys) -> None:
    from train.train import main as train_main
    xml = str(shared_data / "dlib_examples_faces" / "training_with_face_landmarks.xml")
    offset = _field(5)
    base = _model(32).with_offsets(offset, offset - IBUG.mirror_displacements(offset))
    base.save_pretrained(tmp_path / "base")
    args = ["--data", xml, "--val-data", xml, "--cache-dir", str(tmp_path / "cache"), "--batch-size", "8",
            "--num-workers", "0", "--threads", "1", "--epochs", "1", "--init-from", str(tmp_path / "base")]
    for flip in ("0.5", "0"):
        train_main(args + ["--out", str(tmp_path / flip), "--flip", flip])
        said = capsys.readouterr().out
        assert "point_offset goes into the network" in said
        assert ("mirrored training faces keep" in said) == (flip != "0")
        trained = load_model(tmp_path / flip / "best")
        assert not trained.point_offset.any()
        torch.testing.assert_close(trained.mirror_offset, base.mirror_offset)


def test_flip_test_puts_back_what_mirroring_turns_around() -> None:
    from facelm import FaceLandmarker
    bare = _model()
    offset = _field(6)  # any offset, not only an antisymmetric one
    crops = np.random.default_rng(7).integers(0, 255, (3, 48, 48, 3), dtype=np.uint8)
    ref = FaceLandmarker(bare, detector=None, flip_test=True).predict_crops(crops)
    moved = bare.with_offsets(offset, offset - IBUG.mirror_displacements(offset))
    got = FaceLandmarker(moved, detector=None, flip_test=True).predict_crops(crops)
    np.testing.assert_allclose(got - ref, np.round(offset, 4)[None].repeat(3, 0), atol=1e-3)
    # without its mirror_offset the flip test would cancel the antisymmetric part of the offset
    lost = FaceLandmarker(bare.with_offsets(offset, None), detector=None, flip_test=True).predict_crops(crops)
    assert np.abs(lost - got).mean() > 0.1


def test_mirror_gap_is_measured_without_labels() -> None:
    bare = _model()
    offset = _field(8)
    n, c = 5, cache_size(48, 1.75)
    images = np.random.default_rng(9).integers(0, 255, (n, c, c, 3), dtype=np.uint8)
    cache = CropCache(images, np.full((n, 68, 2), np.nan, np.float32), np.array(["x"] * n), 48, 1.75)
    gap = mirror_gap(bare.with_offsets(offset, None), cache, IBUG) - mirror_gap(bare, cache, IBUG)
    np.testing.assert_allclose(gap, offset - IBUG.mirror_displacements(offset), atol=1e-3)
