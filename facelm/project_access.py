"""Who may open an annotation project on a shared app.

A project id is the only key to a project: anyone who has it can resume, edit and export it. The
ids the app makes carry 96 random bits (``new_project_id``), so they cannot be guessed. On a shared
app ("restricted" mode: a Hugging Face Space, or ``FACELM_LOCAL_PATHS=restricted``) people may not
type a name of their own (a name like "test" is the first thing someone else would try), and a
client whose attempts to open projects keep failing is made to wait, longer after each failure,
before it may try again: a refusal, not a sleep, so nobody else's requests wait.
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from .annotation_store import ProjectError, valid_project_id

__all__ = ["APP_ID_RE", "check_typed_id", "ResumeThrottle"]

APP_ID_RE = re.compile(r"\d{8}-\d{6}-[0-9a-f]{24,40}")
"""The shape of ``new_project_id()``."""


def check_typed_id(project_id: str, restricted: bool) -> str:
    """The id, checked: any valid name locally, only app-made ids on a shared app."""
    pid = valid_project_id(project_id)
    if restricted and not APP_ID_RE.fullmatch(pid):
        raise ProjectError(f"project {pid!r}: on this shared app projects have ids the app makes (press "
                           "'New project'); names you type are not allowed, since others could guess them")
    return pid


class ResumeThrottle:
    """Per-client backoff after failed attempts to open a project: after ``free`` failures the client
    must wait ``base * 2**(extra failures)`` seconds (at most ``cap``) before its next attempt."""

    def __init__(self, free: int = 3, base: float = 1.0, cap: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, max_clients: int = 10000):
        self.free, self.base, self.cap, self.clock, self.max_clients = free, base, cap, clock, max_clients
        self._failures: dict[str, tuple[int, float]] = {}  # client -> (failures, not before)
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        """Raise ``ProjectError`` (saying how long to wait) while ``client`` must wait."""
        with self._lock:
            _, not_before = self._failures.get(client, (0, 0.0))
        wait = not_before - self.clock()
        if wait > 0:
            raise ProjectError(f"too many project ids that do not exist were tried from here: wait {wait:.0f} s "
                               "and check the id")

    def failed(self, client: str) -> None:
        with self._lock:
            n, _ = self._failures.get(client, (0, 0.0))
            n += 1
            delay = 0.0 if n <= self.free else min(self.cap, self.base * 2 ** (n - self.free - 1))
            if len(self._failures) >= self.max_clients and client not in self._failures:
                self._failures.pop(next(iter(self._failures)))
            self._failures[client] = (n, self.clock() + delay)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)
