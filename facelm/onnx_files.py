"""Which ONNX file runs a model: one shipped beside its weights (a bundled model, a local folder or a
Hub repo), else an export made once and cached under :func:`facelm.paths.cache_dir` by the weights' hash.

Every file facelm exports carries the hash of the weights it came from, so a file left beside other
weights (a folder retrained in place, a stale download) is refused instead of giving wrong points.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from .errors import ModelLoadError
from .models import LandmarkModel
from .onnx_backend import GRAPH_VERSION, OPSET, OnnxRunner, export_onnx, weights_sha256
from .paths import atomic_write_bytes, cache_dir

ONNX_FILES = ("model_int8.onnx", "model.onnx")
"""Looked for beside a model's weights, in this order: a model folder ships the int8 export where it
keeps the float model's accuracy, the float one otherwise."""


def onnx_beside(folder: Path | None, repo_id: str | None = None) -> Path | None:
    """The ONNX file shipped with a model: in its local ``folder``, or in Hub repo ``repo_id``
    (through huggingface_hub's cache; with ``HF_HUB_OFFLINE`` only what the cache holds). None if none."""
    if folder is not None:
        return next((folder / n for n in ONNX_FILES if (folder / n).is_file()), None)
    if repo_id is None:
        return None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError
    for name in ONNX_FILES:
        try:
            return Path(hf_hub_download(repo_id, name))
        except (EntryNotFoundError, LocalEntryNotFoundError):
            continue
        except (HfHubHTTPError, OSError) as e:  # the weights came through: export them rather than fail
            warnings.warn(f"{repo_id}: cannot download {name} ({type(e).__name__}: {e}); using an export of "
                          "the weights instead", stacklevel=3)
            return None
    return None


def cached_export_path(digest: str) -> Path:
    return cache_dir("onnx", f"{digest}-opset{OPSET}-g{GRAPH_VERSION}.onnx")


def open_onnx(model: LandmarkModel, onnx_file: str | os.PathLike | None = None,
              num_threads: int | None = None) -> OnnxRunner:
    """An onnxruntime runner for ``model``: ``onnx_file`` when given (refused with a ModelLoadError if
    unreadable or exported from other weights), else the cached export of the model, made on first use
    and made again if the cached file is damaged or stale."""
    digest = weights_sha256(model)
    if onnx_file is not None:
        runner = _open(Path(onnx_file), num_threads)
        runner.check_input(model.in_chans, model.input_size)  # the plainer message for another model's file
        if runner.weights_sha256 not in (None, digest):
            raise ModelLoadError(f"{onnx_file}: exported from other weights than this model's; delete it or "
                                 "export it again (python -m facelm export-onnx --model DIR --out FILE), "
                                 "or use backend='torch'")
        return runner
    return _cached(model, digest, num_threads)


def _open(path: Path, num_threads: int | None) -> OnnxRunner:
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such ONNX file")
    try:
        return OnnxRunner(path, num_threads=num_threads)
    except Exception as e:  # onnxruntime raises its own exception types for truncated or foreign files
        raise ModelLoadError(f"{path}: not a readable ONNX model ({type(e).__name__}: {str(e)[:200]}); delete "
                             "it, or use backend='torch'") from e


def _cached(model: LandmarkModel, digest: str, num_threads: int | None) -> OnnxRunner:
    path = cached_export_path(digest)
    if path.is_file():
        try:
            runner = _open(path, num_threads)
            if runner.weights_sha256 == digest:
                return runner
        except ModelLoadError:  # a half-written or damaged cache entry: ours to replace
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, export_onnx(model))
    return _open(path, num_threads)
