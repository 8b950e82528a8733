"""The project's own error types: every failure a user can cause maps to one of these."""
from __future__ import annotations


class FacelmError(Exception):
    """Base class of every error facelm raises on purpose."""


class SchemeError(FacelmError, ValueError):
    """Unknown scheme, or points that do not fit one."""


class AnnotationFormatError(FacelmError, ValueError):
    """A malformed annotation file. The message names the file and the line or element."""

    def __init__(self, message: str, source: str | None = None, where: str | None = None):
        self.source = source
        self.where = where
        prefix = ""
        if source:
            prefix = f"{source}"
            if where:
                prefix += f" ({where})"
            prefix += ": "
        super().__init__(prefix + message)


class ImageError(FacelmError, ValueError):
    """An image that cannot be read, or is empty, too large or of an unsupported type."""


class ModelLoadError(FacelmError, OSError):
    """A model that cannot be found or loaded."""


class UnsafePathError(FacelmError, ValueError):
    """A file name that would escape its folder."""
