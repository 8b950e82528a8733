"""Video frames in (a file through OpenCV, or any iterable of RGB frames) and overlay video out.

Frames come out as (index, HxWx3 uint8 RGB); ``index`` counts every frame of the source, read or
not, so that results line up with the video's own frame numbers. A frame that cannot be decoded is
skipped and recorded in :attr:`FrameSource.skipped`; reading stops (recorded in
:attr:`FrameSource.stopped`) after :data:`MAX_FAILURES_IN_A_ROW` undecodable frames in a row, so a
broken file never holds a run for long.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from .errors import FacelmError, ImageError
from .image import MAX_PIXELS, to_rgb_array

DEFAULT_FPS = 30.0
"""Frame rate assumed when a source does not tell (an iterable, a file with a broken header)."""

MAX_FAILURES_IN_A_ROW = 50


class VideoError(FacelmError, ValueError):
    """A video that cannot be opened, holds no frames, or cannot be written."""


class FrameSource:
    """Iterate once over ``(index, rgb_frame)``. ``source`` is a video file path or an iterable of
    frames (anything :func:`facelm.image.to_rgb_array` takes; ``None`` entries and unusable frames
    are skipped and counted)."""

    def __init__(self, source: str | os.PathLike | Iterable, fps: float | None = None,
                 max_pixels: int = MAX_PIXELS):
        self.skipped: list[int] = []
        """Indices of the frames that could not be decoded or used."""
        self.stopped: str | None = None
        """Why reading ended before the source's announced end, if it did."""
        self.max_pixels = max_pixels
        self._cap: cv2.VideoCapture | None = None
        self.frame_count: int | None = None
        if isinstance(source, (str, os.PathLike)):
            self._cap = _open_capture(Path(source), max_pixels)
            count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
            self.frame_count = int(count) if math.isfinite(count) and count > 0 else None
            file_fps = self._cap.get(cv2.CAP_PROP_FPS)
            fps = fps or (file_fps if math.isfinite(file_fps) and 0 < file_fps <= 1000 else None)
            self._frames: Iterator = _read_capture(self._cap, self)
        elif isinstance(source, Iterable) and not isinstance(source, (bytes, np.ndarray)):
            self._frames = _checked(source, self)
        else:
            raise VideoError(f"expected a video file path or an iterable of frames, got {type(source).__name__}")
        self.fps = float(fps) if fps and fps > 0 else DEFAULT_FPS
        self.name = str(source) if self._cap is not None else "frames"

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        try:
            yield from self._frames
        finally:
            self.close()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()


def _open_capture(path: Path, max_pixels: int) -> cv2.VideoCapture:
    if not path.is_file():
        raise VideoError(f"{path}: no such video file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: the file is empty")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"{path}: not a video OpenCV can read (unknown format or a damaged file)")
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if w * h > max_pixels:
        cap.release()
        raise VideoError(f"{path}: frames of {w}x{h} are above the limit of {max_pixels:,} pixels")
    return cap


def _read_capture(cap: cv2.VideoCapture, src: FrameSource) -> Iterator[tuple[int, np.ndarray]]:
    index, failures = 0, 0
    while True:
        ok, bgr = cap.read()
        if ok and bgr is not None and bgr.ndim == 3:
            failures = 0
            yield index, np.ascontiguousarray(bgr[..., ::-1])
        else:
            # Past the announced end (or with no count to go by) a failed read is the end of the video.
            if src.frame_count is None or index >= src.frame_count:
                return
            src.skipped.append(index)
            failures += 1
            if failures >= MAX_FAILURES_IN_A_ROW:
                src.stopped = (f"stopped after {failures} undecodable frames in a row at frame {index} "
                               f"of {src.frame_count}")
                return
            # Read on without seeking: the decoder steps over a damaged frame by itself, and a seek
            # (CAP_PROP_POS_FRAMES) loses the stream's place in some containers.
        index += 1


def _checked(frames: Iterable, src: FrameSource) -> Iterator[tuple[int, np.ndarray]]:
    for index, frame in enumerate(frames):
        if frame is None:
            src.skipped.append(index)
            continue
        try:
            yield index, to_rgb_array(frame, src.max_pixels)
        except ImageError:
            src.skipped.append(index)


CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".webm": "VP80", ".avi": "MJPG"}
"""Codec by file suffix: what OpenCV's wheels encode without extra libraries. Browsers play VP8 WebM
but not MPEG-4 part 2 ('mp4v') mp4 (OpenCV's wheels have no H.264 encoder), so a web page wants .webm."""


class OverlayWriter:
    """Writes RGB frames to a video file, coded by its suffix (:data:`CODECS`). Opened on the first
    frame; later frames of another size are resized to it."""

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path = Path(path)
        self.fps = fps
        self.codec = CODECS.get(self.path.suffix.lower(), "")
        if not self.codec:
            raise VideoError(f"{self.path}: write a video as one of {', '.join(CODECS)}")
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.codec), self.fps, (w, h))
            if not self._writer.isOpened():
                raise VideoError(f"{self.path}: cannot write a {self.codec} video here")
            self._size = (w, h)
        if (w, h) != self._size:
            rgb = cv2.resize(rgb, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(np.ascontiguousarray(rgb[..., ::-1]))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> "OverlayWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
