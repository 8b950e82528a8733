"""Fit each detector's box calibration on annotated photos and measure its detection rate and speed.

    python -m facelm.detect calibrate --data /work/shared/data/300w [--detector haar dlib] [--every 1]
    python -m facelm.detect evaluate --wider DIR --data DIR (see facelm.detect.benchmark)

Protocol: the target box of a face is the tight box of its ground-truth landmarks. For fitting, a
raw detection matches a face when each box contains the other's centre (raw boxes are framed
differently, so IoU alone would miss good pairs); the best-IoU such detection is used. A face counts
as *detected* when, after calibration, a detection overlaps its landmark box with IoU > 0.5 (one
detection per face, greedily by IoU); *centre-detected* when a detection contains the face centre
and its own centre lies in the face's box. Photos can hold unannotated faces (300-W's AFW crops do),
so detections without a face are counted but not called false alarms.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..photo_evaluation import SPLITS, AnnotatedPhoto, in_split, iter_annotated
from ..image import to_rgb_array
from .base import BoxCalibration, CalibratedDetector, CombinedDetector, RawDetections, box_iou, greedy_matches

@dataclass
class DetectorRun:
    """Raw detections of one detector on a list of photos."""
    photos: list[AnnotatedPhoto]
    raw: list[RawDetections]
    seconds: list[float]

    def where(self, keep: Callable[[AnnotatedPhoto], bool]) -> "DetectorRun":
        idx = [i for i, ph in enumerate(self.photos) if keep(ph)]
        return DetectorRun([self.photos[i] for i in idx], [self.raw[i] for i in idx], [self.seconds[i] for i in idx])

@dataclass
class DetectionStats:
    photos: int
    faces: int
    detected_iou: int
    detected_centre: int
    detections: int
    ms_per_photo: float

    @property
    def rate_iou(self) -> float:
        return self.detected_iou / max(self.faces, 1)

    @property
    def rate_centre(self) -> float:
        return self.detected_centre / max(self.faces, 1)


def run_detector(detector: CalibratedDetector, photos: list[AnnotatedPhoto], progress: bool = True) -> DetectorRun:
    from tqdm import tqdm
    raw, seconds = [], []
    for ph in tqdm(photos, desc=detector.name, disable=not progress, leave=False):
        img = to_rgb_array(ph.path)  # decoding is not the detector's time
        t = time.perf_counter()
        raw.append(detector.detect_raw(img))
        seconds.append(time.perf_counter() - t)
    return DetectorRun(photos, raw, seconds)


def _contains(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 4) boxes x (M, 2) points -> (N, M) whether box n contains point m."""
    b, p = boxes[:, None], points[None]
    return (p[..., 0] >= b[..., 0]) & (p[..., 0] <= b[..., 2]) & (p[..., 1] >= b[..., 1]) & (p[..., 1] <= b[..., 3])


def _centres(boxes: np.ndarray) -> np.ndarray:
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)


def centre_matches(det: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, M): detection n and face m each contain the other's centre."""
    return _contains(det, _centres(gt)) & _contains(gt, _centres(det)).T


def matched_pairs(run: DetectorRun) -> tuple[RawDetections, np.ndarray, list[np.ndarray]]:
    """(raw detections, landmark boxes, ground-truth landmarks) of the faces matched for fitting (see
    the module docstring)."""
    matched, targets, landmarks = [], [], []
    for ph, raw in zip(run.photos, run.raw):
        if len(raw) == 0:
            continue
        gt = ph.boxes
        iou = np.where(centre_matches(raw.boxes, gt), box_iou(raw.boxes, gt), -1.0)
        for m in range(len(gt)):
            n = int(np.argmax(iou[:, m]))
            if iou[n, m] >= 0:
                matched.append(raw.take(np.array([n])))
                targets.append(gt[m])
                landmarks.append(ph.landmarks[m])
    if not matched:
        return RawDetections.of(np.zeros((0, 4)), np.zeros(0)), np.zeros((0, 4), np.float32), []
    return RawDetections.concat(matched), np.asarray(targets, np.float32), landmarks


def fit_calibration(run: DetectorRun) -> BoxCalibration:
    raw, target, _ = matched_pairs(run)
    return BoxCalibration.fit(raw.boxes, target, raw.mirrored)


def fit_frame_calibration(run: DetectorRun) -> BoxCalibration | None:
    """For detectors with five points: the map from the tight box of the five points to the
    ground-truth landmark box, both in the frame where the detector's eyes are level (see
    :func:`facelm.detect.yunet.five_point_frames`). None for detectors without points."""
    from ..annotation import landmark_box
    raw, _, landmarks = matched_pairs(run)
    if raw.points is None or not len(raw):
        return None
    five = raw.points.astype(np.float64)
    source, target = [], []
    for p, g in zip(five, landmarks):
        d = p[1] - p[0]
        roll = np.arctan2(d[1], d[0])
        c, s_ = np.cos(roll), np.sin(roll)
        rot = np.array([[c, s_], [-s_, c]])
        centre = p.mean(axis=0)
        source.append(landmark_box((p - centre) @ rot.T))
        target.append(landmark_box((np.asarray(g, np.float64) - centre) @ rot.T))
    return BoxCalibration.fit(np.asarray(source), np.asarray(target))


def combine_runs(runs: list[DetectorRun], calibrations: list[BoxCalibration]) -> DetectorRun:
    """What a CombinedDetector of these detectors finds, from their stored runs (no re-detection);
    its boxes are already calibrated."""
    raw = []
    for per_photo in zip(*(r.raw for r in runs)):
        boxes, scores = CombinedDetector.merge([(c.apply(d.boxes, d.mirrored), d.scores)
                                                for d, c in zip(per_photo, calibrations)])
        raw.append(RawDetections.of(boxes, scores))
    return DetectorRun(runs[0].photos, raw, [sum(s) for s in zip(*(r.seconds for r in runs))])


def detection_stats(run: DetectorRun, calibration: BoxCalibration, subset: str | None = None) -> DetectionStats:
    faces = hit_iou = hit_centre = dets = photos = 0
    seconds = []
    for ph, raw, sec in zip(run.photos, run.raw, run.seconds):
        if subset is not None and ph.subset != subset:
            continue
        cal = calibration.apply(raw.boxes, raw.mirrored)
        photos += 1
        faces += len(ph.boxes)
        dets += len(cal)
        seconds.append(sec)
        hit_iou += len(greedy_matches(cal, ph.boxes))
        if len(cal):
            hit_centre += int(centre_matches(cal, ph.boxes).any(axis=0).sum())
    return DetectionStats(photos, faces, hit_iou, hit_centre, dets, 1000 * float(np.mean(seconds)) if seconds else 0.0)


def report(name: str, run: DetectorRun, calibration: BoxCalibration) -> str:
    subsets = list(dict.fromkeys(ph.subset for ph in run.photos))
    rows = [(s, detection_stats(run, calibration, s)) for s in subsets]
    if len(subsets) > 1:
        rows.append(("all", detection_stats(run, calibration)))
    w = max(len(s) for s, _ in rows + [("subset", None)])
    lines = [f"{name}: {calibration}",
             f"  {'subset':<{w}} {'photos':>6} {'faces':>6} {'IoU>0.5':>8} {'centre':>8} {'dets/photo':>10} "
             f"{'ms/photo':>9}"]
    for s, st in rows:
        lines.append(f"  {s:<{w}} {st.photos:>6} {st.faces:>6} {100 * st.rate_iou:>7.1f}% "
                     f"{100 * st.rate_centre:>7.1f}% "
                     f"{st.detections / max(st.photos, 1):>10.2f} {st.ms_per_photo:>9.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from ..errors import FacelmError
    from . import available_detectors, benchmark, get_detector
    p = argparse.ArgumentParser(prog="python -m facelm.detect", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("calibrate", help="refit the box calibrations and print them with detection rates")
    c.add_argument("--data", nargs="+", required=True, help="annotated photos (e.g. the 300w folder)")
    c.add_argument("--detector", nargs="+", default=None, help=f"default: all of {available_detectors()}")
    c.add_argument("--every", type=int, default=1, help="use every n-th photo (quicker)")
    c.add_argument("--fit-split", choices=SPLITS, default="train",
                   help="photos the calibrations are fitted on (default: train.train's training split, so "
                        "that figures on the validation split stay held out)")
    e = sub.add_parser("evaluate", help="recall by face size, precision and speed on WIDER FACE and 300-W photos",
                       description=benchmark.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchmark.add_arguments(e)
    a = p.parse_args(argv)
    if a.command == "evaluate":
        try:
            return benchmark.run(a)
        except FacelmError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    try:
        photos = list(iter_annotated(a.data, a.every))
        detectors = {n: get_detector(n) for n in (a.detector or available_detectors())}
    except FacelmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(photos)} photos, {sum(len(ph.boxes) for ph in photos)} annotated faces")
    fitted: dict[str, tuple[DetectorRun, BoxCalibration]] = {}

    def calibrate(det: CalibratedDetector) -> tuple[DetectorRun, BoxCalibration]:
        if det.name not in fitted:  # a combined detector's parts may also be asked for on their own
            run = run_detector(det, photos)
            fit_on = run.where(lambda ph: in_split(ph.path, a.fit_split))
            cal = fit_calibration(fit_on)
            fitted[det.name] = run, cal
            frame = fit_frame_calibration(fit_on)
            if frame is not None:
                print(f"{det.name} five-point frame calibration: {frame!r}")
            print(report(det.name, run, cal))
            print(report(f"{det.name}, validation split", run.where(lambda ph: in_split(ph.path, "validation")), cal))
            print(f"  {det!r}\n  fitted: {cal!r} on {len(matched_pairs(fit_on)[1])} matched faces "
                  f"({a.fit_split} split)\n")
        return fitted[det.name]

    for name, det in detectors.items():
        if isinstance(det, CombinedDetector):
            parts = [calibrate(d) for d in det.detectors]
            run = combine_runs([r for r, _ in parts], [c for _, c in parts])
            print(report(f"{name} (= {' + '.join(d.name for d in det.detectors)}, with the fits above)", run,
                         BoxCalibration()) + "\n")
        else:
            calibrate(det)
    return 0
