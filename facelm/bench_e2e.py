"""End-to-end benchmark: photo in, every face's landmarks out, default settings, beside dlib's HOG face
detector + 68-point shape predictor on the same photos in the same run::

    python -m facelm.bench_e2e [--data DIR] [--split validation] [--detector NAME] [--model M]

facelm runs as a user gets it: ``FaceLandmarker.from_pretrained(model, detector=...)`` and
``predict(photo)`` with ``boxes=None`` (its default backend, refine setting and the ``--detector``,
by default the library's default detector). dlib runs as its own example does: the frontal face
detector with ``--dlib-upsample`` doublings of the photo (1 by default, as dlib's
``face_landmark_detection.py``), then ``shape_predictor_68_face_landmarks`` on every box.

Photos: the annotated 300-W photos of ``--split`` (by default train.train's validation split, which the
bundled models never trained on), decoded beforehand (decoding is not timed). Each method's answer
is matched to the annotated faces one to one: a face counts as found when the tight box of some
predicted landmarks overlaps its landmark box with IoU > 0.5 (greedy, best overlap first); other
predictions are not counted (the photos can show unannotated faces). NME is inter-ocular (outer eye
corners), in percent, averaged over the faces each method found, and over the faces both found.

Timing: one thread for each method (onnxruntime, OpenCV and torch are set to one thread; dlib is
single-threaded); the two methods alternate photo by photo, so a busy machine slows both alike;
each photo's time is the fastest of ``--passes`` passes; ms per photo is the mean over photos.
Note that dlib's predictor was trained on all of 300-W, these photos' faces too, which flatters it.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .bench import DEFAULT_DATA, _dlib_predictor_path, machine_info, machine_line, time_alternating

Method = Callable[[np.ndarray], np.ndarray]
"""(H, W, 3) uint8 RGB photo -> (N, 68, 2) landmarks of every face found."""


@dataclass
class E2ERow:
    name: str
    ms_per_photo: float
    faces: int
    """Annotated faces in the photos."""
    found: int
    """Annotated faces matched by a prediction."""
    predicted: int
    """Faces the method reported, matched or not."""
    nme_pct: float
    """Mean NME over the faces this method found."""
    nme_pct_both_found: float | None = None
    """Mean NME over the faces every method found (the paired comparison)."""


@dataclass
class E2EResult:
    machine: dict
    protocol: dict
    rows: list[E2ERow] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)


def match_to_annotated(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(M, K, 2) landmarks of the predicted face matched to each of the M annotated faces, NaN where
    none was (IoU of the landmark boxes above 0.5, one to one, best overlap first)."""
    from .annotation import landmark_box
    from .detect import greedy_matches
    out = np.full(gt.shape, np.nan, np.float32)
    if len(pred):
        for p, g in greedy_matches(landmark_box(pred), landmark_box(gt)):
            out[g] = pred[p]
    return out


def facelm_method(model: str | None, detector: str) -> tuple[Method, str]:
    """The default pipeline on one thread, and a description of it."""
    import cv2

    from .landmarker import FaceLandmarker
    cv2.setNumThreads(1)
    fl = FaceLandmarker.from_pretrained(model, detector=detector, num_threads=1)
    det = getattr(fl.detector, "name", type(fl.detector).__name__)
    onnx = f" ({fl._onnx.path.name})" if fl._onnx is not None and fl._onnx.path is not None else ""
    return (lambda img: fl.predict(img).landmarks), (f"facelm {model or 'default model'}, {fl.backend}{onnx}, "
                                                      f"detector {det}, refine {fl.refine}")


def dlib_method(predictor_path: Path, upsample: int) -> tuple[Method, str]:
    import dlib
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(predictor_path))

    def run(img: np.ndarray) -> np.ndarray:
        shapes = [predictor(img, r) for r in detector(img, upsample)]
        return np.array([[[p.x, p.y] for p in s.parts()] for s in shapes], np.float32).reshape(-1, 68, 2)
    return run, f"dlib HOG detector (upsample {upsample}) + shape_predictor_68"


def run_e2e(data: Path, split: str, model: str | None, detector: str, upsample: int, passes: int,
            every: int = 1, skip_dlib: bool = False) -> E2EResult:
    import torch

    from .photo_evaluation import iter_annotated
    from .image import to_rgb_array
    from .metrics import nme
    torch.set_num_threads(1)
    photos = list(iter_annotated([data], every=every, split=split))
    if not photos:
        raise SystemExit(f"no annotated photos under {data} (split {split})")
    if photos[0].scheme != "ibug68":
        raise SystemExit(f"{data}: {photos[0].scheme} annotations; the comparison with dlib needs 68-point (ibug68) ones")
    images = [to_rgb_array(ph.path) for ph in photos]
    methods = [facelm_method(model, detector)]
    predictor = None if skip_dlib else _dlib_predictor_path()
    if predictor is not None:
        methods.append(dlib_method(predictor, upsample))
    ms, answers = time_alternating([m for m, _ in methods], images, passes, warmup=1)
    gt = np.concatenate([ph.landmarks for ph in photos])
    matched = [np.concatenate([match_to_annotated(a, ph.landmarks) for a, ph in zip(ans, photos)]) for ans in answers]
    errors = [nme(m, gt, "ibug68") for m in matched]  # NaN for missed faces
    both = np.logical_and.reduce([np.isfinite(e) for e in errors])
    result = E2EResult(machine_info(), {
        "data": str(data), "split": split, "photos": len(photos), "faces": len(gt),
        "decoding": "not timed (photos decoded beforehand, at most the library's default pixel limit)",
        "matching": "landmark box of a prediction vs the annotated landmark box, IoU > 0.5, one to one",
        "NME": "inter-ocular (outer eye corners), mean over found faces",
        "timing": f"1 thread each, methods alternating per photo, fastest of {passes} passes per photo"})
    for (_, name), row_ms, ans, e in zip(methods, ms, answers, errors):
        found = np.isfinite(e)
        result.rows.append(E2ERow(name, float(row_ms.mean()), len(gt), int(found.sum()), int(sum(map(len, ans))),
                                  100 * float(np.mean(e[found])) if found.any() else float("nan"),
                                  100 * float(np.mean(e[both])) if both.any() and len(methods) > 1 else None))
    if len(result.rows) == 2:
        f, d = result.rows
        result.ratios["ms/photo facelm / dlib"] = f.ms_per_photo / d.ms_per_photo
        result.ratios["NME facelm / dlib (each over its found faces)"] = f.nme_pct / d.nme_pct
        if f.nme_pct_both_found is not None and d.nme_pct_both_found:
            result.ratios["NME facelm / dlib (faces both found)"] = f.nme_pct_both_found / d.nme_pct_both_found
        result.ratios["faces found facelm - dlib"] = float(f.found - d.found)
    return result


def format_e2e(r: E2EResult, command: str) -> str:
    m = r.machine
    lines = [machine_line(m),
             "protocol: " + "; ".join(f"{k}: {v}" for k, v in r.protocol.items()), ""]
    w = max(len(row.name) for row in r.rows)
    lines.append(f"{'end to end':<{w}}  {'ms/photo':>8}  {'found':>9}  {'reported':>8}  {'NME %':>6}  {'NME % both found':>16}")
    for row in r.rows:
        both = f"{row.nme_pct_both_found:16.2f}" if row.nme_pct_both_found is not None else f"{'-':>16}"
        lines.append(f"{row.name:<{w}}  {row.ms_per_photo:8.1f}  {row.found:>4}/{row.faces:<4}  {row.predicted:>8}  "
                     f"{row.nme_pct:6.2f}  {both}")
    if len(r.rows) == 1:
        lines.append("dlib: not measured (pip install dlib-bin face-recognition-models, or --no-dlib was given)")
    for name, v in r.ratios.items():
        lines.append(f"ratio {name}: {v:.2f}")
    lines.append(f"rerun: {command}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from .photo_evaluation import SPLITS
    p = argparse.ArgumentParser(prog="python -m facelm.bench_e2e", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"annotated 68-point photos (default {DEFAULT_DATA})")
    p.add_argument("--split", choices=SPLITS, default="validation",
                   help="which photos of --data: train.train's default validation split (default), train, or all")
    p.add_argument("--every", type=int, default=1, help="use every n-th photo (quicker)")
    p.add_argument("--model", default=None, help="landmark model (default: the bundled default)")
    p.add_argument("--detector", default="default", help="facelm's face detector (default: the library's default)")
    p.add_argument("--dlib-upsample", type=int, default=1, help="doublings of the photo before dlib's detector")
    p.add_argument("--passes", type=int, default=2, help="timed passes; each photo's fastest counts")
    p.add_argument("--no-dlib", action="store_true", help="skip the dlib comparison")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    a = p.parse_args(argv)
    from .errors import FacelmError
    try:
        result = run_e2e(a.data, a.split, a.model, a.detector, a.dlib_upsample, a.passes, a.every, a.no_dlib)
    except FacelmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_e2e(result, "python -m facelm.bench_e2e " + " ".join(sys.argv[1:] if argv is None else argv)))
    if a.json:
        a.json.write_text(json.dumps(asdict(result), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
