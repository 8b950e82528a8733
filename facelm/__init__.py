"""facelm: face landmark detection you can see, fix and retrain."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .annotation import AnnotatedImage, AnnotationSet, Face
from .errors import AnnotationFormatError, FacelmError, ImageError, ModelLoadError, SchemeError
from .schemes import CELEBA5, IBUG68, KAGGLE15, get_scheme

if TYPE_CHECKING:
    from .hub import load_model
    from .landmarker import FaceLandmarker, Faces
    from .model_registry import ModelInfo, list_models

__version__ = "0.1.0"
__all__ = ["FaceLandmarker", "Faces", "list_models", "load_model", "ModelInfo", "Face", "AnnotatedImage", "AnnotationSet", "IBUG68", "KAGGLE15", "CELEBA5",
           "get_scheme", "FacelmError", "AnnotationFormatError", "ImageError", "ModelLoadError", "SchemeError"]

# torch takes seconds to import: load it only when inference is asked for, so the annotation
# tools and the CLI's --help start at once.
_LAZY = {"FaceLandmarker": ".landmarker", "Faces": ".landmarker", "load_model": ".hub",
         "list_models": ".model_registry", "ModelInfo": ".model_registry"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
