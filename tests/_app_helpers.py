"""The Gradio app (``python app.py``) in a subprocess on a free loopback port, for the tests that talk
to it through gradio_client (crash safety, concurrency, hostile uploads) and for tests/tools/load_test.py.

One server per test process (``shared_app()``), started on first use and stopped at exit, because a
start costs 10-30 s of CPU (torch, the model); the crash test kills it with SIGKILL and starts it
again on the same port and annotations folder, so later tests get the restarted one.

Settings given to the app (see app.py's docstring): annotations in a temporary folder
(FACELM_ANNOTATIONS_DIR), a 1 MB upload limit (FACELM_MAX_FILE_SIZE), local dataset paths restricted
to the demo data and the annotations (FACELM_LOCAL_PATHS=restricted), one torch thread, loopback only.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "app.py"
MAX_FILE_SIZE = 1 << 20  # what FACELM_MAX_FILE_SIZE=1mb means to Gradio
CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying hosts this offline machine refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_chromium() -> Path:
    """Debian's Chromium (playwright's own browser download cannot work offline); skips without it."""
    import pytest
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); the browser test needs it")
    pytest.importorskip("playwright.sync_api")
    return CHROMIUM


def drag_on_stage(page, start: tuple[float, float], by: tuple[float, float]) -> None:
    """Press the mouse on the editor's picture at ``start`` (fractions of its width and height), move
    it ``by`` screen pixels and release (keys held by the caller modify the gesture)."""
    page.locator(".flm-stage").scroll_into_view_if_needed()  # mouse positions are the viewport's
    stage = page.locator(".flm-svg").bounding_box()
    x0, y0 = stage["x"] + stage["width"] * start[0], stage["y"] + stage["height"] * start[1]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + by[0], y0 + by[1], steps=6)
    page.mouse.up()


def new_page(browser, errors: list[str], url: str | None = None):
    """A page (of ``url``, when given) whose uncaught exceptions and console errors are appended to
    ``errors``."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    if url:
        page.goto(url)
    return page


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def app_in_process(demo_data: Path, annotations: Path) -> Iterator[tuple[ModuleType, str]]:
    """(app module, base URL): ``app.demo`` launched in this process on a free loopback port, with
    the Compare/Annotate demo data and the annotations folder given."""
    os.environ.setdefault("FACELM_DEMO_DATA", str(demo_data))
    import app

    app.ANNOTATIONS_DIR = annotations
    port = free_port()
    app.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                    **app.LAUNCH_KWARGS)
    try:
        yield app, f"http://127.0.0.1:{port}/"
    finally:
        app.demo.close()


class AppServer:
    """``python app.py`` as a child process; ``kill()`` is a SIGKILL, as a crash or the OOM killer."""

    def __init__(self, workdir: Path | None = None, port: int | None = None, env: dict[str, str] | None = None):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="facelm-app-"))
        self.annotations = self.workdir / "annotations"
        self.annotations.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = self.workdir / "app.log"
        self.env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(self.port),
                        GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(self.workdir / "gradio"),
                        FACELM_ANNOTATIONS_DIR=str(self.annotations), FACELM_MAX_FILE_SIZE="1mb",
                        FACELM_LOCAL_PATHS="restricted", FACELM_THREADS="1", HF_HUB_OFFLINE="1",
                        PYTHONUNBUFFERED="1", **(env or {}))
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 240) -> "AppServer":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, str(APP)], cwd=REPO, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "gradio_api/info", timeout=5).status_code == 200:
                    self.starts += 1
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"app.py did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler, no cleanup, no flush; exactly what a crash does to the app."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self):
        from gradio_client import Client
        return Client(self.url, verbose=False, download_files=False)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return "(no log)"


_shared: AppServer | None = None


def shared_app() -> AppServer:
    """The test process's app server, started on first use (and restarted if a test left it dead)."""
    global _shared
    if _shared is None:
        _shared = AppServer()
        atexit.register(_cleanup)
    if not _shared.alive():
        _shared.start()
    return _shared


def _cleanup() -> None:
    if _shared is not None:
        _shared.stop()
        shutil.rmtree(_shared.workdir, ignore_errors=True)


def open_item(client, project: str, item: str) -> int:
    """Open ``item`` in this client's session (as a click on its queue row does) and return its
    revision: the app accepts edits only for the image a session shows (facelm.annotate_session)."""
    return client.predict(project, item, None, api_name="/annotate_goto")[0]["revision"]


def one_face(x: float, k: int = 68) -> list[dict]:
    """Faces of an edit: one face with all ``k`` points at (x, x + 0.5), the edit's serial number."""
    return [{"points": [[float(x), x + 0.5]] * k, "box": [0.0, 0.0, 10.0, 10.0]}]


def tiny_photo(path: Path, seed: int = 0, size: tuple[int, int] = (96, 112)) -> Path:
    """A small noise image (no face: the app starts it with no face; edits add one)."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path
