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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (set FACELM_SHARED_DATA or put shared/ beside the repo)")
    return SHARED_DATA


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


@pytest.fixture(scope="session", autouse=True)
def facelm_cache(tmp_path_factory):
    """ONNX exports the tests make are cached in a fresh folder, not in the user's ~/.cache/facelm."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("facelm_cache")
        mp.setenv("FACELM_CACHE", str(path))
        yield path
