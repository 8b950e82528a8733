"""The landmark model: backbone + head + input normalisation, saved and loaded with huggingface_hub."""
from __future__ import annotations

import inspect

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from . import backbones as _backbones  # noqa: F401  (registers the backbones)
from . import heads as _heads  # noqa: F401  (registers the heads)
from .model_card import MODEL_CARD_TEMPLATE
from .registry import get_backbone, get_head


class LandmarkModel(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="facelm",
    tags=["face-landmarks", "facial-landmark-detection", "facelm"],
    pipeline_tag="keypoint-detection",
    model_card_template=MODEL_CARD_TEMPLATE,
):
    """Face crop (B, C, S, S) float in [0, 255] -> landmarks.

    ``forward`` returns the head's raw outputs (for training); ``predict`` returns (B, K, 2) landmark
    coordinates in crop pixels. Every constructor argument lands in ``config.json``.

    ``point_offset`` (K x 2 crop pixels, default none) is added to the decoded points: the part of the
    annotators' convention that is not mirror-symmetric. Training shows every face mirrored half the
    time, and mirroring turns that part's sign, so the network learns its average, zero, and misses it
    by its whole size on every face; ``python -m train.point_offsets`` measures it on training faces.
    ``mirror_offset`` (K x 2 crop pixels) is what the points of a mirrored crop, mirrored back, lack
    against the crop's own (twice that asymmetric part, for a model that has learnt or been given it;
    measured without labels by train.point_offsets): the flip test adds it back, and training mirrors
    faces with it so that they keep the convention.
    """

    def __init__(
        self,
        backbone: str = "facelm_res",
        head: str = "pipnet",
        scheme: str = "ibug68",
        num_points: int = 68,
        input_size: int = 112,
        in_chans: int = 3,
        width: int = 32,
        depth: int = 1,
        neighbors: list[list[int]] | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        crop_scale: float = 1.3,
        crop_shift_y: float = 0.0,
        point_offset: list[list[float]] | None = None,
        mirror_offset: list[list[float]] | None = None,
    ):
        super().__init__()
        self._config = {name: value for name, value in locals().items() if name in _CONFIG_KEYS}
        self.scheme = scheme
        self.num_points = num_points
        self.input_size = input_size
        self.in_chans = in_chans
        self.crop_scale = crop_scale
        self.crop_shift_y = crop_shift_y
        mean = mean or [0.5] * in_chans
        std = std or [0.25] * in_chans
        if len(mean) != in_chans or len(std) != in_chans:
            raise ValueError("mean and std need one value per input channel")
        # Folded into the graph so that ONNX and torch take the same raw pixels.
        self.register_buffer("pixel_scale", torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_shift", torch.tensor([m / s for m, s in zip(mean, std)]).view(1, -1, 1, 1), persistent=False)
        for name, value in (("point_offset", point_offset), ("mirror_offset", mirror_offset)):
            offset = torch.zeros(num_points, 2) if value is None else torch.tensor(value, dtype=torch.float32)
            if offset.shape != (num_points, 2):
                raise ValueError(f"{name} must be {num_points} x 2 (crop pixels per point), not {tuple(offset.shape)}")
            self.register_buffer(name, offset, persistent=False)
        self.backbone = get_backbone(backbone)(in_chans=in_chans, width=width, depth=depth)
        self.head = get_head(head)(self.backbone.channels, num_points, input_size, neighbors=neighbors)

    @property
    def config(self) -> dict:
        """The constructor arguments (what ``config.json`` holds): ``LandmarkModel(**model.config)``
        builds the same network."""
        return dict(self._config)

    def _copy(self, **changes: object) -> "LandmarkModel":
        """A model of this config with ``changes``, holding these weights."""
        model = LandmarkModel(**dict(self._config, **changes))
        model.load_state_dict(self.state_dict())
        return model

    def with_input_size(self, input_size: int) -> "LandmarkModel":
        """A copy that takes ``input_size`` crops, with these weights: every layer is a convolution, so
        only the head's grid changes. A starting point for training at another resolution."""
        return self._copy(input_size=input_size, **self._offsets_times(input_size / self.input_size))

    def _offsets_times(self, k: float) -> dict[str, list]:
        """The stored offsets (crop pixels) times ``k``: what they become when a crop pixel changes size."""
        return {name: (getattr(self, name) * k).tolist() for name in ("point_offset", "mirror_offset")
                if self._config.get(name) is not None}

    def with_crop_scale(self, crop_scale: float) -> "LandmarkModel":
        """A copy that crops ``crop_scale`` x the face box, with these weights: the face then fills more
        (or less) of the crop, as if the photo were zoomed. A starting point for training at another
        framing (docs/speed.md: tighter crops at a smaller input size keep the pixels per face)."""
        if not crop_scale > 0:
            raise ValueError(f"crop_scale must be > 0; got {crop_scale!r}")
        return self._copy(crop_scale=float(crop_scale), **self._offsets_times(self.crop_scale / crop_scale))

    def with_offsets(self, point_offset: np.ndarray | torch.Tensor | None,
                     mirror_offset: np.ndarray | torch.Tensor | None) -> "LandmarkModel":
        """A copy with these weights and other offsets ((K, 2) crop pixels; None: zero), kept to 1e-4 px."""
        def stored(a: np.ndarray | torch.Tensor | None) -> list | None:
            # float64 first: a float32 value prints as 0.7529000043869019 in config.json
            return None if a is None else np.round(np.asarray(a, np.float64), 4).tolist()
        return self._copy(point_offset=stored(point_offset), mirror_offset=stored(mirror_offset)).eval()

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backbone(x * self.pixel_scale - self.pixel_shift)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(*self._features(x))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Crops -> (B, K, 2) points in input pixels: ``decode(self(x))``, by the head's cheaper path."""
        points = self.head.predict(*self._features(x))
        return points + self.point_offset.to(points.dtype)

    def decode(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """Raw outputs of ``forward`` -> (B, K, 2) points in input pixels."""
        points = self.head.decode(out)
        return points + self.point_offset.to(points.dtype)

    def loss(self, x: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head.loss(self(x), target)


class LandmarkPredictor(nn.Module):
    """Wraps a model so that forward returns coordinates: what ONNX export and batch inference use."""

    def __init__(self, model: LandmarkModel):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.predict(x)


_CONFIG_KEYS = frozenset(list(inspect.signature(LandmarkModel.__init__).parameters)[1:])


def config_default(key: str) -> object:
    """``LandmarkModel``'s default for a config key: what a config saved before the key existed
    means, and what a new model gets when nothing is asked for."""
    return inspect.signature(LandmarkModel.__init__).parameters[key].default
