"""Where YuNet's ONNX file comes from: a local file, or OpenCV's Hugging Face Hub repo through
huggingface_hub's cache. Every file is checked against the SHA-256 of a known YuNet release.

Order: ``model_file`` (an argument), else ``$FACELM_YUNET``, else the Hub file in the local cache,
else, when the Hub is reachable and ``HF_HUB_OFFLINE`` is not set, a download into that cache.
``python -m facelm download-detector`` does the download on purpose.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..errors import FacelmError
from ..hub_status import hub_offline, hub_reachable

HUB_REPO = "opencv/face_detection_yunet"
HUB_FILE = "face_detection_yunet_2023mar.onnx"
ENV_VAR = "FACELM_YUNET"
KNOWN_SHA256: dict[str, str] = {
    "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4": "2023mar (the Hub's file)",
    "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0": "2026may",
}
KNOWN = "known"
"""``sha256=KNOWN``: the file must be one of the releases in :data:`KNOWN_SHA256`."""
HOW_TO_GET = (f"run `python -m facelm download-detector` once while online, or set {ENV_VAR}="
              f"/path/to/{HUB_FILE}")


class YuNetWeightsError(FacelmError, OSError):
    """YuNet's ONNX file is missing, unreadable, or not a known release."""


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_sha256(path: Path, sha256: str | None = KNOWN) -> Path:
    """``path`` if its SHA-256 is ``sha256`` (or, for :data:`KNOWN`, that of a known release); None skips."""
    if sha256 is None:
        return path
    try:
        digest = file_sha256(path)
    except OSError as e:
        raise YuNetWeightsError(f"cannot read the YuNet model file {path}: {e.strerror or e}") from None
    expected = set(KNOWN_SHA256) if sha256 == KNOWN else {sha256.lower()}
    if digest not in expected:
        releases = ", ".join(KNOWN_SHA256.values()) if sha256 == KNOWN else f"SHA-256 {sha256}"
        raise YuNetWeightsError(
            f"the YuNet model file {path} ({path.stat().st_size:,} bytes, SHA-256 {digest[:16]}...) is not the "
            f"expected file ({releases}): truncated, altered or another model. Get it again ({HOW_TO_GET}), "
            "or pass sha256=None to use a build of your own")
    return path


def cached_or_downloaded(filename: str = HUB_FILE, revision: str | None = None, download: bool = True,
                         cache_dir: str | os.PathLike | None = None) -> Path:
    """The Hub file from huggingface_hub's cache (``cache_dir``: its default one); downloaded first
    when it is missing, ``download`` is true, ``HF_HUB_OFFLINE`` is not set and the Hub answers (so an
    offline machine never waits)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    try:
        return Path(hf_hub_download(HUB_REPO, filename, revision=revision, cache_dir=cache_dir,
                                    local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    if not download or hub_offline():
        why = "HF_HUB_OFFLINE is set" if download else "not downloading"
        raise YuNetWeightsError(f"YuNet's weights ({HUB_REPO}/{filename}) are not in the Hugging Face cache and "
                                f"{why}: {HOW_TO_GET}")
    if not hub_reachable():
        raise YuNetWeightsError(f"YuNet's weights ({HUB_REPO}/{filename}) are not in the Hugging Face cache and "
                                f"the Hub is not reachable: {HOW_TO_GET}")
    try:
        return Path(hf_hub_download(HUB_REPO, filename, revision=revision, cache_dir=cache_dir))
    except Exception as e:  # huggingface_hub raises HTTP, repo, revision and OS errors alike
        raise YuNetWeightsError(f"cannot download {HUB_REPO}/{filename}"
                                f"{f' at revision {revision}' if revision else ''}: {type(e).__name__}: {e}") from None


def yunet_model_file(model_file: str | os.PathLike | None = None, filename: str = HUB_FILE,
                     revision: str | None = None, sha256: str | None = KNOWN, download: bool = True,
                     cache_dir: str | os.PathLike | None = None) -> Path:
    """The checked path of YuNet's ONNX file (see the module docstring for the order searched)."""
    local = model_file if model_file is not None else (os.environ.get(ENV_VAR, "").strip() or None)
    if local is not None:
        path = Path(local).expanduser()
        source = "model_file" if model_file is not None else ENV_VAR
        if not path.is_file():
            raise YuNetWeightsError(f"the YuNet model file {path} (from {source}) does not exist")
    else:
        path = cached_or_downloaded(filename, revision, download, cache_dir)
    return check_sha256(path, sha256)
