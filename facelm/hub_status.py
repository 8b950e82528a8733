"""Whether the Hugging Face Hub may be used: the user's ``HF_HUB_OFFLINE`` and a quick reachability
probe, so that nothing waits on a network that is not there. Imports no huggingface_hub (which reads
``HF_HUB_OFFLINE`` when it is first imported: callers may still set it after asking)."""
from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlparse


def hub_offline() -> bool:
    """Whether the user asked huggingface_hub to stay offline (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hugging Face Hub answers at all (a thread, since DNS lookups ignore timeouts)."""
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass
    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(ok)
