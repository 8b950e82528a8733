"""Training augmentation with torchvision v2 transforms on images and ``tv_tensors.KeyPoints``.

Samples come from a crop cache (see ``crop_cache``): a face crop ``margin`` times wider than the
model input, centred like the inference crop. Random affine (rotation, scale, shift = box jitter)
about that centre, then the centre crop, reproduces the inference crop of a jittered box.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from .schemes import Scheme


class MirrorFlip(v2.Transform):
    """Horizontal flip that also renumbers points with the scheme's mirror permutation
    (torchvision's flip moves points but cannot know that a left eye becomes a right eye)."""

    def __init__(self, flip: tuple[int, ...], p: float = 0.5, shift: torch.Tensor | None = None):
        super().__init__()
        self.perm = torch.tensor(flip, dtype=torch.long)
        self.p = p
        self.shift = shift
        """(K, 2) pixels added to the mirrored points: twice the labels' mirror-asymmetric part, which
        mirroring would otherwise turn around (LandmarkModel's mirror_offset)"""

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"apply": bool(torch.rand(()) < self.p)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not params["apply"]:
            return inpt
        if isinstance(inpt, tv_tensors.KeyPoints):
            w = inpt.canvas_size[1]
            pts = inpt.as_subclass(torch.Tensor)[self.perm].clone()
            pts[..., 0] = w - 1 - pts[..., 0]  # pixel-centre convention: column i -> w-1-i
            if self.shift is not None:
                pts = pts + self.shift.to(pts.dtype)
            return tv_tensors.wrap(pts, like=inpt)
        if isinstance(inpt, tv_tensors.Image):
            return tv_tensors.wrap(inpt.flip(-1), like=inpt)
        return inpt


class RandomAffine(v2.RandomAffine):
    """torchvision's RandomAffine with points and pixels turned about the same centre. torchvision
    turns images about the middle of the canvas but key points about (W/2, H/2) in their own
    coordinates, which are ours only if pixel centres sat at half-integers; ours sit at integers (as
    torchvision's own flip assumes), so points get half a pixel's arm of error (how much label noise
    that is: docs/training.md#mirror-asymmetry). Points cross the affine in the half-integer convention."""

    def _call_kernel(self, functional: Any, inpt: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(inpt, tv_tensors.KeyPoints):
            moved = super()._call_kernel(functional, tv_tensors.wrap(inpt.as_subclass(torch.Tensor) + 0.5, like=inpt),
                                         *args, **kwargs)
            return tv_tensors.wrap(moved.as_subclass(torch.Tensor) - 0.5, like=moved)
        return super()._call_kernel(functional, inpt, *args, **kwargs)


class Occlude(v2.RandomErasing):
    """Paint a random rectangle over the face (a hand, hair, a microphone). Landmarks keep their
    labels under it: the model learns to place hidden points from the visible face around them. The
    patch is one random flat colour (torchvision's "random" is unit-variance noise, which saturates uint8)."""

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        params = super().make_params(flat_inputs)
        if params["v"] is not None:
            channels = next(x.shape[-3] for x in flat_inputs if isinstance(x, tv_tensors.Image))
            params["v"] = torch.randint(0, 256, (channels, 1, 1), dtype=torch.uint8)
        return params

    def _call_kernel(self, functional: Any, inpt: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(inpt, tv_tensors.KeyPoints):
            return inpt  # torchvision passes points through too, but warns on every sample
        return super()._call_kernel(functional, inpt, *args, **kwargs)


@dataclass
class AugmentConfig:
    rotation: float = 25.0
    scale: tuple[float, float] = (0.85, 1.15)
    shift: float = 0.06
    """Box jitter: centre shift as a fraction of the crop side."""
    flip: float = 0.5
    brightness: float = 0.35
    contrast: float = 0.35
    saturation: float = 0.3
    hue: float = 0.03
    grayscale: float = 0.1
    blur: float = 0.1
    occlusion: float = 0.0
    """probability of painting a random rectangle (2-20 % of the crop) over the face"""
    mirror_shift: tuple[tuple[float, float], ...] | None = None
    """per point, crop pixels added to mirrored points (MirrorFlip's shift)"""

    def scaled(self, strength: float) -> "AugmentConfig":
        """The geometric jitter (rotation, scale, shift) times ``strength``: below 1 for a last,
        precise fine-tune; colour jitter, flips and blur stay."""
        lo, hi = self.scale
        return replace(self, rotation=self.rotation * strength, shift=self.shift * strength,
                       scale=(1 - (1 - lo) * strength, 1 + (hi - 1) * strength))


def build_augment(scheme: Scheme, input_size: int, cfg: AugmentConfig | None = None) -> v2.Compose:
    cfg = cfg or AugmentConfig()
    return v2.Compose([
        RandomAffine(degrees=cfg.rotation, translate=(cfg.shift, cfg.shift), scale=cfg.scale,
                        interpolation=v2.InterpolationMode.BILINEAR),
        v2.CenterCrop(input_size),
        MirrorFlip(scheme.flip, cfg.flip, None if cfg.mirror_shift is None else torch.tensor(cfg.mirror_shift)),
        v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue),
        v2.RandomGrayscale(cfg.grayscale),
        v2.RandomApply([v2.GaussianBlur(5, sigma=(0.3, 1.5))], p=cfg.blur),
        Occlude(p=cfg.occlusion, scale=(0.02, 0.2), value=0),
    ])


def build_eval(input_size: int) -> v2.Compose:
    return v2.Compose([v2.CenterCrop(input_size)])


def apply(transform: v2.Compose, image_hwc: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 HxWxC crop + (K, 2) points -> transformed uint8 CxHxW image and (K, 2) points."""
    img = tv_tensors.Image(image_hwc.permute(2, 0, 1))
    kp = tv_tensors.KeyPoints(points, canvas_size=tuple(img.shape[-2:]))
    img, kp = transform(img, kp)
    return img.as_subclass(torch.Tensor), kp.as_subclass(torch.Tensor)
