"""Shared fixtures. Real data lives in ../shared/data next to the repository; tests that need it skip
with a clear reason where it is absent (a fresh clone elsewhere)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FACELM_SHARED_DATA", REPO.parent / "shared" / "data"))
YUNET_FILE = SHARED_DATA / "models" / "yunet" / "face_detection_yunet_2026may.onnx"
# The default detector is YuNet wherever its weights are found; CI is offline with an empty Hugging
# Face cache, so the tests point it at the shared copy (the library itself never looks there).
if YUNET_FILE.is_file():
    os.environ.setdefault("FACELM_YUNET", str(YUNET_FILE))


@pytest.fixture(scope="session", autouse=True)
def facelm_cache(tmp_path_factory: pytest.TempPathFactory):
    """Every facelm cache of the session (facelm.paths.cache_dir: crop caches, ...) in a temporary
    folder, not in the user's ~/.cache/facelm; subprocesses the tests start inherit it."""
    patch = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("facelm-cache")
    patch.setenv("FACELM_CACHE", str(folder))
    yield folder
    patch.undo()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (set FACELM_SHARED_DATA or put shared/ beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def chromium() -> Path:
    from _app_helpers import require_chromium
    return require_chromium()


@pytest.fixture(scope="module")
def served(shared_data, tmp_path_factory):
    """(app module, base URL): the app serving in this process for one test module, its annotations
    in a temporary folder."""
    from _app_helpers import app_in_process
    with app_in_process(shared_data / "300w", tmp_path_factory.mktemp("annotations")) as served:
        yield served


@pytest.fixture(scope="module")
def client(served):
    gradio_client = pytest.importorskip("gradio_client")
    return gradio_client.Client(served[1], verbose=False)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's inference on one torch thread. Test machines are often busy (a training run,
    parallel jobs), and then torch's multi-threaded kernels mostly wait for descheduled threads: a
    batch-1 forward took 30x longer on 2 threads than on 1 on a 2-core machine with one core busy."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def yunet_file() -> Path:
    """The shared copy of YuNet's ONNX file (tests never download it)."""
    if not YUNET_FILE.is_file():
        pytest.skip(f"YuNet's weights not found at {YUNET_FILE} (see shared/data/models/yunet/README.md)")
    return YUNET_FILE
