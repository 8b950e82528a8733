"""Image input: paths, PIL images and arrays -> HxWx3 uint8 RGB numpy, with clear errors."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

ImageLike = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

MAX_PIXELS = 64_000_000
"""Images above this many pixels are refused (decompression bombs); about an 8000 x 8000 photo."""


def _check_size(w: int, h: int, what: str, max_pixels: int) -> None:
    if w <= 0 or h <= 0:
        raise ImageError(f"{what}: image has zero size ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(f"{what}: image is {w}x{h} = {w * h:,} pixels, above the limit of {max_pixels:,} "
                         "(a decompression bomb or a very large photo; downscale it first)")


def load_pil(source: str | os.PathLike | bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image file or bytes, refusing bombs before decoding and applying EXIF orientation."""
    what = "image bytes" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise ImageError(f"{what}: no such image file")
    try:
        im = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        _check_size(im.width, im.height, what, max_pixels)
        im.load()
        im = ImageOps.exif_transpose(im)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(f"{what}: refused as a decompression bomb ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{what}: not a readable image ({type(e).__name__}: {e})") from None
    return im


def to_rgb_array(image: ImageLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Any supported image -> HxWx3 uint8 RGB array (grayscale expanded, alpha dropped)."""
    if isinstance(image, (str, os.PathLike, bytes)):
        image = load_pil(image, max_pixels)
    if isinstance(image, Image.Image):
        _check_size(image.width, image.height, "image", max_pixels)
        # A PIL image straight from Image.open still carries its EXIF orientation: give the same
        # pixels as its path would (exif_transpose drops the tag, so a second call changes nothing).
        image = ImageOps.exif_transpose(image)
        if image.mode != "RGB":
            image = image.convert("RGBA").convert("RGB") if image.mode in ("P", "LA", "PA") else image.convert("RGB")
        return np.asarray(image, dtype=np.uint8)
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image, max_pixels)
    raise ImageError(f"unsupported image type {type(image).__name__}; pass a path, bytes, a PIL image or an array")


def _array_to_rgb(a: np.ndarray, max_pixels: int) -> np.ndarray:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(f"image array must be HxW, HxWx1, HxWx3 or HxWx4; got shape {a.shape}")
    _check_size(a.shape[1], a.shape[0], "image array", max_pixels)
    if a.dtype != np.uint8:
        if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.number):
            raise ImageError(f"image array has unsupported dtype {a.dtype}; expected uint8 (or float in [0, 1])")
        if np.issubdtype(a.dtype, np.floating):
            if not np.isfinite(a).all():
                raise ImageError("image array has NaN or infinite values")
            hi = float(a.max()) if a.size else 0.0
            a = a * 255.0 if hi <= 1.0 else a  # floats in [0, 1] are the common convention
            a = np.rint(a)  # astype truncates: 0.999 * 255 would become 254
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    elif a.shape[2] == 4:
        a = a[..., :3]
    return np.ascontiguousarray(a)
