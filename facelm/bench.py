"""Speed, memory and accuracy benchmark on real faces: ``python -m facelm.bench [--data DIR] [--faces 200]``.

Everything runs in one process on the same faces (evenly spaced annotated faces of the data, by
default the 300-W AFW + HELEN-train faces of train.train's validation split, which the bundled model
never trained on), each given its ground-truth box (the tight landmark box):

* facelm at batch 1 on one thread, torch, onnxruntime float, and the default of
  ``FaceLandmarker.from_pretrained()``: onnxruntime with the model's shipped ONNX file (int8 for the
  bundled models, convolutions quantized, calibrated on faces of the training split): ms per face
  including the crop and the mapping of points back to the photo (decoding the photo is not counted);
* facelm batched (64 crops) on one thread and on every core: faces per second, crops included;
* each available face detector: ms per photo (its own photo, decoded beforehand);
* when ``dlib`` and ``face_recognition_models`` import, dlib's ``shape_predictor_68_face_landmarks``
  on the same faces: ms per face and NME, given the same box and given the box converted to the
  framing of dlib's own face detector (what the predictor was trained on; see facelm.detect);
* peak resident memory (VmHWM) after the facelm part and at the end.

Every time is the fastest of three passes over the faces (or photos), after a warm-up; the default
model's time against dlib's is also measured with the two taking turns face by face, the ratio to
trust on a busy machine. Photo in, every face out (detector included): ``python -m facelm.bench_e2e``. ``--model A B``
benchmarks several landmark models in the same run (default: both bundled 68-point models,
``ibug68`` and ``ibug68_fast``).

NME is inter-ocular (outer eye corners), in percent. Note that dlib's predictor was trained on
all of 300-W (AFW and HELEN-train included), these validation faces too: its NME here is a fit to
its training data, flattering dlib.

Optional packages for the dlib rows (not in requirements.txt; about 130 MB):
``pip install dlib-bin face-recognition-models``. ``face_recognition_models`` is only read for its
model file; it is not imported (its ``__init__`` needs the removed ``pkg_resources``).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

SHARED_DATA = Path(os.environ.get("FACELM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
DEFAULT_DATA = SHARED_DATA / "300w"
DEFAULT_MODELS = ("ibug68", "ibug68_fast")
"""The bundled 68-point models: the default and the 96 px one made for speed."""
PASSES = 3
"""Timed passes over the faces per row; the fastest counts."""


@dataclass
class Row:
    name: str
    ms_per_face: float | None = None
    faces_per_s: float | None = None
    nme_pct: float | None = None
    note: str = ""


@dataclass
class BenchResult:
    machine: dict
    protocol: dict
    rows: list[Row] = field(default_factory=list)
    detectors_ms_per_photo: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    head_to_head: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per model: ms/face of the default from_pretrained() and of dlib, timed taking turns face by face."""


def machine_info() -> dict:
    import cv2
    import onnxruntime
    import torch

    from .onnx_backend import cpu_has_amx
    cpu = platform.processor() or "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable, "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "opencv": cv2.__version__,
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
            "int8_convolutions": "matrix products (AMX)" if cpu_has_amx() else "direct kernels"}
    if _dlib_predictor_path():
        import dlib
        info["dlib"] = dlib.__version__
    return info


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (VmHWM), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dlib_predictor_path() -> Path | None:
    try:
        import dlib  # noqa: F401
        spec = importlib.util.find_spec("face_recognition_models")
    except ImportError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    return path if path.is_file() else None


@dataclass
class BenchFace:
    image: np.ndarray
    box: np.ndarray
    gt: np.ndarray


def load_faces(data: Path, n: int, split: str = "validation") -> tuple[list[BenchFace], list[np.ndarray]]:
    """``n`` evenly spaced annotated faces of ``split`` ("validation": the identities ``train.train``
    holds out with its default split; "all") and the decoded photos they come from."""
    from .photo_evaluation import iter_annotated
    from .image import to_rgb_array
    photos = list(iter_annotated([data], split=split))
    all_faces = [(i, j) for i, ph in enumerate(photos) for j in range(len(ph.boxes))]
    if not all_faces:
        raise SystemExit(f"no annotated faces under {data}")
    pick = [all_faces[k] for k in np.linspace(0, len(all_faces) - 1, min(n, len(all_faces))).round().astype(int)]
    images: dict[int, np.ndarray] = {}
    faces = []
    for i, j in pick:
        if i not in images:
            images[i] = to_rgb_array(photos[i].path)
        faces.append(BenchFace(images[i], photos[i].boxes[j], photos[i].landmarks[j]))
    return faces, list(images.values())


def time_per_item(fn: Callable[[object], np.ndarray], items: list, warmup: int = 5,
                   passes: int = PASSES) -> tuple[float, list[np.ndarray]]:
    """ms per item of the fastest of ``passes`` passes over ``items`` (as timeit does: slower passes
    measure other processes on the machine, not ``fn``), and the outputs."""
    for it in items[:warmup]:
        fn(it)
    best = float("inf")
    for _ in range(passes):
        t = time.perf_counter()
        out = [fn(it) for it in items]
        best = min(best, time.perf_counter() - t)
    return 1000 * best / len(items), out


def time_alternating(fns: list[Callable[[object], object]], items: list, passes: int = PASSES,
                     warmup: int = 5) -> tuple[np.ndarray, list[list]]:
    """(len(fns), len(items)) ms of each call, the fastest of ``passes``, the functions taking turns item
    by item so that a busy machine slows each alike (their ratio is then the figure to trust); and
    each function's outputs."""
    for fn in fns:
        for it in items[:warmup]:
            fn(it)
    ms = np.full((len(fns), len(items)), np.inf)
    out: list[list] = [[None] * len(items) for _ in fns]
    for _ in range(passes):
        for j, it in enumerate(items):
            for i, fn in enumerate(fns):
                t = time.perf_counter()
                out[i][j] = fn(it)
                ms[i, j] = min(ms[i, j], 1000 * (time.perf_counter() - t))
    return ms, out


def _nme_pct(pred: list[np.ndarray] | np.ndarray, faces: list[BenchFace]) -> float:
    from .metrics import nme
    return 100 * float(np.mean(nme(np.stack(pred), np.stack([f.gt for f in faces]), "ibug68")))


def bench_facelm(model: object, faces: list[BenchFace], backend: str, threads: int, batch: int,
                 onnx_file: Path | None = None, label: str | None = None, refine: bool = False) -> Row:
    from .crop import crop_matrix, uncrop_points, warp
    from .landmarker import FaceLandmarker
    if refine and batch != 1:
        raise ValueError("the refine pass is timed per face (batch 1)")
    fl = FaceLandmarker(model, detector=None, backend=backend, num_threads=threads, onnx_file=onnx_file, refine=refine)
    name = f"facelm {label or backend}, batch {batch}, {threads} thread{'s' if threads > 1 else ''}"
    if batch == 1:
        ms, preds = time_per_item(lambda f: fl.predict(f.image, boxes=f.box).landmarks[0], faces)
        return Row(name, ms, 1000 / ms, _nme_pct(preds, faces))
    s = fl.input_size

    def run_all() -> np.ndarray:
        mats = [crop_matrix(f.box, s, fl.model.crop_scale, fl.model.crop_shift_y) for f in faces]
        crops = np.stack([warp(f.image, m, s) for f, m in zip(faces, mats)])
        pts = np.concatenate([fl.predict_crops(crops[i:i + batch]) for i in range(0, len(crops), batch)])
        return uncrop_points(pts, mats)

    # one warm-up run: first calls allocate and pick kernels
    ms, (preds,) = time_per_item(lambda _: run_all(), [None], warmup=1)
    ms /= len(faces)
    return Row(name, ms, 1000 / ms, _nme_pct(preds, faces))


def dlib_landmarks(predictor_path: Path) -> dict[str, Callable[[BenchFace], np.ndarray]]:
    """dlib's shape predictor on a face, given the face's box as it is ("same box") and converted to
    the framing of dlib's own face detector ("box in dlib-detector framing")."""
    import dlib

    from .detect.dlib_hog import CALIBRATION
    predictor = dlib.shape_predictor(str(predictor_path))
    to_detector_framing = CALIBRATION.inverse()

    def run(box_of: Callable[[BenchFace], np.ndarray]) -> Callable[[BenchFace], np.ndarray]:
        def one(f: BenchFace) -> np.ndarray:
            x1, y1, x2, y2 = (int(round(float(v))) for v in box_of(f))
            shape = predictor(f.image, dlib.rectangle(x1, y1, x2, y2))
            return np.array([[p.x, p.y] for p in shape.parts()], np.float32)
        return one

    return {"same box": run(lambda f: f.box), "box in dlib-detector framing": run(lambda f: to_detector_framing.apply(f.box)[0])}


def bench_dlib(faces: list[BenchFace], predictor_path: Path) -> list[Row]:
    rows = []
    for name, fn in dlib_landmarks(predictor_path).items():
        ms, preds = time_per_item(fn, faces)
        rows.append(Row(f"dlib shape_predictor_68, {name}", ms, 1000 / ms, _nme_pct(preds, faces),
                        "1 thread (dlib is single-threaded)"))
    return rows


def head_to_head(spec: str | None, faces: list[BenchFace], predictor_path: Path) -> dict[str, float]:
    """ms/face of the default ``FaceLandmarker.from_pretrained(spec)`` given each face's box and of dlib's
    predictor in its detector framing, one thread each, timed taking turns face by face."""
    from .landmarker import FaceLandmarker
    fl = FaceLandmarker.from_pretrained(spec, detector=None, num_threads=1)
    dlib_fn = dlib_landmarks(predictor_path)["box in dlib-detector framing"]
    ms, _ = time_alternating([lambda f: fl.predict(f.image, boxes=f.box).landmarks, dlib_fn], faces)
    return {"facelm": float(ms[0].mean()), "dlib": float(ms[1].mean())}


def bench_detectors(photos: list[np.ndarray], n: int) -> dict[str, float]:
    from .detect import available_detectors, get_detector
    out = {}
    for name in available_detectors():
        det = get_detector(name)
        ms, _ = time_per_item(det.detect, photos[:n], warmup=2)
        out[name] = ms
    return out


def machine_line(m: dict) -> str:
    """The first line of a benchmark's report: the CPU, its load, and how onnxruntime runs int8
    convolutions on it (facelm.onnx_graph.gemm_convs), which moves the default's time."""
    return (f"machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable); load average at start "
            f"{m.get('load_average_at_start')}; int8 convolutions: {m.get('int8_convolutions', '?')}")


def format_result(r: BenchResult) -> str:
    m = r.machine
    lines = [machine_line(m),
             "software: " + ", ".join(f"{k} {m[k]}" for k in ("python", "torch", "onnxruntime", "opencv", "dlib")
                                      if k in m),
             "protocol: " + "; ".join(f"{k}: {v}" for k, v in r.protocol.items()), ""]
    w = max(len(row.name) for row in r.rows)
    lines.append(f"{'landmarks':<{w}}  {'ms/face':>8}  {'faces/s':>8}  {'NME %':>6}")
    for row in r.rows:
        fmt = lambda v, spec: format(v, spec) if v is not None else "-"  # noqa: E731
        lines.append(f"{row.name:<{w}}  {fmt(row.ms_per_face, '8.2f')}  {fmt(row.faces_per_s, '8.0f')}  "
                     f"{fmt(row.nme_pct, '6.2f')}" + (f"  ({row.note})" if row.note else ""))
    lines.append("")
    for name, ms in r.detectors_ms_per_photo.items():
        lines.append(f"detector {name:<14} {ms:8.1f} ms/photo (1 thread)")
    for name, mb in r.peak_rss_mb.items():
        lines.append(f"peak RSS {name}: {mb:.0f} MB")
    for name, pair in r.head_to_head.items():
        lines.append(f"head to head, {name} default vs dlib (detector framing), taking turns face by face, "
                     f"1 thread each: {pair['facelm']:.2f} vs {pair['dlib']:.2f} ms/face")
    for name, v in r.ratios.items():
        lines.append(f"ratio {name}: {v:.2f}")
    return "\n".join(lines)


def bench_model(model: object, spec: str | None, label: str, faces: list[BenchFace], configs: list[tuple[int, int]],
                result: BenchResult) -> None:
    """Rows of one landmark model: torch, onnxruntime float (also with refine), and the default of
    ``FaceLandmarker.from_pretrained(spec)``: onnxruntime with the model's shipped ONNX file."""
    from .landmarker import FaceLandmarker
    for backend in ("torch", "onnx"):
        for n_threads, batch in configs:
            result.rows.append(bench_facelm(model, faces, backend, n_threads, batch, label=f"{label}{backend}"))
        result.peak_rss_mb[f"after facelm {label}{backend}"] = peak_rss_mb()
    # FaceLandmarker(refine=True): the first pass, then two crops framed on it in one batch.
    result.rows.append(bench_facelm(model, faces, "onnx", 1, 1, label=f"{label}onnx refine", refine=True))
    default = FaceLandmarker.from_pretrained(spec, detector=None)._onnx.path
    result.protocol[f"default ONNX file of {spec or 'the default model'}"] = str(default)
    for n_threads, batch in configs[:2]:
        result.rows.append(bench_facelm(model, faces, "onnx", n_threads, batch, default,
                                        f"{label}default ({default.name})"))


def run_bench(data: Path, n_faces: int, model_specs: list[str | None], n_photos: int, skip_dlib: bool = False,
              split: str = "validation") -> BenchResult:
    import cv2
    # OpenCV (crops, detectors) on one thread, as dlib runs: "one thread each" holds for every row.
    cv2.setNumThreads(1)
    try:
        return _run_bench(data, n_faces, model_specs, n_photos, skip_dlib, split)
    finally:
        cv2.setNumThreads(-1)


def _run_bench(data: Path, n_faces: int, model_specs: list[str | None], n_photos: int, skip_dlib: bool,
               split: str) -> BenchResult:
    import torch

    from .hub import load_model
    faces, photos = load_faces(data, n_faces, split)
    models = {spec: load_model(spec) for spec in model_specs}
    from .errors import SchemeError
    for spec, model in models.items():
        if model.scheme != "ibug68":  # the faces, NME and dlib rows are 68-point
            raise SchemeError(f"{spec}: a {model.scheme} model; the benchmark compares 68-point (ibug68) models")
    threads = os.cpu_count() or 1
    result = BenchResult(machine_info(), {
        "data": str(data), "split": split, "faces": len(faces), "photos": len(photos), "boxes": "tight box of the GT landmarks",
        "model": ", ".join(spec or "bundled default" for spec in model_specs),
        "NME": "inter-ocular (outer eye corners), mean over faces",
        "timing": f"fastest of {PASSES} passes over the faces, after a warm-up"})
    result.peak_rss_mb["after imports and model load"] = peak_rss_mb()
    torch_threads = torch.get_num_threads()
    # Batched on one thread too: on a machine whose other cores are busy, multi-threaded runs mostly
    # measure the wait for descheduled threads.
    configs = [(1, 1), (1, 64)] + ([(threads, 64)] if threads > 1 else [])
    labels = {spec: (f"{spec or 'default'} " if len(models) > 1 else "") for spec in models}
    for spec, model in models.items():
        bench_model(model, spec, labels[spec], faces, configs, result)
    torch.set_num_threads(torch_threads)
    predictor = None if skip_dlib else _dlib_predictor_path()
    if predictor is not None:
        dlib_rows = bench_dlib(faces, predictor)
        result.rows += dlib_rows
        best_dlib = min(dlib_rows, key=lambda r: r.nme_pct)
        for spec in models:
            rows = {kind: next(r for r in result.rows if r.name.startswith(f"facelm {labels[spec]}{kind}")
                               and ", batch 1, 1 thread" in r.name and "refine" not in r.name)
                    for kind in ("torch", "onnx", "default")}
            for kind, row in rows.items():
                result.ratios[f"ms/face facelm {labels[spec]}{kind} batch 1 / dlib (1 thread each, rows timed apart)"] = \
                    row.ms_per_face / best_dlib.ms_per_face
            pair = head_to_head(spec, faces, predictor)
            result.head_to_head[f"{spec or 'default'}"] = pair
            result.ratios[f"ms/face facelm {labels[spec]}default / dlib, timed taking turns (1 thread each)"] = \
                pair["facelm"] / pair["dlib"]
            for kind in ("torch", "default"):
                result.ratios[f"NME facelm {labels[spec]}{kind} / dlib (dlib in its detector framing)"] = \
                    rows[kind].nme_pct / dlib_rows[1].nme_pct
                result.ratios[f"NME facelm {labels[spec]}{kind} / dlib (dlib on the same box)"] = \
                    rows[kind].nme_pct / dlib_rows[0].nme_pct
    else:
        result.rows.append(Row("dlib shape_predictor_68", note="not measured: pip install dlib-bin "
                                                               "face-recognition-models"))
    result.detectors_ms_per_photo = bench_detectors(photos, n_photos)
    result.peak_rss_mb["whole run"] = peak_rss_mb()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facelm.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"annotated faces (default {DEFAULT_DATA})")
    p.add_argument("--faces", type=int, default=200)
    from .photo_evaluation import SPLITS
    p.add_argument("--split", choices=SPLITS, default="validation",
                   help="which faces of --data: train.train's default validation split (default), its train part, or all")
    p.add_argument("--photos", type=int, default=50, help="photos timed per face detector")
    p.add_argument("--model", nargs="+", default=list(DEFAULT_MODELS),
                   help=f"bundled model names, model folders or Hub ids (default: {' '.join(DEFAULT_MODELS)})")
    p.add_argument("--no-dlib", action="store_true", help="skip the dlib comparison")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    a = p.parse_args(argv)
    from .errors import FacelmError
    try:
        result = run_bench(a.data, a.faces, a.model, a.photos, a.no_dlib, a.split)
    except FacelmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_result(result))
    if a.json:
        a.json.write_text(json.dumps(asdict(result), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
