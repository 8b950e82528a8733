"""Model save/load on the Hugging Face Hub or local folders: config.json + model.safetensors + README.md."""
from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path

from safetensors import safe_open

from .errors import ModelLoadError
from .models import LandmarkModel

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL_DIR = WEIGHTS_DIR / "ibug68"
"""The bundled default model, shipped inside the package so it works offline."""


def bundled_models() -> list[str]:
    """Names of the models shipped in the package (``load_model("celeba5")``)."""
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / "config.json").is_file())


def _is_local(spec: str | os.PathLike) -> bool:
    s = str(spec)
    return Path(s).exists() or s.startswith((".", "/", "~")) or os.sep in s.strip("/").split("/", 1)[-1]


def local_folder(spec: str | os.PathLike | None) -> Path | None:
    """The folder ``load_model(spec)`` reads: the bundled default (None), a bundled model by name or a
    local path; None for a Hub repo id."""
    if spec is None:
        return DEFAULT_MODEL_DIR
    path = Path(str(spec)).expanduser()
    if not path.exists() and str(spec) in bundled_models():
        path = WEIGHTS_DIR / str(spec)
    return path if path.exists() else None


def load_model(spec: str | os.PathLike | None = None) -> LandmarkModel:
    """Bundled default (None), a bundled model by name (``bundled_models()``), a local folder, or a Hub
    repo id ("org/name"). Errors are ModelLoadError."""
    path = local_folder(spec)
    if path is not None:
        if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
            raise ModelLoadError(f"{path}: not a facelm model folder (needs config.json and model.safetensors)")
        try:
            # huggingface_hub print()s "Loading weights from local directory", which would end up in
            # the CLI's stdout (results, tables) and in every user's console.
            with contextlib.redirect_stdout(io.StringIO()):
                return LandmarkModel.from_pretrained(path).eval()
        except Exception as e:  # a corrupt file or a config from another library
            raise ModelLoadError(f"{path}: cannot load model ({type(e).__name__}: {e})") from e
    s = str(spec)
    if s.count("/") != 1 or s.startswith((".", "/", "~")) or " " in s:
        raise ModelLoadError(f"{s!r}: no such folder, not a bundled model ({', '.join(bundled_models())}), "
                             "and not a Hub repo id of the form 'org/name'")
    try:
        return LandmarkModel.from_pretrained(s).eval()
    except Exception as e:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        hint = " (HF_HUB_OFFLINE is set, and it is not in the local cache)" if offline else ""
        raise ModelLoadError(f"cannot load model {s!r} from the Hugging Face Hub{hint}: {type(e).__name__}: {e}") from e


def stores_float16(model_dir: str | os.PathLike) -> bool:
    """Whether a model folder's weights are stored as float16 (read from the file's header only)."""
    with safe_open(Path(model_dir) / "model.safetensors", "pt") as f:
        return any(f.get_slice(k).get_dtype() == "F16" for k in f.keys())


def push_model(model_dir: str | os.PathLike, repo: str) -> str:
    """Upload a saved model folder to a Hub repo; a local path as ``repo`` copies there instead (tests, mirrors)."""
    model_dir = Path(model_dir)
    target = Path(repo).expanduser()
    if repo.startswith((".", "/", "~")) or target.exists():
        target.mkdir(parents=True, exist_ok=True)
        for f in model_dir.iterdir():
            if f.is_file():
                shutil.copy2(f, target / f.name)
        return str(target)
    from huggingface_hub import HfApi
    api = HfApi()
    api.create_repo(repo, exist_ok=True)
    api.upload_folder(folder_path=str(model_dir), repo_id=repo)
    return f"https://huggingface.co/{repo}"
