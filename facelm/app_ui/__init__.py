"""The app's own page assets (its CSS, the header and the editor's keyboard hints), kept as files and
read with importlib.resources so that a wheel or a Space carries them. The editor's assets are in
:mod:`facelm.editor`."""
from __future__ import annotations

from importlib import resources

__all__ = ["CSS", "HEADER", "SHORTCUTS"]


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


CSS = _asset("app.css")
HEADER = _asset("header.html")
SHORTCUTS = _asset("shortcuts.html")
