"""Landmarks on video: faces detected now and then, followed from frame to frame, smoothed.

    fl = FaceLandmarker.from_pretrained("ibug68_fast")
    result = track_video("clip.mp4", fl, overlay="overlay.mp4")    # a file, or any iterable of frames
    result.write_json("landmarks.json"); result.write_csv("landmarks.csv")

    tracker = Tracker(fl)                                          # live: one frame at a time
    faces = tracker.update(rgb_frame)                              # -> list[TrackedFace]

How a frame is handled: every face already followed is cut out again from its points in the last
frame, framed as FaceLandmarker's refine stage frames its second crops (an axis-aligned crop and one
turned so that the eyes are level, averaged). The detector runs on the first frame, every
``detect_every`` frames, ``confirm_after`` frames after a new face appeared (a face the detector
finds only once is taken for a false alarm and dropped), and on the frame after a face was lost or
missed. Its boxes that match no followed face (IoU) start new faces, through FaceLandmarker.predict.
A followed face is lost when its box leaves the frame, shrinks below ``min_face`` px or changes size
too fast for a real face, or when the detector misses it ``max_missed + 1`` times in a row (the
misses after the first on the frames just after it): a face that vanishes without moving (a cut, an
occlusion) is dropped within ``detect_every + max_missed`` frames. A face found again where one was
lost a moment ago takes the lost one's id back. Each face's points go through a One Euro filter
(:mod:`facelm.one_euro`), started afresh whenever the face is (re-)acquired by the detector.
"""
from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .draw import draw_landmarks
from .face_box import face_box
from .image import to_rgb_array
from .one_euro import OneEuroFilter, OneEuroParams
from .video_io import FrameSource, OverlayWriter

DEFAULT_DETECT_EVERY = 30
MAX_SIZE_CHANGE = 1.5
"""A face box growing or shrinking by more than this factor from one frame to the next is not a face
followed: the crop slid off onto something else."""


@dataclass
class TrackedFace:
    """One face in one frame. Coordinates are 0-based image pixels."""
    id: int
    landmarks: np.ndarray
    """(K, 2) float32: smoothed when the tracker smooths."""
    box: np.ndarray
    """(4,) float32 x1, y1, x2, y2: the face box of ``landmarks`` (the tight 68-point box)."""
    raw_landmarks: np.ndarray
    """(K, 2) float32: the model's points before smoothing."""
    detected: bool = False
    """Whether the detector (re-)acquired the face in this frame (its filter started afresh)."""

    def to_dict(self, decimals: int = 2) -> dict:
        return {"id": self.id, "box": [round(float(v), decimals) for v in self.box],
                "landmarks": np.round(self.landmarks.astype(np.float64), decimals).tolist()}


@dataclass
class _Track:
    id: int
    raw: np.ndarray
    """(K, 2) the model's points in the last frame; the next frame's crops are framed on them."""
    box: np.ndarray
    filter: OneEuroFilter | None = None
    fresh: bool = True
    """Acquired in this frame: not output yet."""
    confirmed: bool = False
    """Found by the detector twice (on acquisition and at a later detection round)."""
    missed: int = 0
    """Detection rounds in a row that found no box on this face."""
    lost_at: int = 0

    def set_points(self, raw: np.ndarray, box: np.ndarray) -> None:
        self.raw, self.box = raw, box


class Tracker:
    """Follows faces through successive frames of one video or stream (one tracker per stream).

    ``landmarker``: a :class:`facelm.landmarker.FaceLandmarker`; its detector finds the faces (pass
    ``boxes`` to :meth:`update` to give them instead). ``smoothing``: One Euro settings, or None for
    the model's raw points. ``fps``: the frame rate assumed when :meth:`update` gets no timestamps."""

    def __init__(self, landmarker: object, detect_every: int = DEFAULT_DETECT_EVERY,
                 smoothing: OneEuroParams | None = OneEuroParams(), fps: float = 30.0,
                 match_iou: float = 0.3, max_missed: int = 1, confirm_after: int = 5, min_face: float = 12.0,
                 forget_after: int = 60):
        if int(detect_every) < 1:
            raise ValueError(f"detect_every must be at least 1 frame, got {detect_every!r}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        self.landmarker = landmarker
        self.scheme = landmarker.scheme
        self.detect_every = int(detect_every)
        self.smoothing = smoothing
        self.fps = float(fps)
        self.match_iou = match_iou
        self.max_missed = max_missed
        self.confirm_after = min(confirm_after, self.detect_every)
        self.min_face = min_face
        self.forget_after = forget_after
        self.reset()

    def reset(self) -> None:
        """Forget every face (a new video)."""
        self._tracks: list[_Track] = []
        self._lost: list[_Track] = []
        self._next_id = 0
        self._frame = 0
        self._since_detection = 0
        self._need_detection = True
        self._t: float | None = None
        self.processing_fps: float | None = None
        """Frames per second :meth:`update` kept up with (a running average of its own time)."""

    # -- one frame ---------------------------------------------------------------------------------
    def update(self, frame: object, timestamp: float | None = None, boxes: object | None = None) -> list[TrackedFace]:
        """The faces in the next frame (an RGB image: array, PIL image or path). ``timestamp`` in
        seconds (default: one ``1 / fps`` after the last); ``boxes`` (N, 4) replace the detector
        for this frame."""
        start = time.perf_counter()
        img = to_rgb_array(frame, self.landmarker.max_pixels)
        t = float(timestamp) if timestamp is not None else (0.0 if self._t is None else self._t + 1 / self.fps)
        self._t = t
        self._follow(img)
        given = None if boxes is None else np.asarray(boxes, np.float32).reshape(-1, 4)
        unconfirmed = any(not tr.confirmed for tr in self._tracks)
        if given is not None or self._need_detection or self._since_detection >= self.detect_every \
                or (unconfirmed and self._since_detection >= self.confirm_after):
            self._acquire(img, given)
        else:
            self._since_detection += 1
        self._frame += 1
        self._lost = [tr for tr in self._lost if self._frame - tr.lost_at <= self.forget_after]
        faces = [self._output(tr, t) for tr in self._tracks]
        took = time.perf_counter() - start
        rate = 1 / max(took, 1e-6)
        self.processing_fps = rate if self.processing_fps is None else 0.9 * self.processing_fps + 0.1 * rate
        return faces

    def _follow(self, img: np.ndarray) -> None:
        if not self._tracks:
            return
        pts, _ = self.landmarker.refine_points(img, np.stack([tr.raw for tr in self._tracks]))
        boxes = face_box(pts, self.scheme)
        h, w = img.shape[:2]
        kept = []
        for tr, p, b in zip(self._tracks, pts, boxes):
            if plausible_move(tr.box, b, w, h, self.min_face):
                tr.set_points(p, b)
                kept.append(tr)
            else:
                self._lose(tr)
        self._tracks = kept

    def _lose(self, tr: _Track) -> None:
        tr.lost_at = self._frame
        self._lost.append(tr)
        self._need_detection = True

    def _acquire(self, img: np.ndarray, given: np.ndarray | None) -> None:
        self._since_detection, self._need_detection = 1, False
        if given is not None:
            det = given
        elif self.landmarker.detector is not None:
            det = np.asarray(self.landmarker.detector.detect(img)[0], np.float32).reshape(-1, 4)
        else:
            raise ValueError("the landmarker has no face detector: pass boxes= to Tracker.update")
        from .detect import greedy_matches
        matches = greedy_matches(det, np.stack([tr.box for tr in self._tracks]) if self._tracks else det[:0],
                                 self.match_iou)
        seen = {m for _, m in matches}
        for i, tr in enumerate(list(self._tracks)):
            if i in seen:
                tr.missed, tr.confirmed = 0, True
                continue
            tr.missed += 1
            if tr.missed > self.max_missed or not tr.confirmed:
                self._tracks.remove(tr)
                self._lose(tr)
            else:
                self._need_detection = True  # look again on the next frame
        new = np.array(sorted(set(range(len(det))) - {d for d, _ in matches}), dtype=int)
        if len(new):
            # Boxes the caller gives are faces on their word; the detector's must be found again.
            self._start(self.landmarker.predict(img, boxes=det[new], refine=True).landmarks, given is not None)
        self._drop_duplicates()

    def _start(self, landmarks: np.ndarray, confirmed: bool) -> None:
        from .detect import greedy_matches
        boxes = face_box(landmarks, self.scheme)
        back = dict(greedy_matches(boxes, np.stack([tr.box for tr in self._lost]), self.match_iou)) \
            if self._lost else {}
        taken = []
        for i, (pts, box) in enumerate(zip(landmarks, boxes)):
            if i in back:
                tr = self._lost[back[i]]
                taken.append(tr)
                tr.missed = 0
            else:
                tr = _Track(self._next_id, pts, box, confirmed=confirmed)
                self._next_id += 1
            tr.fresh = True
            tr.filter = OneEuroFilter(self.smoothing) if self.smoothing is not None else None
            tr.set_points(pts, box)
            self._tracks.append(tr)
        self._lost = [tr for tr in self._lost if all(tr is not x for x in taken)]

    def _drop_duplicates(self) -> None:
        """Two faces followed onto the same face: keep the older (lower id)."""
        from .detect import box_iou
        if len(self._tracks) < 2:
            return
        self._tracks.sort(key=lambda tr: tr.id)
        iou = box_iou(np.stack([tr.box for tr in self._tracks]), np.stack([tr.box for tr in self._tracks]))
        keep = [i for i in range(len(self._tracks)) if not (iou[i, :i] > 0.5).any()]
        self._tracks = [self._tracks[i] for i in keep]

    def _output(self, tr: _Track, t: float) -> TrackedFace:
        fresh, tr.fresh = tr.fresh, False
        if tr.filter is None:
            pts = tr.raw
        else:
            side = float(max(tr.box[2] - tr.box[0], tr.box[3] - tr.box[1]))
            pts = tr.filter(tr.raw, t, scale=side)
        return TrackedFace(tr.id, pts.astype(np.float32), face_box(pts, self.scheme).astype(np.float32),
                           tr.raw.astype(np.float32), fresh)


def plausible_move(before: np.ndarray, after: np.ndarray, width: int, height: int, min_face: float) -> bool:
    """Whether a face box moving from ``before`` to ``after`` (x1, y1, x2, y2) in one frame is still
    a face in view: finite, at least ``min_face`` px, half of it inside the frame, and not grown or
    shrunk by more than :data:`MAX_SIZE_CHANGE`."""
    if not np.isfinite(after).all():
        return False
    bw, bh = float(after[2] - after[0]), float(after[3] - after[1])
    side = max(bw, bh)
    if side < min_face:
        return False
    iw = max(0.0, min(float(after[2]), width) - max(float(after[0]), 0.0))
    ih = max(0.0, min(float(after[3]), height) - max(float(after[1]), 0.0))
    if iw * ih < 0.5 * bw * bh:
        return False
    prev = float(max(before[2] - before[0], before[3] - before[1]))
    return 1 / MAX_SIZE_CHANGE <= side / max(prev, 1e-6) <= MAX_SIZE_CHANGE


# -- whole videos ------------------------------------------------------------------------------------
@dataclass
class FrameFaces:
    index: int
    """The frame's number in the source, counting frames that were skipped."""
    faces: list[TrackedFace]


@dataclass
class VideoResult:
    fps: float
    scheme: str
    width: int
    height: int
    frames: list[FrameFaces] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    """Indices of frames that could not be decoded (no entry in ``frames``)."""
    stopped: str | None = None
    """Why reading stopped before the video's announced end, if it did."""
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"fps": round(self.fps, 4), **self.meta, "scheme": self.scheme, "width": self.width,
                "height": self.height, "coordinates": "0-based pixels, x then y; box x1, y1, x2, y2",
                "skipped_frames": self.skipped, "stopped": self.stopped,
                "frames": [{"index": f.index, "faces": [face.to_dict() for face in f.faces]} for f in self.frames]}

    def write_json(self, path: str | os.PathLike) -> None:
        from .paths import atomic_write_text
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    def write_csv(self, path: str | os.PathLike) -> None:
        """One row per face per frame: frame, time (s), face id, box, then x0, y0, x1, y1, ..."""
        k = next((len(face.landmarks) for f in self.frames for face in f.faces), 0)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(["frame", "time", "face_id", "x1", "y1", "x2", "y2"]
                         + [f"{c}{i}" for i in range(k) for c in "xy"])
            for f in self.frames:
                for face in f.faces:
                    out.writerow([f.index, f"{f.index / self.fps:.4f}", face.id]
                                 + [f"{v:.2f}" for v in face.box] + [f"{v:.2f}" for v in face.landmarks.ravel()])


def track_video(source: str | os.PathLike | Iterable, landmarker: object, detect_every: int = DEFAULT_DETECT_EVERY,
                smoothing: OneEuroParams | None = OneEuroParams(), fps: float | None = None,
                overlay: str | os.PathLike | None = None, progress: bool = True,
                max_frames: int | None = None) -> VideoResult:
    """Landmarks of every face in every frame of a video file or an iterable of RGB frames (``fps``
    then gives their rate; default 30). ``overlay``: also write an mp4 with the faces drawn on (an
    undecodable frame repeats the last one drawn, so the overlay keeps the video's timing).
    ``max_frames``: read only the video's first ``max_frames`` frames (``stopped`` then says so)."""
    from tqdm import tqdm
    writer = OverlayWriter(overlay, fps or 0.0) if overlay is not None else None  # checks the suffix first
    src = FrameSource(source, fps)
    tracker = Tracker(landmarker, detect_every, smoothing, src.fps)
    frames: list[FrameFaces] = []
    size = (0, 0)
    if writer is not None:
        writer.fps = src.fps
    last_drawn: np.ndarray | None = None
    limited: str | None = None
    total = src.frame_count if max_frames is None or src.frame_count is None else min(src.frame_count, max_frames)
    try:
        bar = tqdm(src, total=total, unit="frame", desc="video", disable=not progress or None)
        for index, img in bar:
            if max_frames is not None and index >= max_frames:
                limited = f"stopped at the limit of {max_frames} frames" + (
                    f" (the video has {src.frame_count})" if src.frame_count else "")
                break
            faces = tracker.update(img, timestamp=index / src.fps)
            frames.append(FrameFaces(index, faces))
            size = (img.shape[1], img.shape[0])
            if writer is not None:
                drawn = draw_tracked(img, faces, tracker.scheme)
                while last_drawn is not None and writer.frames < index:
                    writer.write(last_drawn)
                writer.write(drawn)
                last_drawn = drawn
    finally:
        src.close()
        if writer is not None:
            writer.close()
    if not frames:
        from .video_io import VideoError
        why = f" ({src.stopped})" if src.stopped else (f" ({len(src.skipped)} undecodable)" if src.skipped else "")
        raise VideoError(f"{src.name}: no frame could be read{why}")
    meta = {"detect_every": tracker.detect_every,
            "smoothing": None if smoothing is None else {"filter": "one_euro", "min_cutoff": smoothing.min_cutoff,
                                                         "beta": smoothing.beta, "d_cutoff": smoothing.d_cutoff}}
    return VideoResult(src.fps, tracker.scheme.name, size[0], size[1], frames, list(src.skipped),
                       src.stopped or limited, meta)


def draw_tracked(frame: np.ndarray, faces: list[TrackedFace], scheme: object, fps: float | None = None) -> np.ndarray:
    """A new RGB frame with each face's points, box and id drawn (and the frame rate, if given)."""
    if faces:
        out = draw_landmarks(frame, np.stack([f.landmarks for f in faces]), scheme,
                             boxes=np.stack([f.box for f in faces]))
    else:
        out = np.array(frame, copy=True)
    scale = max(0.4, out.shape[0] / 800)
    for f in faces:
        org = (int(f.box[0]), max(12, int(f.box[1]) - 6))
        cv2.putText(out, f"#{f.id}", org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 0), max(1, round(scale * 2)),
                    cv2.LINE_AA)
    if fps is not None:
        cv2.putText(out, f"{fps:.0f} fps", (8, int(28 * scale / 0.6)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 0), max(1, round(scale * 2)), cv2.LINE_AA)
    return out


# -- what an app calls ---------------------------------------------------------------------------------
def track_video_file(video: str | os.PathLike, landmarker: object, out_dir: str | os.PathLike | None = None,
                     smooth: bool = True, detect_every: int = DEFAULT_DETECT_EVERY,
                     overlay_suffix: str = ".webm", max_frames: int | None = None,
                     progress: bool = False) -> tuple[Path, dict]:
    """A video upload: writes the overlay ``<name>_landmarks.webm`` (VP8, which browsers play; see
    :data:`facelm.video_io.CODECS`) and ``<name>_landmarks.json`` into ``out_dir`` (a new temporary
    folder by default) and returns the overlay's path and the JSON document. ``max_frames`` and
    ``progress`` (a tqdm bar) are :func:`track_video`'s."""
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="facelm_video_"))
    stem = Path(video).stem or "video"
    overlay = out / f"{stem}_landmarks{overlay_suffix}"
    result = track_video(video, landmarker, detect_every, OneEuroParams() if smooth else None,
                         overlay=overlay, progress=progress, max_frames=max_frames)
    result.write_json(out / f"{stem}_landmarks.json")
    return overlay, result.to_dict()


def webcam_step(frame: np.ndarray | None, tracker: Tracker | None, landmarker: object,
                smooth: bool = True) -> tuple[np.ndarray | None, Tracker]:
    """One frame of a live stream (e.g. a Gradio streaming webcam handler, with the tracker kept in
    the session's state): returns the frame with the faces and the frame rate drawn, and the tracker
    to keep for the next call. Timestamps are the wall clock, so the filter sees the real frame rate."""
    want = OneEuroParams() if smooth else None
    if tracker is None or tracker.landmarker is not landmarker or (tracker.smoothing is None) != (want is None):
        tracker = Tracker(landmarker, smoothing=want)
    if frame is None:
        return None, tracker
    img = to_rgb_array(frame, landmarker.max_pixels)
    faces = tracker.update(img, timestamp=time.monotonic())
    return draw_tracked(img, faces, tracker.scheme, tracker.processing_fps), tracker
