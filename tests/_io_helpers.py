"""Helpers shared by the annotation-format tests."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from facelm.errors import AnnotationFormatError


def raises_at(source: str | Path, where: str | None = None, error: type[Exception] = AnnotationFormatError,
              match: str | None = None):
    """``pytest.raises`` that also checks the message names the file (and the line or element; a
    prefix of it is enough, e.g. "line 2, column"), and that ``match`` (plain text) follows."""
    prefix = re.escape(f"{source} ({where}" if where else str(source))
    return pytest.raises(error, match=prefix + (f".*{re.escape(match)}" if match else ""))


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path
