"""From crop caches to the tensors the training loop eats."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from facelm.augment import AugmentConfig, apply, build_augment, build_eval
from facelm.crop import LUMA
from facelm.crop_cache import CropCache
from facelm.schemes import Scheme


class CachedFaces(Dataset):
    """Faces from a CropCache, augmented (training) or centre-cropped (evaluation)."""

    def __init__(self, cache: CropCache, scheme: Scheme, train: bool, augment: AugmentConfig | None = None,
                 in_chans: int = 3):
        self.cache = cache
        self.luma = torch.tensor(LUMA).view(3, 1, 1) if in_chans == 1 else None
        self.transform = build_augment(scheme, cache.input_size, augment) if train else build_eval(cache.input_size)

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, pts = apply(self.transform, torch.from_numpy(self.cache.images[i]),
                         torch.from_numpy(self.cache.landmarks[i]))
        img = img.float()
        if self.luma is not None:  # the same one channel as facelm.crop.crops_to_input gives at inference
            img = (img * self.luma).sum(0, keepdim=True)
        return img, pts.float()


def neighbors_from_mean_shape(landmarks: np.ndarray, k: int) -> list[list[int]]:
    """Each point's k nearest points in the mean shape (PIPNet's neighbour definition)."""
    mean = np.nanmean(landmarks, axis=0)
    d = np.linalg.norm(mean[:, None] - mean[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1)[:, :k].tolist()


def sample_weights(sources: np.ndarray, weights: dict[str, float]) -> np.ndarray:
    return np.array([weights.get(str(s), 1.0) for s in sources], dtype=np.float64)
