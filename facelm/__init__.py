"""facelm: face landmark detection you can see, fix and retrain."""
from .annotation import AnnotatedImage, AnnotationSet, Face
from .errors import AnnotationFormatError, FacelmError, ImageError, ModelLoadError, SchemeError
from .landmarker import FaceLandmarker, Faces
from .schemes import CELEBA5, IBUG68, KAGGLE15, get_scheme

__version__ = "0.1.0"
__all__ = ["FaceLandmarker", "Faces", "Face", "AnnotatedImage", "AnnotationSet", "IBUG68", "KAGGLE15", "CELEBA5",
           "get_scheme", "FacelmError", "AnnotationFormatError", "ImageError", "ModelLoadError", "SchemeError"]
