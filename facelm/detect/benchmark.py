"""Detection benchmark: ``python -m facelm.detect evaluate --wider DIR [--data DIR] [--plot PR.png]``.

On WIDER FACE (its own layout: ``images/`` and ``wider_face_train_bbx_gt.txt``) every available
detector gets every photo; reported: recall of the faces of at least 40 and 80 px and precision at
the detector's default threshold (``min_score``), plus a threshold chosen on the even-numbered photos
(the highest recall at precision >= 0.95) and its figures on the odd-numbered ones. On annotated
300-W photos (``--data``): the share of annotated faces found. Speed: ms per photo on one thread,
the fastest of three passes over the first ``--timing-photos`` photos (as :mod:`facelm.bench` times),
so that other processes on the machine weigh less; detectors shrink photos to at most 640 px.

Matching rule on WIDER. WIDER's boxes frame the whole head (forehead to chin), a detector's boxes
the 68-landmark box (brows to chin, :mod:`facelm.detect.base`), so IoU would punish every detector
by its framing. A detection *matches* a face when each box contains the other's centre and their
sizes (square roots of the areas) are within a factor of 2; one detection per face, detections taken
best score first, each taking the matching face it overlaps most. The rule is the same for every
detector and needs no fitting on WIDER. Face size is the short side of the WIDER box; faces marked
invalid are left out of recall. A detection that matches any annotated face (of any size, or
invalid) is a true one; precision is the share of detections that match a face.

On 300-W photos (landmark annotations; calibrate.py's protocol): a face is found when a detection
at the default threshold has IoU > 0.5 with its landmark box. Photos can hold unannotated faces, so
no precision is given there.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FacelmError
from .base import FaceDetector, box_iou

WIDER_BOXES = "wider_face_train_bbx_gt.txt"
SIZES = (40, 80)
TARGET_PRECISION = 0.95


@dataclass
class WiderPhoto:
    path: Path
    boxes: np.ndarray
    """(M, 4) float32 x1, y1, x2, y2 head boxes."""
    invalid: np.ndarray
    """(M,) bool: WIDER's "invalid" flag."""

    @property
    def sizes(self) -> np.ndarray:
        return np.minimum(self.boxes[:, 2] - self.boxes[:, 0], self.boxes[:, 3] - self.boxes[:, 1])


def read_wider(folder: str | Path, box_file: str = WIDER_BOXES) -> list[WiderPhoto]:
    """WIDER FACE's box file (path line, count line, then ``x y w h blur expression illumination
    invalid occlusion pose`` per face; a photo without faces has a count of 0 and one line of zeros)."""
    folder = Path(folder)
    txt = folder / box_file
    if not txt.is_file():
        raise FacelmError(f"{folder}: no {box_file} (WIDER FACE's layout: images/ and {box_file})")
    lines = txt.read_text().split("\n")
    photos, i = [], 0
    try:
        while i < len(lines) and lines[i].strip():
            name, count = lines[i].strip(), int(lines[i + 1])
            rows = np.array([[float(v) for v in lines[i + 2 + k].split()[:10]] for k in range(max(count, 1))],
                            np.float64).reshape(-1, 10)[:count]
            i += 2 + max(count, 1)
            boxes = np.concatenate([rows[:, :2], rows[:, :2] + rows[:, 2:4]], axis=1).astype(np.float32)
            photos.append(WiderPhoto(folder / "images" / name, boxes, rows[:, 7] > 0))
    except (IndexError, ValueError) as e:
        raise FacelmError(f"{txt}: malformed near line {i + 1} ({e})") from None
    missing = [p.path for p in photos if not p.path.is_file()]
    if missing:
        raise FacelmError(f"{txt}: {len(missing)} photos are missing, e.g. {missing[0]}")
    return photos


def match_faces(boxes: np.ndarray, scores: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N,) index of the face each detection matches, or -1 (the module docstring's rule)."""
    boxes, faces = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(faces, np.float64).reshape(-1, 4)
    out = np.full(len(boxes), -1, np.int64)
    if not len(boxes) or not len(faces):
        return out
    from .calibrate import centre_matches
    area = lambda b: np.sqrt(np.clip((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-9, None))  # noqa: E731
    ratio = area(boxes)[:, None] / area(faces)[None]
    ok = centre_matches(boxes, faces) & (ratio >= 0.5) & (ratio <= 2.0)
    iou = np.where(ok, box_iou(boxes, faces), -1.0)
    taken = np.zeros(len(faces), bool)
    for n in np.argsort(-np.asarray(scores), kind="stable"):
        cand = np.where(taken, -1.0, iou[n])
        m = int(np.argmax(cand))
        if cand[m] >= 0:
            out[n], taken[m] = m, True
    return out


@dataclass
class WiderRun:
    """One detector on the WIDER photos: per detection its score, photo and matched face's size
    (-1: no face; inf: an invalid face), per valid face its size, and the seconds per photo."""
    det_scores: np.ndarray
    det_photo: np.ndarray
    det_face_size: np.ndarray
    face_size: np.ndarray
    face_photo: np.ndarray
    face_best_score: np.ndarray
    """(F,) score of the detection that matched the valid face, -inf when none did."""
    seconds: np.ndarray

    def where_photos(self, keep: np.ndarray) -> WiderRun:
        d, f = keep[self.det_photo], keep[self.face_photo]
        return WiderRun(self.det_scores[d], self.det_photo[d], self.det_face_size[d], self.face_size[f],
                        self.face_photo[f], self.face_best_score[f], self.seconds[keep])

    def at(self, threshold: float) -> dict[str, float]:
        kept = self.det_scores >= threshold
        out = {"threshold": float(threshold), "detections": int(kept.sum()),
               "precision": float((self.det_face_size[kept] != -1).mean()) if kept.any() else 1.0}
        for s in SIZES:
            faces = self.face_size >= s
            out[f"recall_{s}px"] = float((self.face_best_score[faces] >= threshold).mean()) if faces.any() else 0.0
            out[f"faces_{s}px"] = int(faces.sum())
        out["ms_per_photo"] = 1000 * float(self.seconds.mean()) if len(self.seconds) else 0.0
        return out

    def curve(self, size: int = SIZES[0]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(thresholds, precision, recall of faces >= ``size`` px), over every score seen."""
        ts = np.unique(self.det_scores)[::-1]
        rows = [self.at(t) for t in ts]
        return ts, np.array([r["precision"] for r in rows]), np.array([r[f"recall_{size}px"] for r in rows])

    def threshold_for(self, precision: float = TARGET_PRECISION, size: int = SIZES[0]) -> float | None:
        """The lowest threshold (highest recall) whose precision is at least ``precision``."""
        ts, p, _ = self.curve(size)
        ok = ts[p >= precision]
        return float(ok.min()) if len(ok) else None


def run_wider(detector: FaceDetector, photos: list[WiderPhoto], progress: bool = True) -> WiderRun:
    from tqdm import tqdm

    from ..image import to_rgb_array
    det_scores, det_photo, det_size, f_size, f_photo, f_best, seconds = [], [], [], [], [], [], []
    for i, ph in enumerate(tqdm(photos, desc=detector.name, disable=not progress, leave=False)):
        img = to_rgb_array(ph.path)  # decoding is not the detector's time
        t = time.perf_counter()
        boxes, scores = detector.detect(img)
        seconds.append(time.perf_counter() - t)
        match = match_faces(boxes, scores, ph.boxes)
        sizes = np.where(ph.invalid, np.inf, ph.sizes)
        det_scores.append(np.asarray(scores, np.float64))
        det_photo.append(np.full(len(scores), i))
        det_size.append(np.where(match >= 0, sizes[np.clip(match, 0, None)] if len(sizes) else -1, -1))
        best = np.full(len(ph.boxes), -np.inf)
        for n, m in enumerate(match):
            if m >= 0:
                best[m] = max(best[m], float(scores[n]))
        valid = ~ph.invalid
        f_size.append(ph.sizes[valid])
        f_photo.append(np.full(int(valid.sum()), i))
        f_best.append(best[valid])
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
    return WiderRun(cat(det_scores, np.float64), cat(det_photo, np.int64), cat(det_size, np.float64),
                    cat(f_size, np.float64), cat(f_photo, np.int64), cat(f_best, np.float64),
                    np.asarray(seconds, np.float64))


@dataclass
class DetectorReport:
    name: str
    default_threshold: float | None
    wider_default: dict = field(default_factory=dict)
    """At the detector's default threshold, all photos."""
    chosen_threshold: float | None = None
    """Chosen on the even-numbered photos for precision >= 0.95 (faces >= 40 px)."""
    wider_chosen_even: dict = field(default_factory=dict)
    wider_chosen_odd: dict = field(default_factory=dict)
    w300: dict = field(default_factory=dict)
    ms_per_photo: float | None = None
    """One thread, fastest of three passes (see the module docstring)."""
    timed_on: str = ""


def time_detector(detector: FaceDetector, photos: list[WiderPhoto], data: list[str] | None,
                  n: int) -> tuple[float, str]:
    """ms per photo of ``detector.detect`` on the first ``n`` WIDER photos (else 300-W photos), decoded
    beforehand; one thread is the caller's to set."""
    from ..bench import time_per_item
    from ..image import to_rgb_array
    if photos:
        paths, where = [p.path for p in photos[:n]], "WIDER"
    else:
        from ..photo_evaluation import iter_annotated
        paths, where = [ph.path for ph, _ in zip(iter_annotated(data or []), range(n))], "300-W"
    images = [to_rgb_array(p) for p in paths]
    ms, _ = time_per_item(detector.detect, images, warmup=2)
    return ms, f"{len(images)} {where} photos"


def report_wider(name: str, detector: FaceDetector, run: WiderRun) -> DetectorReport:
    default = detector.min_score if detector.min_score is not None else float(run.det_scores.min(initial=0))
    rep = DetectorReport(name, detector.min_score, run.at(default))
    even = np.arange(len(run.seconds)) % 2 == 0
    chosen = run.where_photos(even).threshold_for()
    rep.chosen_threshold = chosen
    if chosen is not None:
        rep.wider_chosen_even = run.where_photos(even).at(chosen)
        rep.wider_chosen_odd = run.where_photos(~even).at(chosen)
    return rep


def report_300w(detector: FaceDetector, data: list[str], progress: bool = True) -> dict:
    """Share of 300-W's annotated faces found at the detector's default threshold (module docstring)."""
    from tqdm import tqdm

    from ..photo_evaluation import iter_annotated
    from ..image import to_rgb_array
    from .base import greedy_matches
    photos = list(iter_annotated(data))
    found = total = dets = 0
    seconds = []
    for ph in tqdm(photos, desc=f"{detector.name} 300-W", disable=not progress, leave=False):
        img = to_rgb_array(ph.path)
        t = time.perf_counter()
        boxes, scores = detector.detect(img)
        seconds.append(time.perf_counter() - t)
        if detector.min_score is not None:
            boxes = boxes[scores >= detector.min_score]
        found += len(greedy_matches(boxes, ph.boxes))
        total += len(ph.boxes)
        dets += len(boxes)
    return {"photos": len(photos), "faces": total, "found": found, "found_pct": 100 * found / max(total, 1),
            "detections_per_photo": dets / max(len(photos), 1), "ms_per_photo": 1000 * float(np.mean(seconds))}


def plot_curves(runs: dict[str, WiderRun], reports: dict[str, DetectorReport], path: str | Path) -> Path:
    """Precision against recall of faces >= 40 px, one curve per detector, its default threshold marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
    for name, run in runs.items():
        _, p, r = run.curve()
        line, = ax.plot(r, p, label=name)
        d = reports[name].wider_default
        ax.plot([d["recall_40px"]], [d["precision"]], "o", color=line.get_color())
    ax.axhline(TARGET_PRECISION, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="recall, WIDER faces >= 40 px", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01),
           title="Face detectors on the WIDER FACE subset (dot: default threshold)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _fmt(d: dict) -> str:
    if not d:
        return "-"
    return (f"recall >=40px {100 * d['recall_40px']:5.1f}%  >=80px {100 * d['recall_80px']:5.1f}%  "
            f"precision {100 * d['precision']:5.1f}%  ({d['detections']} detections)")


def format_reports(reports: list[DetectorReport], n_photos: int) -> str:
    lines = []
    for r in reports:
        lines.append(f"{r.name}: default threshold {r.default_threshold}")
        if r.wider_default:
            d = r.wider_default
            lines.append(f"  WIDER, all {n_photos} photos, default threshold: {_fmt(d)}; "
                         f"{d['ms_per_photo']:.1f} ms/photo in that pass")
            faces = f"{d['faces_40px']} faces >= 40 px, {d['faces_80px']} >= 80 px"
            lines.append(f"    ({faces})")
            ct = "none reaches it" if r.chosen_threshold is None else f"{r.chosen_threshold:.4g}"
            lines.append(f"  threshold for precision >= {TARGET_PRECISION} on the even-numbered photos: {ct}")
            if r.chosen_threshold is not None:
                lines.append(f"    even photos (chosen on): {_fmt(r.wider_chosen_even)}")
                lines.append(f"    odd photos (held out):   {_fmt(r.wider_chosen_odd)}")
        if r.ms_per_photo is not None:
            lines.append(f"  speed: {r.ms_per_photo:.1f} ms/photo, one thread, fastest of 3 passes over {r.timed_on}")
        if r.w300:
            w = r.w300
            lines.append(f"  300-W: {w['found']} of {w['faces']} annotated faces found ({w['found_pct']:.1f}%) in "
                         f"{w['photos']} photos; {w['detections_per_photo']:.2f} detections/photo; "
                         f"{w['ms_per_photo']:.1f} ms/photo")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wider", default=None, help=f"WIDER FACE folder (images/ and {WIDER_BOXES})")
    p.add_argument("--data", nargs="+", default=None, help="annotated 300-W photos (e.g. the 300w folder)")
    p.add_argument("--detector", nargs="+", default=None, help="default: every available detector")
    p.add_argument("--every", type=int, default=1, help="use every n-th WIDER photo (quicker)")
    p.add_argument("--plot", default=None, metavar="PNG", help="precision/recall plot (needs --wider)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--timing-photos", type=int, default=100, metavar="N",
                   help="photos timed (fastest of 3 passes, one thread); 0: no timing")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def run(a: argparse.Namespace) -> int:
    import cv2

    from . import available_detectors, get_detector
    if not a.wider and not a.data:
        raise FacelmError("give --wider DIR and/or --data DIR")
    photos = read_wider(a.wider)[::max(a.every, 1)] if a.wider else []
    detectors = {n: get_detector(n) for n in (a.detector or available_detectors())}
    cv2.setNumThreads(1)  # figures are per photo on one thread
    runs: dict[str, WiderRun] = {}
    reports: dict[str, DetectorReport] = {}
    try:
        for name, det in detectors.items():
            rep = DetectorReport(name, det.min_score)
            if photos:
                runs[name] = run_wider(det, photos, progress=not a.quiet)
                rep = report_wider(name, det, runs[name])
            if a.data:
                rep.w300 = report_300w(det, a.data, progress=not a.quiet)
            if a.timing_photos > 0:
                rep.ms_per_photo, rep.timed_on = time_detector(det, photos, a.data, a.timing_photos)
            reports[name] = rep
            print(format_reports([rep], len(photos)), flush=True)
    finally:
        cv2.setNumThreads(-1)
    if a.plot and runs:
        print("plot:", plot_curves(runs, reports, a.plot))
    if a.json:
        from ..paths import atomic_write_text
        atomic_write_text(a.json, json.dumps({"wider_photos": len(photos), "every": a.every,
                                              "detectors": [asdict(r) for r in reports.values()]}, indent=1) + "\n")
    return 0
