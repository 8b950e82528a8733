"""Models: a registry of backbones and heads, and the LandmarkModel that combines them."""
from .landmark_model import LandmarkModel, LandmarkPredictor
from .registry import get_backbone, get_head, list_backbones, list_heads, register_backbone, register_head

__all__ = ["LandmarkModel", "LandmarkPredictor", "get_backbone", "get_head", "list_backbones", "list_heads",
           "register_backbone", "register_head"]
