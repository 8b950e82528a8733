"""The int8 file's graph rewrites (facelm.onnx_graph): uint8 crops in, the first convolution
over 2x2 pixel blocks, and larger convolutions moved to onnxruntime's matrix-product kernels.
Judged on real faces against the graphs they rewrite and the torch model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facelm.crop import crop_face, crops_to_input
from facelm.hub import load_model
from facelm.image import to_rgb_array
from facelm.models import LandmarkModel
from facelm.onnx_backend import OnnxRunner, calibration_crops, export_onnx, quantize_int8, quantize_qdq
from facelm.onnx_graph import GEMM_MIN_INPUTS, _Graph, gemm_convs, space_to_depth_stem, takes_pixels, uint8_input
from facelm.photo_evaluation import iter_annotated

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model() -> LandmarkModel:
    return load_model("ibug68_fast").float()


@pytest.fixture(scope="module")
def graphs(model, shared_data) -> dict[str, bytes]:
    """The float export, its QDQ quantization with an int8 first convolution, and the two rewrites."""
    fp = export_onnx(model)
    qdq = quantize_qdq(fp, calibration_crops(model, [shared_data / "300w"], n=32), float_first_conv=False)
    pixels = uint8_input(qdq)
    return {"float": fp, "qdq": qdq, "pixels": pixels, "blocks": space_to_depth_stem(pixels)}


@pytest.fixture(scope="module")
def crops(model, shared_data) -> np.ndarray:
    """(B, S, S, 3) uint8 crops of 300-W validation faces."""
    photos = list(iter_annotated([shared_data / "300w"], every=8, split="validation"))
    return np.stack([crop_face(to_rgb_array(p.path), p.boxes[0], model.input_size, model.crop_scale)[0]
                     for p in photos])


def test_uint8_input_takes_the_pixels_as_they_are(graphs, crops):
    pixels, blocks = OnnxRunner(graphs["pixels"]), OnnxRunner(graphs["blocks"])
    assert pixels.input_dtype == np.uint8 and blocks.input_dtype == np.uint8
    assert OnnxRunner(graphs["qdq"]).input_dtype == np.float32
    x = crops_to_input(crops, 3, np.uint8)
    assert x.dtype == np.uint8 and x.shape == (len(crops), 3, crops.shape[1], crops.shape[2])
    # The 2x2-block stem moves the int8 weights without re-rounding them: the same integer sums.
    assert np.abs(pixels(x) - blocks(x)).max() < 1e-4
    # Float crops of whole pixel values are taken as the same uint8 pixels.
    assert np.array_equal(blocks(x.astype(np.float32)), blocks(x))


def test_rewritten_int8_file_stays_close_to_the_float_model(model, graphs, crops):
    """The rewrite changes the input's quantization (exact pixels instead of a calibrated range) and
    nothing else: its points stay as close to the float model's as the QDQ graph's are."""
    x = crops_to_input(crops, 3)
    with torch.inference_mode():
        ref = model.predict(torch.from_numpy(x)).numpy()
    qdq = np.abs(OnnxRunner(graphs["qdq"])(x) - ref).mean()
    blocks = np.abs(OnnxRunner(graphs["blocks"])(crops_to_input(crops, 3, np.uint8)) - ref).mean()
    assert blocks < 0.3, blocks  # crop pixels, 96 px crops
    assert blocks < 1.5 * qdq, (blocks, qdq)


def test_graphs_that_cannot_take_pixels(model, graphs):
    # A float first convolution (or the float export) has no dequantization to move the normalisation into.
    with pytest.raises(ValueError, match="quantized first convolution"):
        uint8_input(graphs["float"])
    assert takes_pixels(graphs["float"])
    # A one-channel model sees float luma, not pixels: its int8 file keeps float input.
    torch.manual_seed(0)
    gray = LandmarkModel(in_chans=1, input_size=32, width=8).eval()
    assert not takes_pixels(export_onnx(gray))
    data = quantize_int8(export_onnx(gray), np.random.default_rng(0).uniform(0, 255, (4, 1, 32, 32)).astype(np.float32))
    assert OnnxRunner(data).input_dtype == np.float32
    with pytest.raises(ValueError, match="3-channel"):
        crops_to_input(np.zeros((1, 32, 32, 3), np.uint8), 1, np.uint8)


def test_other_first_convolutions_keep_their_shape():
    """resnet18 starts with a 7x7 convolution: the block rewrite leaves it alone, the file still runs."""
    torch.manual_seed(0)
    net = LandmarkModel(backbone="resnet18", width=64, input_size=32).eval()
    calib = np.random.default_rng(0).integers(0, 256, (4, 3, 32, 32)).astype(np.float32)
    pixels = uint8_input(quantize_qdq(export_onnx(net), calib, float_first_conv=False))
    assert space_to_depth_stem(pixels) == pixels
    assert OnnxRunner(pixels)(calib).shape == (4, 68, 2)


def test_flip_test_runs_on_the_uint8_file(shared_data):
    """The flip test mirrors the uint8 crops it gives the shipped file; its answer stays with torch's."""
    from facelm import FaceLandmarker
    from facelm.metrics import nme
    photos = list(iter_annotated([shared_data / "300w"], every=15, split="validation"))
    onnx_fl = FaceLandmarker.from_pretrained("ibug68_fast", detector=None, flip_test=True)
    torch_fl = FaceLandmarker.from_pretrained("ibug68_fast", detector=None, flip_test=True, backend="torch")
    assert onnx_fl._onnx.input_dtype == np.uint8
    a, b = (np.concatenate([fl.predict(p.path, boxes=p.boxes).landmarks for p in photos]) for fl in (onnx_fl, torch_fl))
    assert nme(a, b, "ibug68").mean() < 0.0075


def _conv_weights(data: bytes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each convolution's int8 weights and their zero points, by convolution name."""
    import onnx
    g = _Graph(onnx.load_from_string(data))
    out = {}
    for conv in (n for n in g.graph.node if n.op_type == "Conv"):
        dq = g.producer.get(conv.input[1])
        if dq is not None and dq.op_type == "DequantizeLinear":
            out[conv.name] = g.value(dq.input[0]), g.value(dq.input[2])
    return out


@pytest.mark.parametrize("name", ["ibug68", "ibug68_fast", "celeba5"])
def test_gemm_convs_change_the_kernels_not_the_points(name, shared_data):
    """On every shipped int8 file: the convolutions with enough inputs per output get zero point 1
    (or -1) and their weights moved with it, the others are untouched, and onnxruntime gives the
    same points on real faces either way, whichever kernels this CPU picks."""
    from facelm.hub import WEIGHTS_DIR
    model = load_model(name)
    data = (WEIGHTS_DIR / name / "model_int8.onnx").read_bytes()
    moved = gemm_convs(data)
    before, after = _conv_weights(data), _conv_weights(moved)
    assert before.keys() == after.keys()
    big = [c for c, (w, _) in before.items() if np.prod(w.shape[1:]) >= GEMM_MIN_INPUTS]
    for conv, (w, zero) in before.items():
        w2, zero2 = after[conv]
        assert not zero.any()
        if conv in big:
            step = zero2.astype(int)
            assert set(np.unique(step)) <= {1, -1} and len(np.unique(step)) == 1
            assert np.array_equal(w2.astype(int) - step.reshape(-1, 1, 1, 1), w.astype(int))
        else:
            assert np.array_equal(w2, w) and not zero2.any()
    if not big:
        assert moved == data
    photos = list(iter_annotated([shared_data / "300w"], every=10, split="validation"))
    crops = np.stack([crop_face(to_rgb_array(p.path), p.boxes[0], model.input_size, model.crop_scale,
                                model.crop_shift_y)[0] for p in photos])
    x = crops_to_input(crops, model.in_chans, OnnxRunner(data).input_dtype)
    a = OnnxRunner(data, num_threads=1, gemm_convs=False)(x)
    b = OnnxRunner(data, num_threads=1, gemm_convs=True)(x)
    assert np.abs(a - b).max() < 1e-3, np.abs(a - b).max()


def test_gemm_convs_leave_float_and_foreign_files_alone(graphs, tmp_path):
    assert gemm_convs(graphs["float"]) == graphs["float"]  # float weights: nothing to move
    # No convolution has that many inputs per output: the int8 file comes back as it was.
    assert gemm_convs(graphs["blocks"], min_inputs=10**9) == graphs["blocks"]
    # A truncated file still reaches onnxruntime (not onnx's parser), whose error names what is wrong.
    bad = tmp_path / "half.onnx"
    bad.write_bytes(graphs["blocks"][:1000])
    with pytest.raises(Exception) as err:
        OnnxRunner(bad, gemm_convs=True)
    assert type(err.value).__module__.startswith("onnxruntime"), type(err.value)
