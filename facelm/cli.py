"""Command line: ``python -m facelm predict|evaluate|export-onnx``.

    python -m facelm predict photos/ more.jpg --out results.json [--format json|pts|xml|coco]
           [--scheme 68|15|5] [--overlay DIR] [--model M] [--backend torch|onnx] [--flip] [--[no-]refine]
    python -m facelm evaluate DATA... [--model M] [--norm interocular] [--boxes gt|detector] [--ced ced.png]
    python -m facelm export-onnx --out model.onnx [--model M] [--int8 [--calib DATA]]
    python -m facelm download-detector      # YuNet's weights into the Hugging Face cache (online once)
    python -m facelm video IN.mp4 --out landmarks.json [--csv out.csv] [--overlay out.mp4] [--no-smooth]

Exit status: 0 success; 1 some images could not be read (the rest are written, and each failure is
named on stderr and in the JSON output); 2 bad arguments or input (a message, no traceback).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FacelmError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
FORMATS = ("json", "pts", "xml", "coco")


@dataclass
class InputImage:
    path: Path
    name: str
    """Relative name used for per-image outputs (overlays, .pts files): unique among the inputs."""


def find_images(inputs: list[str]) -> list[InputImage]:
    """Files as given; folders searched recursively for image files. Names must not collide."""
    found: list[InputImage] = []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise FacelmError(f"{arg}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            found += [InputImage(f, f.relative_to(p).as_posix()) for f in files]
        elif p.is_file():
            found.append(InputImage(p, p.name))
        else:
            raise FacelmError(f"{arg}: no such file or folder")
    seen: dict[str, Path] = {}
    for im in found:
        if im.name in seen and seen[im.name] != im.path:
            raise FacelmError(f"two inputs would write outputs under the same name {im.name!r} "
                              f"({seen[im.name]} and {im.path}); run them separately")
        seen[im.name] = im.path
    return list({im.path: im for im in found}.values())  # the same file named twice runs once


def _portable_path(image: Path, folder: Path) -> str:
    """The image's path as an annotation file in ``folder`` should name it: relative when the image
    lies under the folder (annotation readers refuse paths that climb out), else absolute."""
    image, folder = image.resolve(), folder.resolve()
    return image.relative_to(folder).as_posix() if image.is_relative_to(folder) else str(image)


def save_overlay(image: np.ndarray, im: InputImage, faces, scheme: str, folder: Path) -> None:
    from PIL import Image

    from .draw import draw_landmarks
    from .paths import safe_join
    canvas = draw_landmarks(image, faces.landmarks, scheme, boxes=faces.boxes) if len(faces) else image
    target = safe_join(folder, Path(im.name).with_suffix(".jpg").as_posix())
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(target, quality=90)


def _output_format(a: argparse.Namespace) -> str:
    if a.format:
        return a.format
    suffix = Path(a.out).suffix.lower()
    return {".json": "json", ".xml": "xml", "": "pts"}.get(suffix, "json")


def cmd_predict(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from . import __version__
    from . import prediction_export as export
    from .image import to_rgb_array
    from .landmarker import FaceLandmarker, Faces
    from .schemes import get_scheme
    fmt = _output_format(a)
    out = Path(a.out)
    if fmt != "pts" and out.is_dir():
        raise FacelmError(f"--out {out} is a folder; give a file name for --format {fmt}")
    if fmt == "pts" and out.exists() and not out.is_dir():
        raise FacelmError(f"--out {out} is a file; --format pts writes a folder of .pts files")
    images = find_images(a.inputs)
    fl = FaceLandmarker.from_pretrained(a.model, detector=a.detector, backend=a.backend, flip_test=a.flip,
                                        refine=a.refine, min_score=a.min_score, min_face=a.min_face)
    scheme = get_scheme(a.scheme).name if a.scheme else fl.scheme.name
    preds: list[tuple[InputImage, Faces]] = []
    errors: list[tuple[str, str]] = []
    overlay = Path(a.overlay) if a.overlay else None
    for im in tqdm(images, unit="img", desc="predict", disable=a.quiet or None, file=sys.stderr):
        try:
            img = to_rgb_array(im.path)
        except FacelmError as e:
            errors.append((str(im.path), str(e)))
            tqdm.write(f"skipped: {e}", file=sys.stderr)
            continue
        faces = fl.predict(img, scheme=scheme)
        preds.append((im, faces))
        if overlay is not None:
            save_overlay(img, im, faces, scheme, overlay)
    detector = fl.detector.name if fl.detector is not None else None
    if fmt == "json":
        meta = {"facelm": __version__, "model": str(a.model or "default"), "scheme": scheme, "detector": detector,
                "min_score": fl.min_score if fl.min_score is not None else getattr(fl.detector, "min_score", None),
                "min_face": fl.min_face, "flip_test": a.flip, "refine": fl.refine}
        out.parent.mkdir(parents=True, exist_ok=True)
        export.write_json(export.prediction_document([(str(im.path), f) for im, f in preds], meta, errors), out)
    elif fmt == "pts":
        out.mkdir(parents=True, exist_ok=True)  # even when no face was found: the run did succeed
        for im, faces in preds:
            export.write_pts_files(out, im.name, faces)
    else:
        from .io import write_annotations
        out.parent.mkdir(parents=True, exist_ok=True)
        aset = export.annotation_set([(_portable_path(im.path, out.parent), f) for im, f in preds],
                                     root=str(out.parent))
        write_annotations(aset, out, {"xml": "dlib_xml", "coco": "coco"}[fmt])
    n_faces = sum(len(f) for _, f in preds)
    if not a.quiet:
        print(f"{len(preds)} images, {n_faces} faces -> {out} (face detector: {detector})"
              + (f" ({len(errors)} unreadable)" if errors else ""), file=sys.stderr)
    return 1 if errors else 0


def cmd_download_detector(a: argparse.Namespace) -> int:
    from .detect.yunet_weights import HUB_FILE, HUB_REPO, cached_or_downloaded, check_sha256
    filename = a.filename or HUB_FILE
    path = check_sha256(cached_or_downloaded(filename, a.revision))
    print(f"YuNet face detector ({HUB_REPO}/{filename}) is in the Hugging Face cache: {path}")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from .photo_evaluation import iter_annotated, predict_annotated
    from .landmarker import FaceLandmarker
    from .metrics import plot_ced, results_table
    photos = list(iter_annotated(a.data, a.every, a.split))
    if not photos:
        raise FacelmError(f"no annotated faces in {', '.join(map(str, a.data))} (split: {a.split})")
    detector = a.detector if a.boxes == "detector" else None
    fl = FaceLandmarker.from_pretrained(a.model, detector=detector, backend=a.backend, flip_test=a.flip,
                                        refine=a.refine)
    preds = predict_annotated(fl, photos, a.boxes, progress=not a.quiet)
    results = preds.results(a.norm, found_only=a.boxes == "detector")
    print(f"model: {a.model or 'default'}; split: {a.split}; boxes: {a.boxes}" + (f" ({a.detector})" if a.boxes == "detector" else "")
          + f"; flip test: {a.flip}; refine: {fl.refine}")
    if a.boxes == "detector":
        with_misses = preds.results(a.norm)
        print(f"faces found by the detector (IoU > 0.5 with the ground-truth box): {preds.found.sum()} of "
              f"{len(preds.found)} ({100 * preds.found.mean():.1f}%); the table is over those. Counting misses as "
              + "failures: " + ", ".join(f"{k} FR@0.10 {100 * r.fr_10:.2f}% AUC@0.10 {r.auc_10:.4f}"
                                         for k, r in with_misses.items()))
    print(results_table(results))
    if a.json:
        from .paths import atomic_write_text
        doc = {"boxes": a.boxes, "faces": len(preds.found), "found": int(preds.found.sum()),
               "results": {k: r.to_dict() for k, r in results.items()}}
        atomic_write_text(a.json, json.dumps(doc, indent=1) + "\n")
    if a.ced:
        errors = preds.errors(a.norm)
        groups = {str(s): errors[preds.subsets == s] for s in dict.fromkeys(preds.subsets.tolist())}
        if len(groups) > 1:
            groups["all"] = errors
        print("CED plot:", plot_ced(groups, a.ced, title=f"CED ({a.boxes} boxes, {a.norm} NME)"))
    return 0


def cmd_export_onnx(a: argparse.Namespace) -> int:
    from .hub import load_model
    from .onnx_backend import check_export, export_onnx
    model = load_model(a.model)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = export_onnx(model, None if a.int8 else out)
    diff = check_export(model, data)
    check = f"max |torch - onnxruntime| = {diff:.2e} px"
    if a.int8:
        from .onnx_backend import calibration_crops, quantize_int8
        data = quantize_int8(data, calibration_crops(model, a.calib, a.calib_faces))
        out.write_bytes(data)
        check = (f"int8, calibrated on {a.calib_faces} training faces of {', '.join(a.calib)}; "
                 f"use it with FaceLandmarker(..., backend='onnx', onnx_file='{out}'), or name it "
                 "model_int8.onnx in the model's folder (or Hub repo) to make it that model's default")
    from .onnx_backend import OnnxRunner
    takes = "uint8" if OnnxRunner(data, gemm_convs=False).input_dtype == np.uint8 else "float"  # no rewrite to run it
    print(f"wrote {out} ({len(data) / 1e6:.1f} MB, input crops (B, {model.in_chans}, {model.input_size}, "
          f"{model.input_size}) {takes} 0-255, output landmarks (B, {model.num_points}, 2) crop pixels); {check}")
    return 0


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def cmd_video(a: argparse.Namespace) -> int:
    from . import __version__
    from .landmarker import FaceLandmarker
    from .one_euro import OneEuroParams
    from .video import track_video
    if a.detect_every < 1:
        raise FacelmError(f"--detect-every must be at least 1, got {a.detect_every}")
    fl = FaceLandmarker.from_pretrained(a.model, detector=a.detector, backend=a.backend)
    result = track_video(a.input, fl, a.detect_every, None if a.no_smooth else OneEuroParams(),
                         overlay=a.overlay, progress=not a.quiet)
    result.meta = {"facelm": __version__, "model": str(a.model or "default"), "detector": a.detector,
                   **result.meta}
    result.write_json(a.out)
    if a.csv:
        result.write_csv(a.csv)
    if not a.quiet:
        n_faces = len({face.id for f in result.frames for face in f.faces})
        skipped = f"; {len(result.skipped)} undecodable frames skipped" if result.skipped else ""
        print(f"{len(result.frames)} frames, {n_faces} faces followed -> {a.out}{skipped}"
              + (f"; {result.stopped}" if result.stopped else ""), file=sys.stderr)
    return 1 if result.skipped else 0


def build_parser() -> argparse.ArgumentParser:
    from .bench import DEFAULT_DATA
    from .photo_evaluation import SPLITS
    from .video import DEFAULT_DETECT_EVERY
    p = argparse.ArgumentParser(prog="python -m facelm", description="Face landmark detection.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def model_args(q: argparse.ArgumentParser) -> None:
        q.add_argument("--model", default=None, help="model folder or Hub repo id (default: the bundled model)")
        q.add_argument("--backend", choices=["torch", "onnx"], default="onnx",
                       help="onnx (default): onnxruntime, with the model's shipped ONNX file or a cached export; "
                            "torch: the PyTorch model")
        q.add_argument("--flip", action="store_true", help="flip test: average with the mirrored face")
        q.add_argument("--refine", action=argparse.BooleanOptionalAction, default="auto",
                       help="second stage: two crops framed on the first prediction (one turned upright), "
                            "averaged (default: on for the detector's faces, off for given boxes)")
        q.add_argument("--detector", default="default",
                       help="face detector: default (yunet when its weights are found, else haar), yunet, haar, "
                            "haar_frontal, dlib (needs pip install dlib-bin)")
        q.add_argument("--min-score", type=_non_negative, default=None,
                       help="keep detected faces scoring at least this (default: the detector's own threshold)")
        q.add_argument("--min-face", type=_non_negative, default=0.0, metavar="PX",
                       help="keep detected faces whose box's short side is at least this many pixels")
        q.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    q = sub.add_parser("predict", help="landmarks of every face in images or folders of images")
    q.add_argument("inputs", nargs="+", metavar="IMG_OR_DIR", help="image files, or folders searched recursively")
    q.add_argument("--out", required=True, help="output file (a folder for --format pts)")
    q.add_argument("--format", choices=FORMATS, default=None,
                   help="json (facelm's, default), pts (a folder of 300-W .pts), xml (dlib imglab), coco "
                        "(default: from --out's extension)")
    q.add_argument("--scheme", default=None, help="output scheme: 68, 15 or 5 (default: the model's)")
    q.add_argument("--overlay", default=None, metavar="DIR", help="also save each image with landmarks drawn")
    model_args(q)
    q.set_defaults(func=cmd_predict)

    q = sub.add_parser("evaluate", help="NME / failure rate / AUC on annotated data")
    q.add_argument("data", nargs="+", help="annotations: a folder of .pts, dlib XML, CSV, COCO JSON")
    q.add_argument("--norm", default="interocular", choices=["interocular", "interpupil", "diagonal", "box_size"])
    q.add_argument("--boxes", default="gt", choices=["gt", "detector"],
                   help="face boxes from the ground-truth landmarks, or from the face detector (misses fail)")
    q.add_argument("--ced", default=None, metavar="PNG", help="write the CED curve here")
    q.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")
    q.add_argument("--every", type=int, default=1, help="use every n-th photo (quicker)")
    q.add_argument("--split", choices=SPLITS, default="all",
                   help="only the faces train.train's default split puts on this side (default: all)")
    model_args(q)
    q.set_defaults(func=cmd_evaluate)

    q = sub.add_parser("export-onnx", help="export the model to ONNX (checked against torch)")
    q.add_argument("--out", required=True)
    q.add_argument("--model", default=None, help="model folder or Hub repo id (default: the bundled model)")
    q.add_argument("--int8", action="store_true", help="quantize the convolutions to int8 (faster on CPU)")
    q.add_argument("--calib", nargs="+", default=[str(DEFAULT_DATA)],
                   help="annotated faces for --int8 calibration; only train.train's training split is used "
                        "(default: ../shared/data/300w)")
    q.add_argument("--calib-faces", type=int, default=256)
    q.set_defaults(func=cmd_export_onnx)

    q = sub.add_parser("download-detector", help="fetch the YuNet face detector's weights into the Hugging Face "
                                                 "cache (needs the network once)")
    q.add_argument("--filename", default=None, help="file in the Hub repo (default: the release facelm knows)")
    q.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    q.set_defaults(func=cmd_download_detector)

    from .publish import add_publish_parser
    add_publish_parser(sub)
    q = sub.add_parser("video", help="landmarks of the faces in a video, followed from frame to frame and smoothed")
    q.add_argument("input", metavar="VIDEO", help="a video file OpenCV reads (mp4, avi, mov, mkv, ...)")
    q.add_argument("--out", required=True, help="JSON output: {fps, frames: [{index, faces: [{id, box, landmarks}]}]}")
    q.add_argument("--csv", default=None, help="also write one CSV row per face per frame")
    q.add_argument("--overlay", default=None, metavar="MP4",
                   help="also write the video with the faces drawn: .mp4 (mp4v), .webm (VP8, plays in browsers), .avi")
    q.add_argument("--no-smooth", action="store_true", help="the model's raw points, no One Euro filter")
    q.add_argument("--detect-every", type=int, default=DEFAULT_DETECT_EVERY, metavar="N",
                   help=f"run the face detector every N frames, and whenever a face is lost "
                        f"(default {DEFAULT_DETECT_EVERY})")
    q.add_argument("--model", default=None, help="model folder or Hub repo id (default: the bundled model)")
    q.add_argument("--backend", choices=["torch", "onnx"], default="onnx")
    q.add_argument("--detector", default="default", help="face detector (see predict --help)")
    q.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_video)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return a.func(a)
    except FacelmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. an output folder we may not write to
        print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout.flush()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
