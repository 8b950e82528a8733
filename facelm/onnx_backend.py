"""ONNX export of any LandmarkModel, and an onnxruntime runner with the same call as the torch model."""
from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .errors import FacelmError
from .models import LandmarkModel, LandmarkPredictor

OPSET = 17
GRAPH_VERSION = 2
"""Bumped when the exported graph changes for the same weights (2: offsets computed at the chosen
cells only), so that cached exports of an older graph are made again, not reused."""
WEIGHTS_KEY = "facelm_weights_sha256"
"""ONNX metadata entry holding :func:`weights_sha256` of the model a file was exported from."""
CALIB_PERCENTILE = 99.95
"""Activation range of int8 calibration; chosen by the int8-float NME gap on training-split faces."""


def weights_sha256(model: LandmarkModel) -> str:
    """Hash of what an export depends on: the model's config and every tensor of its state (buffers
    the config rebuilds, such as the point offsets, included). Equal models give equal hashes, whatever
    folder or Hub repo they were loaded from."""
    h = hashlib.sha256(json.dumps(model._hub_mixin_config, sort_keys=True, default=str).encode())
    tensors = dict(model.state_dict())
    tensors.update(model.named_buffers())  # non-persistent buffers too
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())  # numpy has no bfloat16
    return h.hexdigest()


def export_onnx(model: LandmarkModel, path: str | os.PathLike | None = None) -> bytes:
    """Export crops (B, C, S, S) float [0, 255] -> landmarks (B, K, 2), batch size dynamic, stamped with
    the weights' hash (``WEIGHTS_KEY``; :func:`quantize_int8` keeps it). Returns the serialised model,
    and also writes it to ``path`` when given."""
    wrapper = LandmarkPredictor(model).eval()
    x = torch.zeros(1, model.in_chans, model.input_size, model.input_size)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated but needs no extra graph rewrites for argmax/gather.
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (x,), buf, input_names=["crops"], output_names=["landmarks"],
                          dynamic_axes={"crops": {0: "batch"}, "landmarks": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    import onnx
    proto = onnx.load_from_string(buf.getvalue())
    proto.metadata_props.add(key=WEIGHTS_KEY, value=weights_sha256(model))
    data = proto.SerializeToString()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def calibration_crops(model: LandmarkModel, data: Sequence[str | os.PathLike], n: int = 256,
                      split: str = "train") -> np.ndarray:
    """(n, C, S, S) float crops of annotated faces, cut by the model's crop rule, for int8 calibration.
    The default ``split`` keeps to the faces ``train.train`` trains on, so no held-out face tunes it."""
    from .crop import crop_face, crops_to_input
    from .photo_evaluation import iter_annotated
    from .image import to_rgb_array
    photos = list(iter_annotated(data, split=split))
    if not photos:
        raise FacelmError(f"no annotated faces in {', '.join(map(str, data))} (split {split!r}) to calibrate on")
    pick = np.linspace(0, len(photos) - 1, min(n, len(photos))).round().astype(int)
    crops = [crop_face(to_rgb_array(photos[i].path), photos[i].boxes[0], model.input_size, model.crop_scale,
                       model.crop_shift_y)[0] for i in pick]
    return crops_to_input(np.stack(crops), model.in_chans)


def quantize_int8(onnx_model: bytes, calibration: np.ndarray) -> bytes:
    """The int8 file of a float export (:func:`quantize_qdq`). A 3-channel model's file takes uint8
    crops (``facelm.onnx_graph``): its first convolution is int8 too, reading the pixels as they
    are. Other models keep a float first convolution (three input channels give int8 kernels little
    to work with) and float input. Accuracy and speed against the float model: docs/speed.md."""
    from .onnx_graph import space_to_depth_stem, takes_pixels, uint8_input
    if takes_pixels(onnx_model):
        return space_to_depth_stem(uint8_input(quantize_qdq(onnx_model, calibration, float_first_conv=False)))
    return quantize_qdq(onnx_model, calibration, float_first_conv=True)


def quantize_qdq(onnx_model: bytes, calibration: np.ndarray, float_first_conv: bool) -> bytes:
    """Static int8 quantization of the convolutions and their ReLUs (QDQ, per output channel; a ReLU
    quantized with its convolution disappears into it), activations calibrated on ``calibration``
    crops to their ``CALIB_PERCENTILE``th percentile: the min-max range lets a few outliers coarsen
    every step. The residual additions (int8 ones cost accuracy) and the decoding stay float, and
    the first convolution too with ``float_first_conv``."""
    import tempfile

    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"crops": calibration[i:i + 1]} for i in range(len(calibration))])

        def get_next(self) -> dict | None:
            return next(self.items, None)

    exclude = [next(n.name for n in onnx.load_from_string(onnx_model).graph.node if n.op_type == "Conv")] \
        if float_first_conv else []
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "fp32.onnx", Path(d) / "int8.onnx"
        src.write_bytes(onnx_model)
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        op_types_to_quantize=["Conv", "Relu"], nodes_to_exclude=exclude,
                        activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Percentile,
                        extra_options={"CalibPercentile": CALIB_PERCENTILE})
        return dst.read_bytes()


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX int8 tiles (Linux reports them in /proc/cpuinfo; False elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and " amx_int8" in line for line in f)
    except OSError:
        return False


class OnnxRunner:
    """Runs an exported model with onnxruntime on the CPU.

    ``gemm_convs``: run the int8 file's larger convolutions as matrix products
    (:func:`facelm.onnx_graph.gemm_convs`, the same arithmetic); None does so on CPUs with AMX,
    where that is faster."""

    def __init__(self, model_bytes_or_path: bytes | str | os.PathLike, num_threads: int | None = None,
                 gemm_convs: bool | None = None):
        import onnxruntime as ort
        so = ort.SessionOptions()
        if num_threads:
            so.intra_op_num_threads = num_threads
            so.inter_op_num_threads = 1
        so.log_severity_level = 3
        src = model_bytes_or_path if isinstance(model_bytes_or_path, bytes) else str(model_bytes_or_path)
        self.path = None if isinstance(src, bytes) else Path(src)
        """The file this runs, None for a model given as bytes."""
        if cpu_has_amx() if gemm_convs is None else gemm_convs:
            src = _gemm_convs(src)
        self.session = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.input_dtype = np.uint8 if self.session.get_inputs()[0].type == "tensor(uint8)" else np.float32
        """What the file takes: uint8 crops (int8 exports of 3-channel models) or float ones."""

    @property
    def weights_sha256(self) -> str | None:
        """The hash of the weights the file was exported from; None for a file without the stamp."""
        return self.session.get_modelmeta().custom_metadata_map.get(WEIGHTS_KEY)

    def check_input(self, in_chans: int, input_size: int) -> None:
        """Refuse a file made for another model: it would give garbage points, not an error."""
        shape = self.session.get_inputs()[0].shape
        if list(shape[1:]) != [in_chans, input_size, input_size]:
            raise ValueError(f"ONNX file takes crops of shape {shape}, the model needs "
                             f"(batch, {in_chans}, {input_size}, {input_size})")

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """(B, C, S, S) crops, pixel values in [0, 255] (whole numbers for a uint8 file) -> (B, K, 2)."""
        if self.input_dtype == np.uint8 and crops.dtype != np.uint8:
            crops = np.clip(np.rint(crops), 0, 255)
        return self.session.run(None, {self.input_name: np.ascontiguousarray(crops, dtype=self.input_dtype)})[0]


def _gemm_convs(src: bytes | str) -> bytes | str:
    """``src`` rewritten by :func:`facelm.onnx_graph.gemm_convs`; ``src`` itself when it is not a
    readable ONNX model, so that onnxruntime reports what is wrong with it."""
    from .onnx_graph import gemm_convs
    try:
        data = src if isinstance(src, bytes) else Path(src).read_bytes()
        out = gemm_convs(data)
    except Exception:  # truncated or foreign files: onnxruntime's error names the problem
        return src
    return src if out is data else out


def check_export(model: LandmarkModel, model_bytes_or_path: bytes | str | os.PathLike, batch: int = 2,
                 seed: int = 0) -> float:
    """Largest |torch - onnxruntime| landmark difference (crop pixels) on random crops of whole pixel
    values (what crops of photos hold): an exported file that disagrees with its model is worse than
    no file."""
    x = np.random.default_rng(seed).integers(0, 256, (batch, model.in_chans, model.input_size, model.input_size))
    x = x.astype(np.float32)
    with torch.inference_mode():
        ref = model.eval().predict(torch.from_numpy(x)).numpy()
    got = OnnxRunner(model_bytes_or_path, num_threads=1)(x)
    return float(np.abs(ref - got).max())
