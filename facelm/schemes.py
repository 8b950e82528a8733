"""Landmark schemes: point names, flip permutations, normalising points, drawing connections.

A scheme is pure data; everything that depends on "which point is which" reads it from here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import SchemeError

__all__ = ["Scheme", "IBUG68", "KAGGLE15", "CELEBA5", "SCHEMES", "get_scheme", "convert", "conversion_matrix"]


@dataclass(frozen=True)
class Scheme:
    name: str
    names: tuple[str, ...]
    flip: tuple[int, ...]
    """``flip[i]`` is the point that point ``i`` becomes after a horizontal flip of the image."""
    interocular: tuple[int, int]
    """Outer eye corners (or eye centres where the scheme has no corners), image-left first."""
    pupils: tuple[tuple[int, ...], tuple[int, ...]]
    """Points whose mean is each pupil (image-left eye first)."""
    connections: tuple[tuple[str, tuple[int, ...], bool], ...] = field(default=())
    """(part name, point indices, closed) polylines used to draw the face."""

    @property
    def num_points(self) -> int:
        return len(self.names)

    def __post_init__(self) -> None:
        k = len(self.names)
        if sorted(self.flip) != list(range(k)):
            raise SchemeError(f"scheme {self.name!r}: flip is not a permutation of {k} points")
        if any(self.flip[self.flip[i]] != i for i in range(k)):
            raise SchemeError(f"scheme {self.name!r}: flip is not an involution")

    def mirror_points(self, points: np.ndarray, width: float) -> np.ndarray:
        """(..., K, 2) points of an image ``width`` pixels wide as they lie in its mirror image:
        renumbered by ``flip``, column x -> width - 1 - x (pixel centres at integers)."""
        out = np.array(points)[..., list(self.flip), :]
        out[..., 0] = width - 1 - out[..., 0]
        return out

    def mirror_displacements(self, d: np.ndarray) -> np.ndarray:
        """(..., K, 2) per-point displacements as they look after a horizontal flip of the image:
        renumbered by ``flip`` and with x turned around."""
        out = np.array(d)[..., list(self.flip), :]
        out[..., 0] *= -1
        return out

    def pupil_points(self, landmarks: np.ndarray) -> np.ndarray:
        """(…, K, 2) -> (…, 2, 2): the two pupil centres."""
        left = landmarks[..., list(self.pupils[0]), :].mean(axis=-2)
        right = landmarks[..., list(self.pupils[1]), :].mean(axis=-2)
        return np.stack([left, right], axis=-2)


def _ibug68_names() -> tuple[str, ...]:
    # "l"/"r" are image-left/image-right (the subject's right/left), as 300-W numbers them.
    names = [f"jaw_{i:02d}" for i in range(17)]
    names += [f"brow_l_{i}" for i in range(5)] + [f"brow_r_{i}" for i in range(5)]
    names += [f"nose_bridge_{i}" for i in range(4)] + [f"nose_base_{i}" for i in range(5)]
    names += ["eye_l_outer", "eye_l_top_outer", "eye_l_top_inner", "eye_l_inner", "eye_l_bottom_inner", "eye_l_bottom_outer"]
    names += ["eye_r_inner", "eye_r_top_inner", "eye_r_top_outer", "eye_r_outer", "eye_r_bottom_outer", "eye_r_bottom_inner"]
    names += [f"lip_outer_{i:02d}" for i in range(12)] + [f"lip_inner_{i}" for i in range(8)]
    return tuple(names)


IBUG68 = Scheme(
    name="ibug68",
    names=_ibug68_names(),
    flip=(16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
          27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, 54, 53, 52, 51,
          50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65),
    interocular=(36, 45),
    pupils=(tuple(range(36, 42)), tuple(range(42, 48))),
    connections=(
        ("jaw", tuple(range(0, 17)), False),
        ("brow_l", tuple(range(17, 22)), False),
        ("brow_r", tuple(range(22, 27)), False),
        ("nose_bridge", tuple(range(27, 31)), False),
        ("nose_base", tuple(range(30, 36)) + (30,), False),
        ("eye_l", tuple(range(36, 42)), True),
        ("eye_r", tuple(range(42, 48)), True),
        ("lips_outer", tuple(range(48, 60)), True),
        ("lips_inner", tuple(range(60, 68)), True),
    ),
)

# Kaggle facial-keypoints: "left"/"right" are the subject's, so "left_eye" is on the image's right.
KAGGLE15 = Scheme(
    name="kaggle15",
    names=(
        "left_eye_center", "right_eye_center",
        "left_eye_inner_corner", "left_eye_outer_corner",
        "right_eye_inner_corner", "right_eye_outer_corner",
        "left_eyebrow_inner_end", "left_eyebrow_outer_end",
        "right_eyebrow_inner_end", "right_eyebrow_outer_end",
        "nose_tip",
        "mouth_left_corner", "mouth_right_corner",
        "mouth_center_top_lip", "mouth_center_bottom_lip",
    ),
    flip=(1, 0, 4, 5, 2, 3, 8, 9, 6, 7, 10, 12, 11, 13, 14),
    interocular=(5, 3),
    pupils=((1,), (0,)),
    connections=(
        ("eye_r", (5, 1, 4), False),
        ("eye_l", (2, 0, 3), False),
        ("brow_r", (9, 8), False),
        ("brow_l", (6, 7), False),
        ("mouth", (12, 13, 11, 14), True),
        ("nose", (10,), False),
    ),
)

# CelebA: "left" is the image's left (the subject's right), unlike Kaggle.
CELEBA5 = Scheme(
    name="celeba5",
    names=("lefteye", "righteye", "nose", "leftmouth", "rightmouth"),
    flip=(1, 0, 2, 4, 3),
    interocular=(0, 1),
    pupils=((0,), (1,)),
    connections=(("eyes", (0, 1), False), ("mouth", (3, 4), False), ("nose", (2,), False)),
)

SCHEMES: dict[str, Scheme] = {s.name: s for s in (IBUG68, KAGGLE15, CELEBA5)}
_ALIASES = {"68": "ibug68", "ibug": "ibug68", "300w": "ibug68", "15": "kaggle15", "kaggle": "kaggle15",
            "5": "celeba5", "celeba": "celeba5"}


def get_scheme(name: str | int | Scheme) -> Scheme:
    """Look a scheme up by name, alias ("68", "15", "5") or pass one through."""
    if isinstance(name, Scheme):
        return name
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    if key not in SCHEMES:
        raise SchemeError(f"unknown landmark scheme {name!r}; known: {sorted(SCHEMES)} or {sorted(_ALIASES)}")
    return SCHEMES[key]


def scheme_for_count(num_points: int) -> Scheme:
    """The scheme with this many points (each built-in scheme has a distinct count)."""
    for s in SCHEMES.values():
        if s.num_points == num_points:
            return s
    raise SchemeError(f"no landmark scheme has {num_points} points; known: "
                      + ", ".join(f"{s.name} ({s.num_points})" for s in SCHEMES.values()))


# Each output point is a mean of 68-pt points. Documented per point:
_FROM_IBUG68: dict[str, dict[str, tuple[int, ...]]] = {
    "kaggle15": {
        "left_eye_center": tuple(range(42, 48)),   # mean of the image-right eye contour
        "right_eye_center": tuple(range(36, 42)),  # mean of the image-left eye contour
        "left_eye_inner_corner": (42,),
        "left_eye_outer_corner": (45,),
        "right_eye_inner_corner": (39,),
        "right_eye_outer_corner": (36,),
        "left_eyebrow_inner_end": (22,),
        "left_eyebrow_outer_end": (26,),
        "right_eyebrow_inner_end": (21,),
        "right_eyebrow_outer_end": (17,),
        "nose_tip": (30,),
        "mouth_left_corner": (54,),
        "mouth_right_corner": (48,),
        "mouth_center_top_lip": (51,),     # outer upper-lip centre
        "mouth_center_bottom_lip": (57,),  # outer lower-lip centre
    },
    "celeba5": {
        "lefteye": tuple(range(36, 42)),   # mean of the image-left eye contour
        "righteye": tuple(range(42, 48)),
        "nose": (30,),
        "leftmouth": (48,),
        "rightmouth": (54,),
    },
}


def conversion_matrix(src: str | Scheme, dst: str | Scheme) -> np.ndarray:
    """(K_dst, K_src) weights such that ``dst_points = W @ src_points``."""
    src, dst = get_scheme(src), get_scheme(dst)
    if src == dst:
        return np.eye(src.num_points, dtype=np.float32)
    if src.name != "ibug68" or dst.name not in _FROM_IBUG68:
        raise SchemeError(f"no conversion from {src.name} to {dst.name}; only ibug68 -> "
                          + "/".join(_FROM_IBUG68))
    table = _FROM_IBUG68[dst.name]
    w = np.zeros((dst.num_points, src.num_points), dtype=np.float32)
    for i, name in enumerate(dst.names):
        idx = table[name]
        w[i, list(idx)] = 1.0 / len(idx)
    return w


def convert(landmarks: np.ndarray, src: str | Scheme, dst: str | Scheme) -> np.ndarray:
    """Convert (…, K_src, 2) landmarks to another scheme."""
    w = conversion_matrix(src, dst)
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.shape[-2] != w.shape[1]:
        raise SchemeError(f"expected {w.shape[1]} points for {get_scheme(src).name}, got {landmarks.shape[-2]}")
    return np.einsum("ij,...jc->...ic", w, landmarks).astype(np.float32)
