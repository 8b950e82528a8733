"""Steadiness and speed of facelm.video: ``python -m facelm.video_bench [--model ibug68_fast] [--photos 30]``.

Sequences (:mod:`facelm.video_sequences`), 640 x 480 at 30 fps, the face 150 px, built from
annotated photos of train.train's validation split (faces the bundled models never trained on):

* still scenes: 60 frames of one photo, each shifted by up to 0.5 px, with noise (sigma 2 grey
  levels) and re-encoded as JPEG (quality 75-95);
* pans: the photo moving left to right at 1, 2, 4 and 8 px per frame for 60 frames;
* ytf68: each validation identity's clips of three successive frames as stored (the tracker
  started from the first frame's ground-truth box, so the detector plays no part).

Figures, with and without the One Euro filter (one run: the raw points are the tracker's own, the
filter only reads them):

* jitter: the mean frame-to-frame movement of the points, in % of the inter-ocular distance (outer
  eye corners of the ground truth). The truth moves too (on still scenes by the sub-pixel shifts):
  printed are also the truth's own movement and the mean |movement - truth's movement| (jitter
  against the truth);
* lag on pans: how far the filtered points trail the raw ones along the motion, in frames (the
  mean over the frames after the first 15, over points, divided by the speed);
* NME against the truth (inter-ocular, %), to show what the filter costs in accuracy;
* frames per second on one thread (torch and OpenCV), one face: ``Tracker.update`` on a 300-frame
  still scene (detection included, every ``detect_every`` frames), and the whole file path
  (``track_video`` on an mp4 of it: decoding, tracking, smoothing, no overlay).

``--tune`` instead prints a grid of filter settings replayed offline on sequences of other photos
(300-W AFW's validation faces, not the HELEN ones reported): how the defaults were chosen.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .one_euro import OneEuroFilter, OneEuroParams
from .video_sequences import Sequence, pan_sequence, still_sequence

PAN_SPEEDS = (1.0, 2.0, 4.0, 8.0)
WARMUP = 15


@dataclass
class Track:
    """The annotated face's points through one sequence, raw and filtered; NaN where it was not followed."""
    raw: np.ndarray
    smooth: np.ndarray
    truth: np.ndarray
    fresh: np.ndarray
    """(T,) bool: frames where the filter (re)started."""

    @property
    def iod(self) -> np.ndarray:
        return np.linalg.norm(self.truth[:, 36] - self.truth[:, 45], axis=-1)


def movement(points: np.ndarray, iod: np.ndarray) -> np.ndarray:
    """(T, K, 2) -> (T - 1,) mean movement of the points from the previous frame, in % of ``iod``."""
    return 100 * np.linalg.norm(np.diff(points, axis=0), axis=-1).mean(axis=-1) / iod[1:]


def excess_movement(points: np.ndarray, truth: np.ndarray, iod: np.ndarray) -> np.ndarray:
    """(T - 1,) mean |movement of the points - movement of the truth| from the previous frame, % of ``iod``."""
    return movement(points - truth, iod)


def lag_frames(raw: np.ndarray, smooth: np.ndarray, velocity: np.ndarray) -> float:
    """How many frames ``smooth`` trails ``raw`` along a constant ``velocity`` (px per frame)."""
    v = np.asarray(velocity, np.float64)
    behind = ((raw - smooth) @ v).mean(axis=-1) / float(v @ v)
    return float(np.nanmean(behind[WARMUP:]))


def nme_pct(points: np.ndarray, truth: np.ndarray, iod: np.ndarray) -> float:
    return float(np.nanmean(100 * np.linalg.norm(points - truth, axis=-1).mean(axis=-1) / iod))


def follow(landmarker: object, seq: Sequence, params: OneEuroParams | None, first_box: bool = False,
           detect_every: int | None = None) -> Track:
    """Run a Tracker over ``seq`` and keep the face that overlaps the truth's box best in each frame.
    ``first_box``: start from the truth's box instead of the detector's."""
    from .detect import box_iou
    from .face_box import face_box
    from .video import DEFAULT_DETECT_EVERY, Tracker
    tracker = Tracker(landmarker, detect_every or DEFAULT_DETECT_EVERY, params, seq.fps)
    t, k = seq.truth.shape[:2]
    raw, smooth = np.full((t, k, 2), np.nan, np.float32), np.full((t, k, 2), np.nan, np.float32)
    fresh = np.zeros(t, bool)
    for i, frame in enumerate(seq.frames):
        boxes = face_box(seq.truth[i], "ibug68")[None] if first_box and i == 0 else None
        faces = tracker.update(frame, boxes=boxes)
        if not faces:
            continue
        iou = box_iou(np.stack([f.box for f in faces]), face_box(seq.truth[i], "ibug68")[None])[:, 0]
        if iou.max() > 0.3:
            f = faces[int(np.argmax(iou))]
            raw[i], smooth[i], fresh[i] = f.raw_landmarks, f.landmarks, f.detected
    return Track(raw, smooth, seq.truth, fresh)


def replay(track: Track, params: OneEuroParams, fps: float = 30.0) -> np.ndarray:
    """The filter as the Tracker runs it, on a track's raw points (for tuning without re-running the model)."""
    from .face_box import face_box
    filt = OneEuroFilter(params)
    out = np.full_like(track.raw, np.nan)
    for i, p in enumerate(track.raw):
        if not np.isfinite(p).all():
            filt.reset()
            continue
        if track.fresh[i]:
            filt.reset()
        b = face_box(p, "ibug68")
        out[i] = filt(p, i / fps, scale=float(max(b[2] - b[0], b[3] - b[1])))
    return out


def photos(folder: Path, count: int) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Up to ``count`` photos of one annotated face each (validation split), evenly spaced."""
    from .photo_evaluation import iter_annotated
    from .image import to_rgb_array
    found = [ph for ph in iter_annotated([folder], split="validation") if len(ph.landmarks) == 1]
    step = max(1, len(found) // max(count, 1))
    return [(to_rgb_array(ph.path), ph.landmarks[0], ph.path.name) for ph in found[::step][:count]]


def ytf_clips(folder: Path) -> list[tuple[list[np.ndarray], np.ndarray]]:
    """Validation identities' clips of ytf68: (frames, truth (3, 68, 2))."""
    from collections import defaultdict

    from .photo_evaluation import iter_annotated
    from .image import to_rgb_array
    clips: dict[str, list] = defaultdict(list)
    for ph in iter_annotated([folder], split="validation"):
        if len(ph.landmarks) == 1:
            clips[ph.path.stem[:-1]].append(ph)
    out = []
    for name in sorted(clips):
        shots = sorted(clips[name], key=lambda ph: ph.path.stem)
        if len(shots) >= 2:
            out.append(([to_rgb_array(ph.path) for ph in shots], np.stack([ph.landmarks[0] for ph in shots])))
    return out


def _fmt(values: list[float]) -> str:
    return f"{np.nanmean(values):6.3f}"


def report_photos(fl: object, items: list, params: OneEuroParams, progress: bool) -> None:
    from tqdm import tqdm
    still, pans = [], {s: [] for s in PAN_SPEEDS}
    for img, pts, _ in tqdm(items, desc="sequences", disable=not progress, leave=False):
        seq = still_sequence(img, pts)
        still.append(follow(fl, seq, params))
        for s in PAN_SPEEDS:
            pans[s].append(follow(fl, pan_sequence(img, pts, s), params))
    lost = sum(int(np.isnan(tr.raw[:, 0, 0]).sum()) for tr in still)
    raw_j = [np.nanmean(movement(tr.raw, tr.iod)) for tr in still]
    sm_j = [np.nanmean(movement(tr.smooth, tr.iod)) for tr in still]
    truth_j = [np.nanmean(movement(tr.truth, tr.iod)) for tr in still]
    raw_x = [np.nanmean(excess_movement(tr.raw, tr.truth, tr.iod)) for tr in still]
    sm_x = [np.nanmean(excess_movement(tr.smooth, tr.truth, tr.iod)) for tr in still]
    print(f"still scenes ({len(still)} photos x 60 frames; {lost} frames without the face):")
    ratio = np.nanmean(sm_j) / np.nanmean(raw_j)
    print(f"  jitter %IOD   raw {_fmt(raw_j)}   smoothed {_fmt(sm_j)}   ratio {ratio:.3f}"
          f"   (truth {_fmt(truth_j)})")
    print(f"  |movement - truth's| raw {_fmt(raw_x)}   smoothed {_fmt(sm_x)}")
    print(f"  NME %IOD      raw {_fmt([nme_pct(tr.raw, tr.truth, tr.iod) for tr in still])}   smoothed "
          f"{_fmt([nme_pct(tr.smooth, tr.truth, tr.iod) for tr in still])}")
    for s, tracks in pans.items():
        lags = [lag_frames(tr.raw, tr.smooth, np.array([s, 0.0])) for tr in tracks]
        print(f"pan {s:g} px/frame: lag {np.nanmean(lags):.3f} frames (worst photo {np.nanmax(lags):.3f}); "
              f"NME raw {_fmt([nme_pct(tr.raw, tr.truth, tr.iod) for tr in tracks])} smoothed "
              f"{_fmt([nme_pct(tr.smooth, tr.truth, tr.iod) for tr in tracks])}; jitter raw "
              f"{_fmt([np.nanmean(movement(tr.raw, tr.iod)) for tr in tracks])} truth "
              f"{_fmt([np.nanmean(movement(tr.truth, tr.iod)) for tr in tracks])}")


def report_ytf(fl: object, clips: list, params: OneEuroParams, progress: bool) -> None:
    from tqdm import tqdm
    raw_m, sm_m, truth_m, raw_x, sm_x = [], [], [], [], []
    lost = 0
    for frames, truth in tqdm(clips, desc="ytf68", disable=not progress, leave=False):
        tr = follow(fl, Sequence(frames, truth.astype(np.float32), np.zeros((len(frames), 2), np.float32)), params,
                    first_box=True)
        iod = tr.iod
        if np.isnan(tr.raw[1:, 0, 0]).any():
            lost += 1
            continue
        raw_m.append(np.nanmean(movement(tr.raw, iod)))
        sm_m.append(np.nanmean(movement(tr.smooth, iod)))
        truth_m.append(np.nanmean(movement(truth, iod)))
        raw_x.append(np.nanmean(excess_movement(tr.raw, truth, iod)))
        sm_x.append(np.nanmean(excess_movement(tr.smooth, truth, iod)))
    print(f"ytf68 validation identities ({len(clips)} clips of 3 successive frames, started from the truth's box; "
          f"{lost} where the face was lost after the first frame, left out):")
    print(f"  movement %IOD          raw {_fmt(raw_m)}   smoothed {_fmt(sm_m)}   truth {_fmt(truth_m)}")
    print(f"  |movement - truth's|   raw {_fmt(raw_x)}   smoothed {_fmt(sm_x)}   ratio "
          f"{np.nanmean(sm_x) / np.nanmean(raw_x):.3f}")


def report_fps(fl: object, params: OneEuroParams, item: tuple) -> None:
    import cv2
    import torch

    from .video import Tracker, track_video
    from .video_io import OverlayWriter
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    seq = still_sequence(item[0], item[1], frames=300)
    tracker = Tracker(fl, smoothing=params)
    tracker.update(seq.frames[0])  # warm-up (first call allocates)
    tracker.reset()
    took = []
    for f in seq.frames:
        start = time.perf_counter()
        tracker.update(f)
        took.append(time.perf_counter() - start)
    per_frame = float(np.mean(took))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "still.mp4"
        with OverlayWriter(path, seq.fps) as w:
            for f in seq.frames:
                w.write(f)
        start = time.perf_counter()
        track_video(path, fl, smoothing=params, progress=False)
        file_per_frame = (time.perf_counter() - start) / len(seq.frames)
    print(f"speed, one thread, one face, 640x480, detection every {tracker.detect_every} frames "
          f"({type(fl.detector).__name__}):")
    print(f"  Tracker.update        {1 / per_frame:6.1f} fps ({1000 * per_frame:.1f} ms/frame; median frame "
          f"{1000 * np.median(took):.1f} ms, slowest {1000 * np.max(took):.0f} ms: a frame with detection)")
    print(f"  track_video from mp4  {1 / file_per_frame:6.1f} fps ({1000 * file_per_frame:.1f} ms/frame)")


def tune(fl: object, items: list, progress: bool) -> None:
    """Grid of (min_cutoff, beta) at d_cutoff 1 Hz, replayed on raw tracks of still scenes and pans."""
    from tqdm import tqdm
    still, pans = [], {s: [] for s in PAN_SPEEDS}
    for img, pts, _ in tqdm(items, desc="sequences", disable=not progress, leave=False):
        still.append(follow(fl, still_sequence(img, pts, seed=1), None))
        for s in PAN_SPEEDS:
            pans[s].append(follow(fl, pan_sequence(img, pts, s, seed=1), None))
    raw_j = np.nanmean([np.nanmean(movement(tr.raw, tr.iod)) for tr in still])
    print(f"raw jitter on still scenes {raw_j:.3f} %IOD; columns: jitter ratio, lag in frames at "
          + ", ".join(f"{s:g}" for s in PAN_SPEEDS) + " px/frame")
    for mc, beta, dc in itertools.product((0.3, 0.5, 1.0, 1.5, 2.0), (0.0, 2.0, 5.0, 10.0, 20.0, 40.0), (1.0,)):
        p = OneEuroParams(mc, beta, dc)
        j = np.nanmean([np.nanmean(movement(replay(tr, p), tr.iod)) for tr in still])
        lags = [np.nanmean([lag_frames(tr.raw, replay(tr, p), np.array([s, 0.0])) for tr in pans[s]])
                for s in PAN_SPEEDS]
        print(f"min_cutoff {mc:4.1f} beta {beta:5.1f} d_cutoff {dc:3.1f}: jitter x{j / raw_j:.3f}  lag "
              + "  ".join(f"{v:.2f}" for v in lags))


def main(argv: list[str] | None = None) -> int:
    from .bench import SHARED_DATA
    p = argparse.ArgumentParser(prog="python -m facelm.video_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ibug68_fast", help="bundled model name, model folder or Hub id")
    p.add_argument("--photos", type=int, default=30, help="photos made into sequences")
    p.add_argument("--data", type=Path, default=SHARED_DATA / "300w" / "helen_trainset",
                   help="annotated photos for the sequences (default: 300-W HELEN-train)")
    p.add_argument("--ytf", type=Path, default=SHARED_DATA / "ytf68" / "keypoints.csv")
    p.add_argument("--min-cutoff", type=float, default=OneEuroParams.min_cutoff)
    p.add_argument("--beta", type=float, default=OneEuroParams.beta)
    p.add_argument("--d-cutoff", type=float, default=OneEuroParams.d_cutoff)
    p.add_argument("--tune", action="store_true", help="print the tuning grid on --tune-data instead")
    p.add_argument("--tune-data", type=Path, default=SHARED_DATA / "300w" / "afw")
    p.add_argument("--skip", nargs="*", default=[], choices=["photos", "ytf", "fps"], help="parts to leave out")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from .landmarker import FaceLandmarker
    fl = FaceLandmarker.from_pretrained(a.model)
    params = OneEuroParams(a.min_cutoff, a.beta, a.d_cutoff)
    if a.tune:
        tune(fl, photos(a.tune_data, a.photos), not a.quiet)
        return 0
    items = photos(a.data, a.photos)
    print(f"model {a.model}; filter {params}; photos from {a.data} (validation split)")
    if "photos" not in a.skip:
        report_photos(fl, items, params, not a.quiet)
    if "ytf" not in a.skip:
        report_ytf(fl, ytf_clips(a.ytf), params, not a.quiet)
    if "fps" not in a.skip:
        report_fps(fl, params, items[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
