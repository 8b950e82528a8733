"""ONNX export of any LandmarkModel, and an onnxruntime runner with the same call as the torch model."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from .models import LandmarkModel, LandmarkPredictor

OPSET = 17


def export_onnx(model: LandmarkModel, path: str | os.PathLike | None = None) -> bytes:
    """Export crops (B, C, S, S) float [0, 255] -> landmarks (B, K, 2), batch size dynamic.
    Returns the serialised model, and also writes it to ``path`` when given."""
    wrapper = LandmarkPredictor(model).eval()
    x = torch.zeros(1, model.in_chans, model.input_size, model.input_size)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated but needs no extra graph rewrites for argmax/gather.
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (x,), buf, input_names=["crops"], output_names=["landmarks"],
                          dynamic_axes={"crops": {0: "batch"}, "landmarks": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


class OnnxRunner:
    """Runs an exported model with onnxruntime on the CPU."""

    def __init__(self, model_bytes_or_path: bytes | str | os.PathLike, num_threads: int | None = None):
        import onnxruntime as ort
        so = ort.SessionOptions()
        if num_threads:
            so.intra_op_num_threads = num_threads
            so.inter_op_num_threads = 1
        so.log_severity_level = 3
        src = model_bytes_or_path if isinstance(model_bytes_or_path, bytes) else str(model_bytes_or_path)
        self.session = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(crops, dtype=np.float32)})[0]


def check_export(model: LandmarkModel, model_bytes_or_path: bytes | str | os.PathLike, batch: int = 2,
                 seed: int = 0) -> float:
    """Largest |torch - onnxruntime| landmark difference (crop pixels) on random crops: an exported
    file that disagrees with its model is worse than no file."""
    x = np.random.default_rng(seed).uniform(0, 255, (batch, model.in_chans, model.input_size, model.input_size))
    x = x.astype(np.float32)
    with torch.inference_mode():
        ref = model.eval().predict(torch.from_numpy(x)).numpy()
    got = OnnxRunner(model_bytes_or_path, num_threads=1)(x)
    return float(np.abs(ref - got).max())
