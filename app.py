"""facelm: face landmarks you can see, fix and retrain. A Gradio app, thin over the facelm package.

    python app.py                      # http://127.0.0.1:7860 (also the entry point of a HF Space)

Tabs: Predict (photo or webcam -> landmarks and downloads), Compare (ground truth vs prediction,
per-face NME, dataset evaluation), Annotate (fix predicted points in the browser, autosaved,
exported as dlib XML / .pts / COCO) and Retrain (fine-tune on those exports, before/after NME).
Every action is a named API endpoint (see "Use via API" in the footer, or gradio_client).

Settings (environment variables):
    FACELM_MODEL            the default model: a local model folder or a Hub id (default: bundled)
    FACELM_DEMO_DATA        the dataset the Compare and Annotate tabs start with (Hub id or local path;
                            default ../shared/data/300w when present)
    FACELM_ANNOTATIONS_DIR  where annotation projects are autosaved (default ./annotations)
    FACELM_LOCAL_PATHS      "any" (default) lets the dataset boxes read any local path; "restricted"
                            (the default on a Space) only the demo data's folder and the annotations
    FACELM_THREADS          torch CPU threads (default: half the cores, at most 4)
    FACELM_MAX_FILE_SIZE    upload limit (default 20mb)
"""
from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def _hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hugging Face Hub answers at all (a thread, since DNS lookups ignore timeouts)."""
    import socket
    from urllib.parse import urlparse
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass
    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(ok)


# No network: use the local cache only, so a Hub id that is not cached fails at once with a clear
# message instead of retrying for a minute (huggingface_hub reads this when it is first imported).
if "HF_HUB_OFFLINE" not in os.environ and not _hub_reachable():
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from facelm import FaceLandmarker, FacelmError, ModelLoadError, get_scheme  # noqa: E402
from facelm.annotation import AnnotatedImage, AnnotationSet, Face, landmark_box  # noqa: E402
from facelm.annotation_store import Project, faces_to_json, new_project_id  # noqa: E402
from facelm.draw import draw_comparison, draw_landmarks, worst_points  # noqa: E402
from facelm.editor import CSS as EDITOR_CSS, JS as EDITOR_JS, TEMPLATE as EDITOR_TEMPLATE  # noqa: E402
from facelm.editor import editor_value, faces_from_value  # noqa: E402
from facelm.hub import DEFAULT_MODEL_DIR, bundled_models  # noqa: E402
from facelm.image import to_rgb_array  # noqa: E402
from facelm.io import read_annotations, write_annotations  # noqa: E402
from facelm.io.pts import read_pts  # noqa: E402
from facelm.metrics import EvalResult, nme, per_subset, plot_ced, point_errors  # noqa: E402

# ---------------------------------------------------------------------------------------- settings
REPO = Path(__file__).resolve().parent
DEFAULT_MODEL = os.environ.get("FACELM_MODEL", "").strip()
_demo = REPO.parent / "shared" / "data" / "300w"
DEMO_DATA = os.environ.get("FACELM_DEMO_DATA", str(_demo) if _demo.exists() else "").strip()
ANNOTATIONS_DIR = Path(os.environ.get("FACELM_ANNOTATIONS_DIR", REPO / "annotations"))
LOCAL_PATHS = os.environ.get("FACELM_LOCAL_PATHS", "restricted" if os.environ.get("SPACE_ID") else "any")
MAX_FILE_SIZE = os.environ.get("FACELM_MAX_FILE_SIZE", "20mb")
torch.set_num_threads(int(os.environ.get("FACELM_THREADS", max(1, min(4, (os.cpu_count() or 2) // 2)))))

SCHEMES = [("68 points (iBUG 300-W)", "ibug68"), ("15 points (Kaggle)", "kaggle15"), ("5 points (CelebA)", "celeba5")]
ANNOTATION_SUFFIXES = (".xml", ".pts", ".json")


def readable_errors(fn):
    """Anything a user can cause (bad file, unknown model, malformed annotation) becomes a gr.Error
    with facelm's message, shown in the UI and returned to API clients; the app keeps running."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (FacelmError, ValueError, OSError, KeyError) as e:
            raise gr.Error(str(e).strip("'\"") or type(e).__name__) from e
    return wrapper


class PhotoInput(gr.Image):
    """gr.Image that answers a file it cannot open (a PDF, a text file) with a readable message."""
    is_template = True  # the browser draws it as a plain Image

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except Exception as e:
            name = getattr(payload, "orig_name", None) or "the upload"
            if "DecompressionBomb" in type(e).__name__:
                raise gr.Error(f"{name} is too large to open safely ({e})") from e
            raise gr.Error(f"{name} is not an image I can open ({type(e).__name__}). "
                           "Upload a JPEG, PNG or WebP photo.") from e


# ------------------------------------------------------------------------------------------ models
_models: dict[str, FaceLandmarker] = {}
_models_lock = threading.Lock()


def load_landmarker(spec: str | None) -> FaceLandmarker:
    """The model for a Hub id or local folder ("" = FACELM_MODEL or the bundled default), cached."""
    key = (spec or "").strip() or DEFAULT_MODEL
    with _models_lock:
        if key not in _models:
            try:
                fl = FaceLandmarker.from_pretrained(key or None)
            except ImportError:  # no face detector available: boxes must be given
                fl = FaceLandmarker.from_pretrained(key or None, detector=None)
            if len(_models) >= 4:
                _models.pop(next(iter(_models)))
            _models[key] = fl
        return _models[key]


_infer_lock = threading.Lock()


def run(fl: FaceLandmarker, img: np.ndarray, **kwargs):
    """``fl.predict`` one call at a time: OpenCV's cascade detector is not safe to share between
    threads, and on a small CPU box parallel calls only slow each other down."""
    with _infer_lock:
        return fl.predict(img, **kwargs)


def model_path(spec: str | None) -> str:
    """What --init-from needs for this model spec."""
    key = (spec or "").strip() or DEFAULT_MODEL
    return key or str(DEFAULT_MODEL_DIR)


def describe_model(spec: str | None) -> str:
    fl = load_landmarker(spec)
    m = fl.model
    name = (spec or "").strip() or DEFAULT_MODEL or "bundled default"
    det = "with face detector" if fl.detector is not None else "no face detector (boxes needed)"
    return (f"**Model:** `{name}` · {fl.scheme.name}, {fl.scheme.num_points} points · "
            f"{m.input_size}px input · {sum(p.numel() for p in m.parameters()) / 1e6:.2f} M params · {det}")


@readable_errors
def load_model(spec: str) -> str:
    try:
        return "✅ " + describe_model(spec)
    except ModelLoadError as e:
        raise gr.Error(f"Could not load that model: {e}", title="Model not loaded") from e


# ----------------------------------------------------------------------------------------- helpers
def _name(path: str | None, default: str = "image") -> str:
    return Path(path).name if path else default


def _tmpdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"facelm-{prefix}-"))


def check_local(spec: str) -> str:
    """Refuse local paths outside the allowed folders when FACELM_LOCAL_PATHS=restricted."""
    spec = (spec or "").strip()
    if not spec:
        raise gr.Error("Enter a dataset: a Hub dataset id (org/name) or a local folder or annotation file.")
    p = Path(spec).expanduser()
    if LOCAL_PATHS != "any" and (p.exists() or spec.startswith((".", "/", "~"))):
        allowed = [Path(DEMO_DATA).resolve().parent] if DEMO_DATA else []
        allowed.append(ANNOTATIONS_DIR.resolve())
        real = p.resolve()
        if not any(real == a or a in real.parents for a in allowed):
            raise gr.Error("Local paths are limited to the demo data and the annotations folder on this server.")
    return spec


@functools.lru_cache(maxsize=4)
def _dataset(spec: str):
    import datasets

    from facelm.data import load_dataset
    try:
        ds = load_dataset(spec)
    except (FacelmError, FileNotFoundError, ValueError) as e:
        raise gr.Error(f"Could not load dataset {spec!r}: {e}") from e
    except Exception as e:  # the Hub: not found, offline, gated...
        raise gr.Error(f"Could not load dataset {spec!r}: {type(e).__name__}: {e}") from e
    if isinstance(ds, datasets.DatasetDict):
        split = next((s for s in ("validation", "test", "train") if s in ds), next(iter(ds)))
        ds = ds[split]
    missing = {"image", "landmarks"} - set(ds.column_names)
    if missing:
        raise gr.Error(f"Dataset {spec!r} has no {', '.join(sorted(missing))} column (see facelm.data)")
    return ds


def get_dataset(spec: str):
    return _dataset(check_local(spec))


def _row_scheme(row: dict, k: int) -> str:
    from facelm.schemes import scheme_for_count
    return row.get("scheme") or scheme_for_count(k).name


def _predict_in_boxes(fl: FaceLandmarker, img: np.ndarray, boxes: np.ndarray, scheme: str) -> np.ndarray:
    return run(fl, img, boxes=boxes, scheme=scheme).landmarks


# ----------------------------------------------------------------------------------------- Predict
@readable_errors
def predict(image: str | None, scheme: str = "ibug68", model: str = "", refine: bool = True):
    """Photo -> (drawing, summary, JSON result, download files)."""
    if image is None:
        raise gr.Error("Upload a photo first (or take one with the webcam).")
    fl = load_landmarker(model)
    img = to_rgb_array(image, fl.max_pixels)
    if fl.detector is None:
        raise gr.Error("This model has no face detector available; use the Compare tab with known boxes.")
    faces = run(fl, img, scheme=scheme, refine=bool(refine))
    sch = get_scheme(faces.scheme)
    h, w = img.shape[:2]
    drawn = draw_landmarks(img, faces.landmarks, sch, boxes=faces.boxes) if len(faces) else img
    name = _name(image)
    result = {"image": name, "width": w, "height": h, "scheme": sch.name,
              "model": (model or "").strip() or DEFAULT_MODEL or "bundled default",
              "faces": [{"box": b.tolist(), "score": float(s), "landmarks": p.tolist()}
                        for p, b, s in zip(faces.landmarks, faces.boxes, faces.scores)]}
    files = prediction_files(result, faces, name, w, h) if len(faces) else []
    if len(faces):
        summary = (f"### Found {len(faces)} face{'s' * (len(faces) > 1)}\n"
                   f"{sch.num_points} points each ({sch.name}) on a {w}×{h} photo. "
                   "Downloads: JSON, dlib XML, COCO keypoints and 300-W `.pts`.")
    else:
        summary = "### No face found\nTry a larger, more frontal face, or crop the photo around it."
    return drawn, summary, result, files


def prediction_files(result: dict, faces, name: str, w: int, h: int) -> list[str]:
    out = _tmpdir("predict")
    stem = Path(name).stem or "image"
    aset = AnnotationSet(images=[AnnotatedImage(path=name, width=w, height=h,
                                                faces=[Face(p, b) for p, b in zip(faces.landmarks, faces.boxes)])],
                         scheme=faces.scheme, name="facelm prediction")
    (out / f"{stem}_landmarks.json").write_text(json.dumps(result, indent=1))
    write_annotations(aset, out / f"{stem}.xml", precision=None)
    write_annotations(aset, out / f"{stem}_coco.json")
    if len(faces) == 1:
        write_annotations(aset, out / f"{stem}.pts")
    else:
        import zipfile

        from facelm.io.pts import format_pts
        with zipfile.ZipFile(out / f"{stem}_pts.zip", "w") as z:
            for k, p in enumerate(faces.landmarks, 1):
                z.writestr(f"{stem}_{k}.pts", format_pts(p))
    return sorted(str(p) for p in out.iterdir())


# ----------------------------------------------------------------------------------------- Compare
def compare_faces(img: np.ndarray, gt: np.ndarray, pred: np.ndarray, scheme: str, title: str):
    """Drawing (GT green, prediction red, worst 3 points ringed), per-face table and a summary."""
    sch = get_scheme(scheme)
    errs = point_errors(pred, gt, sch)
    face_nme = nme(pred, gt, sch)
    worst = worst_points(gt, pred, 3)
    drawn = draw_comparison(img, gt, pred, sch, boxes=landmark_box(gt), worst_k=3)
    rows = []
    for j, (e, idx) in enumerate(zip(face_nme, worst)):
        names = ", ".join(f"{i} {sch.names[i]} ({100 * errs[j, i]:.1f}%)" for i in idx)
        rows.append([j + 1, round(100 * float(e), 2), names])
    mean = float(np.nanmean(face_nme)) if len(face_nme) else float("nan")
    summary = (f"### NME {100 * mean:.2f}%\n{title} · {len(gt)} face{'s' * (len(gt) > 1)} · inter-ocular NME "
               "(outer eye corners), boxes from the ground-truth landmarks. "
               "<span class='gt'>●</span> ground truth · <span class='pred'>●</span> prediction · "
               "<span class='worst'>◯</span> worst points")
    return drawn, rows, summary


@readable_errors
def compare(dataset: str, index: float = 0, model: str = ""):
    """One face of a dataset: ground truth vs the model's prediction in the GT face box."""
    ds = get_dataset(dataset)
    i = int(np.clip(int(index or 0), 0, len(ds) - 1))
    row = ds[i]
    img = to_rgb_array(row["image"])
    gt = np.asarray(row["landmarks"], np.float32)[None]
    scheme = _row_scheme(row, gt.shape[1])
    fl = load_landmarker(model)
    pred = _predict_in_boxes(fl, img, landmark_box(gt), scheme)
    where = f"face {i} of {len(ds)} · {row.get('source', '')}/{row.get('image_path', '')}".strip(" /")
    drawn, rows, summary = compare_faces(img, gt, pred, scheme, where)
    return drawn, rows, summary


@readable_errors
def compare_upload(image: str | None, annotation: str | None, model: str = ""):
    """An uploaded photo and its annotation (.pts, dlib XML or COCO JSON)."""
    if image is None or annotation is None:
        raise gr.Error("Upload both a photo and its annotation file (.pts, .xml or COCO .json).")
    img = to_rgb_array(image)
    ann = Path(annotation)
    if ann.suffix.lower() == ".pts":
        gt = read_pts(ann)[None]
        scheme = get_scheme_for(gt.shape[1])
    elif ann.suffix.lower() in (".xml", ".json"):
        aset = read_annotations(ann)
        entry = _match_image(aset, _name(image))
        gt = np.stack([f.landmarks for f in entry.faces if f.num_points]) if entry.faces else np.zeros((0, 0, 2))
        scheme = aset.scheme
    else:
        raise gr.Error(f"{ann.name}: expected a .pts, .xml (dlib) or .json (COCO) annotation file")
    if not len(gt):
        raise gr.Error(f"{ann.name} has no landmarks for this image")
    h, w = img.shape[:2]
    inside = np.isfinite(gt).all(-1) & (gt[..., 0] > -0.5 * w) & (gt[..., 0] < 1.5 * w) \
        & (gt[..., 1] > -0.5 * h) & (gt[..., 1] < 1.5 * h)
    if inside.mean() < 0.5:
        raise gr.Error(f"The points in {ann.name} do not fit this {w}×{h} photo: is it the right image?")
    fl = load_landmarker(model)
    pred = _predict_in_boxes(fl, img, landmark_box(gt), scheme)
    return compare_faces(img, gt, pred, scheme, f"{_name(image)} with {ann.name}")


def get_scheme_for(k: int) -> str:
    from facelm.schemes import scheme_for_count
    return scheme_for_count(k).name


def _match_image(aset: AnnotationSet, name: str) -> AnnotatedImage:
    hits = [im for im in aset.images if Path(im.path.replace("\\", "/")).name == name]
    if hits:
        return hits[0]
    if len(aset.images) == 1:
        return aset.images[0]
    raise gr.Error(f"the annotation file lists {len(aset.images)} images and none is named {name!r}")


@readable_errors
def evaluate(dataset: str, n_faces: float = 100, model: str = "", progress=gr.Progress()):
    """Dataset-level NME / failure rate / AUC on up to ``n_faces`` faces spread over the dataset."""
    ds = get_dataset(dataset)
    n = int(min(max(int(n_faces or 1), 1), len(ds)))
    idx = np.unique(np.linspace(0, len(ds) - 1, n).round().astype(int))
    fl = load_landmarker(model)
    errors, point_errs, sources = [], [], []
    scheme = None
    for row in progress.tqdm(ds.select(idx.tolist()), total=len(idx), desc="Predicting faces"):
        img = to_rgb_array(row["image"])
        gt = np.asarray(row["landmarks"], np.float32)[None]
        scheme = scheme or _row_scheme(row, gt.shape[1])
        pred = _predict_in_boxes(fl, img, landmark_box(gt), scheme)
        pe = point_errors(pred, gt, scheme)
        point_errs.append(pe[0])
        errors.append(float(nme(pred, gt, scheme)[0]))
        sources.append(str(row.get("source") or "all"))
    progress(1.0, desc="Summarising")
    errors_a = np.asarray(errors)
    results = per_subset(errors_a, sources, np.asarray(point_errs), norm="interocular",
                         all_label="all" if len(set(sources)) > 1 else None)
    table = [[name, r.n, round(100 * r.nme_mean, 2), round(100 * r.nme_median, 2), round(100 * r.fr_08, 2),
              round(r.auc_08, 4), round(100 * r.fr_10, 2), round(r.auc_10, 4)] for name, r in results.items()]
    curves = {name: errors_a[np.asarray(sources) == name] for name in dict.fromkeys(sources)}
    if len(curves) > 1:
        curves["all"] = errors_a
    plot = plot_ced(curves, _tmpdir("eval") / "ced.png", title=f"CED · {len(idx)} faces", figsize=(6.4, 4.2))
    overall = EvalResult.from_errors(errors_a)
    summary = (f"### NME {100 * overall.nme_mean:.2f}% on {overall.n} faces\n"
               f"Failure rate {100 * overall.fr_10:.1f}% and AUC {overall.auc_10:.3f} at NME 0.10. "
               "Boxes from the ground-truth landmarks, inter-ocular NME. The faces may include ones the model "
               "trained on; for held-out figures run `python -m facelm evaluate DATA --split validation`.")
    return table, str(plot), summary


# ---------------------------------------------------------------------------------------- Annotate
def predict_with_uncertainty(fl: FaceLandmarker, img: np.ndarray, boxes=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Starting points, boxes and the model's uncertainty about each face of one photo.

    The photo and its mirror image are both predicted; the mirrored prediction is flipped back
    (``scheme.flip``) and the two are averaged for the start (a flip test). How much they disagree
    (NME between them; the worst face for the photo) is the uncertainty the queue sorts by: faces the model sees
    differently from left and right are the ones most worth a human look. A photo where no face
    is found starts from a guess in the middle (uncertainty 1e9: first in the queue)."""
    h, w = img.shape[:2]
    guess = False
    if boxes is None:
        faces = run(fl, img) if fl.detector is not None else None
        if faces is None or not len(faces):
            s = 0.45 * min(w, h)
            boxes, guess = np.array([[w / 2 - s / 2, h / 2 - s / 2, w / 2 + s / 2, h / 2 + s / 2]], np.float32), True
        else:
            boxes = faces.boxes
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    pts = run(fl, img, boxes=boxes).landmarks
    mboxes = boxes.copy()
    mboxes[:, 0], mboxes[:, 2] = w - 1 - boxes[:, 2], w - 1 - boxes[:, 0]
    back = fl.scheme.mirror_points(run(fl, np.ascontiguousarray(img[:, ::-1]), boxes=mboxes).landmarks, w)
    start = (pts + back) / 2
    unc = np.full(len(boxes), 1e9) if guess else np.nan_to_num(nme(pts, back, fl.scheme), nan=1e9)
    return start, boxes, unc


def _project(project: str, create_scheme: str | None = None, model: str = "") -> Project:
    if create_scheme:
        return Project.create(ANNOTATIONS_DIR, project, create_scheme, model)
    return Project.open(ANNOTATIONS_DIR, project)


def queue_rows(proj: Project) -> list[list]:
    return [[it.id, it.name, len(it.faces), "—" if it.uncertainty >= 1e9 else round(100 * it.uncertainty, 2), it.status]
            for it in proj.queue()]


def show_item(proj: Project, item_id: str | None) -> dict:
    queue = proj.queue()
    if not queue:
        return {}
    ids = [it.id for it in queue]
    pos = ids.index(item_id) if item_id in ids else 0
    item = queue[pos]
    return editor_value(proj.id, item, pos, len(queue), proj.image_path(item), proj.scheme,
                        done=sum(it.status == "done" for it in queue))


def progress_md(proj: Project, note: str = "") -> str:
    c = proj.counts()
    total = sum(c.values())
    return (f"**Project `{proj.id}`** · {total} image{'s' * (total != 1)} · {c['done']} done · {c['edited']} edited · "
            f"{c['predicted']} to check" + (f"\n\n{note}" if note else ""))


def _split_uploads(files: list[str] | None) -> tuple[list[Path], list[Path]]:
    images, anns = [], []
    for f in files or []:
        p = Path(f)
        (anns if p.suffix.lower() in ANNOTATION_SUFFIXES else images).append(p)
    return images, anns


@readable_errors
def annotate_load(project: str, files: list[str] | None = None, dataset: str = "", n_images: float = 10,
                  start_from: str = "prediction", model: str = "", progress=gr.Progress()):
    """Add images to the project, each with starting points, and open the most uncertain one.

    Sources: uploaded photos (with an optional .xml/.json/.pts among them to resume from its
    points), and/or ``n_images`` photos of a dataset (``start_from="dataset"`` keeps its points)."""
    fl = load_landmarker(model)
    project = (project or "").strip() or new_project_id()
    proj = _project(project, fl.scheme.name, model_path(model))
    images, anns = _split_uploads(files)
    jobs = []  # (image source, name, given faces (N,K,2) or None, boxes or None, label)
    given: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for a in anns:
        if a.suffix.lower() == ".pts":
            given[a.stem] = (read_pts(a, fl.scheme.name)[None], None)
            continue
        aset = read_annotations(a, fl.scheme.name)
        for im in aset.images:
            faces = [f for f in im.faces if f.num_points]
            if faces:
                given[Path(im.path.replace("\\", "/")).stem] = (
                    np.stack([f.landmarks for f in faces]), np.stack([f.box_or_landmark_box() for f in faces]))
    for p in images:
        g = given.get(p.stem)
        jobs.append((p, p.name, None if g is None else g[0], None if g is None else g[1], "upload"))
    unmatched = set(given) - {p.stem for p in images}
    if anns and unmatched and not images:
        raise gr.Error(f"{anns[0].name} lists {len(given)} annotated images: upload those photos together with it "
                       f"(e.g. {sorted(unmatched)[0]}.*)")
    if (dataset or "").strip() and not files:
        # The next ``n_images`` photos of the dataset that this project does not hold yet.
        ds = get_dataset(dataset)
        have = {(it.source, it.name) for it in proj.items()}
        paths = ds["image_path"] if "image_path" in ds.column_names else [f"{i}.png" for i in range(len(ds))]
        sources = ds["source"] if "source" in ds.column_names else ["dataset"] * len(ds)
        by_image: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(zip(sources, paths)):
            if (key[0], _name(key[1])) in have:
                continue
            if key in by_image or len(by_image) < int(n_images or 1):
                by_image.setdefault(key, []).append(i)
        for (source, path), rows in by_image.items():
            sub = ds.select(rows)
            pts = np.asarray(sub["landmarks"], np.float32) if start_from == "dataset" else None
            jobs.append((np.asarray(sub[0]["image"].convert("RGB")), _name(path), pts,
                         None if pts is None else landmark_box(pts), source))
    if not jobs:
        raise gr.Error("Nothing to load: upload photos (optionally with an .xml/.pts to resume), or name a dataset.")
    for src, name, pts, boxes, label in progress.tqdm(jobs, desc="Predicting starting points"):
        img = to_rgb_array(src, fl.max_pixels)
        if pts is not None and pts.shape[1] != fl.scheme.num_points:
            raise gr.Error(f"{name}: {pts.shape[1]} points per face, the model's scheme has {fl.scheme.num_points}")
        start, b, unc = predict_with_uncertainty(fl, img, boxes)
        predicted = faces_to_json(start, b)
        faces = predicted if pts is None else faces_to_json(pts, boxes)
        proj.add_image(img if isinstance(src, np.ndarray) else src, name, faces, float(unc.max()),
                       "predicted" if pts is None else "edited", label, predicted=predicted,
                       face_uncertainty=unc.tolist())
    top = proj.queue()[0].id
    note = f"Loaded {len(jobs)} image{'s' * (len(jobs) != 1)}; the queue starts with the most uncertain."
    return proj.id, show_item(proj, top), queue_rows(proj), progress_md(proj, note)


@readable_errors
def annotate_resume(project: str):
    """Reopen an autosaved project by its id."""
    proj = _project(project)
    return proj.id, show_item(proj, None), queue_rows(proj), progress_md(proj, "Resumed: every saved edit is back.")


@readable_errors
def new_project():
    pid = new_project_id()
    return pid, {}, [], f"New project `{pid}`: load images to start."


def _save_if_dirty(proj: Project, value: dict | None, status: str | None = None) -> str | None:
    if not isinstance(value, dict) or not value.get("item"):
        return None
    if value.get("dirty") or status:
        faces = faces_from_value(value) if value.get("faces") is not None else proj.get(value["item"]).faces
        proj.save_faces(value["item"], faces, status)
    return value["item"]


def add_face_in_box(proj: Project, item_id: str, faces: list[dict], box, model: str = ""):
    """The editor's ``add_face``: the model's points inside a drawn box become a new face."""
    b = np.asarray(box, np.float64).reshape(-1)
    if b.shape != (4,) or not np.isfinite(b).all():
        raise gr.Error("add_face: the box must be 4 numbers x1, y1, x2, y2")
    item = proj.get(item_id)
    fl = load_landmarker(model)
    start, boxes, _ = predict_with_uncertainty(fl, to_rgb_array(proj.image_path(item)), b[None].astype(np.float32))
    return proj.save_faces(item_id, faces + faces_to_json(start, boxes))


@readable_errors
def save_edit(project: str, edit: dict | None, model: str = ""):
    """Autosave: the editor sends ``{"item", "revision", "faces", "dirty": true, "op"}`` (see
    facelm.editor); ``op == "add_face"`` adds the model's face in ``edit["box"]`` and reopens the item."""
    if not isinstance(edit, dict) or not edit.get("dirty") or not edit.get("item"):
        return gr.skip(), gr.skip(), gr.skip()
    proj = _project(project)
    if edit.get("op") == "add_face":
        item = add_face_in_box(proj, edit["item"], faces_from_value(edit), edit.get("box"), model)
        return (show_item(proj, item.id), queue_rows(proj),
                progress_md(proj, f"Added a face to image {item.id} ({item.name})."))
    item = proj.save_faces(edit["item"], faces_from_value(edit))
    return gr.skip(), queue_rows(proj), progress_md(proj, f"Saved image {item.id} ({item.name}) at {time.strftime('%H:%M:%S')}.")


def _step(project: str, value: dict | None, delta: int, status: str | None = None):
    proj = _project(project)
    current = _save_if_dirty(proj, value, status)
    ids = [it.id for it in proj.queue()]
    if not ids:
        raise gr.Error("Load images first.")
    pos = ids.index(current) if current in ids else -delta if delta > 0 else 0
    new = int(np.clip(pos + delta, 0, len(ids) - 1))
    note = "That was the last image in the queue." if delta > 0 and pos + delta >= len(ids) else \
        "This is the first image." if delta < 0 and pos + delta < 0 else ""
    return show_item(proj, ids[new]), queue_rows(proj), progress_md(proj, note)


@readable_errors
def annotate_next(project: str, value: dict | None = None):
    return _step(project, value, +1)


@readable_errors
def annotate_prev(project: str, value: dict | None = None):
    return _step(project, value, -1)


@readable_errors
def annotate_done(project: str, value: dict | None = None):
    """Mark the open image done (with its current points) and open the next one."""
    return _step(project, value, +1, status="done")


@readable_errors
def annotate_goto(project: str, item_id: str, value: dict | None = None):
    proj = _project(project)
    _save_if_dirty(proj, value)
    return show_item(proj, str(item_id)), queue_rows(proj), progress_md(proj)


def goto_selected(project: str, value: dict | None, evt: gr.SelectData):
    row = evt.row_value or []
    if not row:
        return gr.skip(), gr.skip(), gr.skip()
    return annotate_goto(project, str(row[0]), value)


@readable_errors
def repredict(project: str, value: dict | None, model: str = ""):
    """Predict the open image again inside its (adjusted) boxes."""
    if not isinstance(value, dict) or not value.get("item"):
        raise gr.Error("Open an image first.")
    proj = _project(project)
    item = proj.get(value["item"])
    faces = faces_from_value(value) or item.faces
    boxes = np.asarray([f["box"] for f in faces], np.float32).reshape(-1, 4)
    fl = load_landmarker(model)
    img = to_rgb_array(proj.image_path(item))
    start, b, _ = predict_with_uncertainty(fl, img, boxes)
    proj.save_faces(item.id, faces_to_json(start, b))
    return show_item(proj, item.id), queue_rows(proj), progress_md(proj, "Predicted again inside the box.")


@readable_errors
def export(project: str, which: str = "edited and done", integer: bool = False):
    """dlib XML (+ COCO JSON, a .pts zip and a dataset zip) of the project's edited/done images."""
    proj = _project(project)
    statuses = ("predicted", "edited", "done") if which == "all" else ("edited", "done")
    files = proj.export(statuses, precision=0 if integer else None)
    n = len(proj.annotation_set(statuses).images)
    copies = proj.copy_exports(files, _tmpdir("export"))
    rounding = "integer pixels (dlib's own loader needs them; points move by up to 0.5 px)" if integer else \
        "exact float coordinates (re-importing gives back exactly the same points)"
    md = (f"Exported **{n} image{'s' * (n != 1)}** to `{files['xml']}` with {rounding}. "
          "Image paths in the XML are relative to it.")
    return copies, md


# ----------------------------------------------------------------------------------------- Retrain
def _retrain_plan(project: str, model: str, epochs: float, max_faces: float) -> tuple[list[str], Path, Path]:
    proj = Project(ANNOTATIONS_DIR, project)  # the command can be shown before anything is exported
    xml = proj.dir / "annotations.xml"
    out = proj.dir / "retrain" / time.strftime("%Y%m%d-%H%M%S")
    fl = load_landmarker(model)
    cmd = [sys.executable, "-m", "train.train", "--data", str(xml), "--val-data", str(proj.dir / "annotations_val.xml"),
           "--init-from", model_path(model), "--scheme", fl.scheme.name, "--input-size", str(fl.model.input_size),
           "--crop-scale", str(fl.model.crop_scale), "--in-chans", str(fl.model.in_chans),
           "--epochs", str(int(epochs)), "--max-faces", str(int(max_faces)), "--batch-size", "16", "--lr", "5e-4",
           "--warmup-epochs", "0", "--patience", str(int(epochs)), "--num-workers", "0", "--time-budget-min", "10",
           "--cache-dir", str(out / "cache"), "--out", str(out)]
    return cmd, xml, out


@readable_errors
def retrain_command(project: str, model: str = "", epochs: float = 5, max_faces: float = 200) -> str:
    """The exact training command the Retrain button runs (run it yourself on a bigger machine)."""
    cmd, _, _ = _retrain_plan(project, model, epochs, max_faces)
    args = cmd[3:]  # flag / value pairs after "python -m train.train"
    return " \\\n".join(["python -m train.train"] + ["  " + " ".join(shlex.quote(a) for a in args[i:i + 2])
                                                      for i in range(0, len(args), 2)])


def _nme_on_export(spec: str, xml: Path) -> np.ndarray:
    fl = load_landmarker(spec)
    aset = read_annotations(xml)
    errors = []
    for im in aset.images:
        img = to_rgb_array(Path(aset.root) / im.path)
        gt = np.stack([f.landmarks for f in im.faces])
        errors.extend(nme(run(fl, img, boxes=landmark_box(gt), scheme=aset.scheme).landmarks, gt, aset.scheme))
    return np.asarray(errors)


def retrain(project: str, model: str = "", epochs: float = 5, max_faces: float = 200, progress=gr.Progress()):
    """Fine-tune the current model on the project's export (a short CPU run of train/train.py),
    streaming its log, then compare NME before and after on the same faces."""
    try:
        cmd, xml, out = _retrain_plan(project, model, epochs, max_faces)
        if not xml.is_file():
            raise gr.Error("Export the project first (Annotate tab → Export): training reads annotations.xml.")
        shutil.copyfile(xml, xml.with_name("annotations_val.xml"))
    except (FacelmError, ValueError, OSError) as e:
        raise gr.Error(str(e)) from e
    log = "$ " + retrain_command(project, model, epochs, max_faces) + "\n"
    yield log, gr.skip(), "Training…", gr.skip()
    env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_MININTERVAL="5")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        for line in proc.stdout:
            line = line.strip()
            if not line or "%|" in line:  # tqdm bars: the epoch summaries say it better
                continue
            log += line + "\n"
            if line.startswith("epoch ") and ":" in line:
                done = line.split(":")[0].split()[1]
                if done.isdigit():
                    progress(int(done) / max(int(epochs), 1), desc=f"epoch {done}/{int(epochs)}")
            yield log[-20000:], gr.skip(), "Training…", gr.skip()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
    best = out / "best"
    if proc.returncode != 0 or not (best / "model.safetensors").is_file():
        yield log, gr.skip(), f"Training failed (exit code {proc.returncode}); see the log.", gr.skip()
        return
    progress(1.0, desc="Comparing before and after")
    before, after = _nme_on_export(model, xml), _nme_on_export(str(best), xml)
    table = [["before (" + (model or DEFAULT_MODEL or "bundled default") + ")", len(before),
              round(100 * float(np.nanmean(before)), 2), round(100 * float(np.nanmedian(before)), 2)],
             [f"after ({best})", len(after), round(100 * float(np.nanmean(after)), 2),
              round(100 * float(np.nanmedian(after)), 2)]]
    md = (f"Fine-tuned model saved in `{best}`. NME on the {len(after)} exported faces went from "
          f"{100 * np.nanmean(before):.2f}% to {100 * np.nanmean(after):.2f}% (the faces it trained on: "
          "a check that it learned your corrections, not a held-out score).")
    yield log, table, md, str(best)


# -------------------------------------------------------------------------------------------- UI
THEME = gr.themes.Soft(
    primary_hue="indigo", secondary_hue="sky", neutral_hue="slate",
    font=[gr.themes.LocalFont("IBM Plex Sans"), "ui-sans-serif", "system-ui", "sans-serif"],
    font_mono=[gr.themes.LocalFont("IBM Plex Mono"), "ui-monospace", "monospace"],
).set(block_radius="12px", button_large_radius="10px", button_small_radius="8px")

CSS = """
.gradio-container { max-width: 1320px !important; margin: auto; }
#flm-header { display: flex; align-items: center; gap: 16px; padding: 18px 22px; border-radius: 16px;
  background: linear-gradient(120deg, #1e1b4b 0%, #312e81 45%, #0e7490 100%); color: #fff; margin-bottom: 4px; }
#flm-header .logo { flex: none; }
#flm-header h1 { margin: 0; font-size: 26px; font-weight: 700; color: #fff; letter-spacing: -0.01em; }
#flm-header p { margin: 2px 0 0; color: #c7d2fe; font-size: 14px; }
#flm-header .pills { margin-left: auto; display: flex; gap: 8px; flex-wrap: wrap; }
#flm-header .pill { background: rgba(255,255,255,.12); border: 1px solid rgba(255,255,255,.25); border-radius: 999px;
  padding: 3px 12px; font-size: 12px; color: #e0e7ff; }
#flm-modelbar { align-items: end; }
#flm-modelinfo { padding: 6px 4px 0; font-size: 13px; }
.flm-hint { font-size: 13px; color: var(--body-text-color-subdued); }
.gt { color: #00c800; font-weight: 700; } .pred { color: #e60000; font-weight: 700; }
.worst { color: #ff00ff; font-weight: 700; }
#flm-nav button { min-width: 0; }
kbd { background: var(--neutral-100); border: 1px solid var(--border-color-primary); border-bottom-width: 2px;
  border-radius: 4px; padding: 0 5px; font-size: 12px; font-family: var(--font-mono); }
"""

HEADER = """
<div id="flm-header">
  <svg class="logo" viewBox="0 0 48 48" width="46" height="46" aria-hidden="true">
    <ellipse cx="24" cy="25" rx="15" ry="19" fill="none" stroke="#a5b4fc" stroke-width="2.5"/>
    <g fill="#fda4af"><circle cx="17" cy="20" r="2.4"/><circle cx="31" cy="20" r="2.4"/><circle cx="24" cy="27" r="2.2"/>
    <circle cx="18" cy="34" r="2"/><circle cx="24" cy="36" r="2"/><circle cx="30" cy="34" r="2"/></g>
    <path d="M17 20 L24 27 L31 20 M18 34 Q24 38 30 34" fill="none" stroke="#67e8f9" stroke-width="1.4"/>
  </svg>
  <div><h1>facelm</h1><p>Face landmarks you can see, fix and retrain</p></div>
  <div class="pills"><span class="pill">68 · 15 · 5 points</span><span class="pill">runs on CPU</span>
  <span class="pill">dlib XML · 300-W .pts · COCO</span></div>
</div>
"""

SHORTCUTS = ("<span class='flm-hint'>Drag points or box corners · click to select, <kbd>Shift</kbd>+click or "
             "<kbd>Alt</kbd>+drag for several, <kbd>1</kbd>–<kbd>5</kbd> a whole part · wheel to zoom, drag the "
             "background to pan · <kbd>←</kbd>/<kbd>→</kbd> previous/next · <kbd>D</kbd> done · <kbd>Ctrl</kbd>+<kbd>Z</kbd> "
             "undo · <kbd>Ctrl</kbd>+<kbd>Shift</kbd>+<kbd>Z</kbd> redo · <kbd>Shift</kbd>+arrows nudge · <kbd>O</kbd> occluded · "
             "<kbd>A</kbd> or <kbd>Shift</kbd>+drag add a face · <kbd>Delete</kbd> delete the selected face · <kbd>0</kbd> fit. "
             "Every edit is saved as you go.</span>")


def _examples() -> list[str]:
    folder = Path(DEMO_DATA) / "afw" if DEMO_DATA else None
    if folder and folder.is_dir():
        return [str(p) for p in sorted(folder.glob("*.jpg"))[:4]]
    return []


with gr.Blocks(title="facelm · face landmarks") as demo:
    gr.HTML(HEADER)
    with gr.Row(elem_id="flm-modelbar"):
        model_in = gr.Textbox(label="Model", value=DEFAULT_MODEL, scale=5, max_lines=1,
                              placeholder=f"bundled default · a bundled model ({', '.join(bundled_models())}) · "
                                          "a Hugging Face Hub id (org/name) · a local model folder")
        load_btn = gr.Button("Load model", variant="secondary", scale=1, min_width=140)
    model_md = gr.Markdown(elem_id="flm-modelinfo")

    with gr.Tabs():
        # ---------------------------------------------------------------- Predict
        with gr.Tab("Predict", id="predict"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=1):
                    photo = PhotoInput(label="Photo", type="filepath", sources=["upload", "webcam", "clipboard"],
                                       height=380, elem_id="flm-photo")
                    scheme_in = gr.Radio(SCHEMES, value="ibug68", label="Landmark scheme")
                    # On by default here: with detector boxes it cuts 300-W validation NME from 3.53 to 3.39 %, and
                    # its cost (3x the model's ~10 ms per face) is small beside the detector's 200-280 ms per photo.
                    refine_in = gr.Checkbox(True, label="Refine (second stage framed on the first prediction: "
                                                        "more accurate, 3x the model time)")
                    predict_btn = gr.Button("Find landmarks", variant="primary", size="lg", elem_id="flm-predict")
                    if _examples():
                        gr.Examples(_examples(), inputs=photo, label="Try a photo from 300-W (AFW)")
                with gr.Column(scale=1):
                    drawn_out = gr.Image(label="Landmarks", type="numpy", height=380, interactive=False,
                                         format="png", elem_id="flm-drawn")
                    predict_md = gr.Markdown("Upload a photo: every face gets its landmarks.", elem_id="flm-predict-md")
                    files_out = gr.File(label="Downloads", file_count="multiple", interactive=False, visible=False)
                    with gr.Accordion("Result as JSON", open=False):
                        json_out = gr.JSON(label="Result")

        # ---------------------------------------------------------------- Compare
        with gr.Tab("Compare", id="compare"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=2):
                    with gr.Tabs():
                        with gr.Tab("From a dataset"):
                            cmp_data = gr.Textbox(DEMO_DATA, label="Dataset", max_lines=1,
                                                  placeholder="Hub dataset id or a local folder / annotation file")
                            cmp_index = gr.Slider(0, 1000, value=0, step=1, label="Face")
                            with gr.Row():
                                cmp_random = gr.Button("Random face")
                                cmp_btn = gr.Button("Compare", variant="primary", elem_id="flm-compare")
                            gr.Markdown("The model predicts inside each face's ground-truth box (the tight box "
                                        "of its annotated points, as in 300-W evaluations), so the error is the "
                                        "landmark model's alone, not the face detector's. NME is the mean point "
                                        "error over the distance between the outer eye corners.",
                                        elem_classes="flm-hint")
                        with gr.Tab("Upload"):
                            cmp_photo = PhotoInput(label="Photo", type="filepath", sources=["upload"], height=220)
                            cmp_ann = gr.File(label="Its annotation (.pts, dlib .xml or COCO .json)",
                                              file_types=[".pts", ".xml", ".json"])
                            cmp_up_btn = gr.Button("Compare", variant="primary")
                with gr.Column(scale=3):
                    cmp_img = gr.Image(label="Ground truth vs prediction", type="numpy", height=440,
                                       interactive=False, format="png")
                    cmp_md = gr.Markdown("Pick a face: <span class='gt'>●</span> ground truth, "
                                         "<span class='pred'>●</span> prediction, the worst points ringed.", elem_id="flm-cmp-md")
                    cmp_table = gr.Dataframe(headers=["face", "NME %", "worst points (error)"],
                                             datatype=["number", "number", "str"], interactive=False,
                                             label="Per face")
            gr.Markdown("### Evaluate on the dataset")
            with gr.Row(equal_height=False):
                with gr.Column(scale=2):
                    eval_n = gr.Slider(10, 1000, value=100, step=10, label="Faces (spread over the dataset)")
                    eval_btn = gr.Button("Evaluate", variant="primary", elem_id="flm-evaluate")
                    eval_md = gr.Markdown("NME, failure rate (FR) and area under the CED curve (AUC) per subset, "
                                          "with the model predicting in each face's ground-truth box.",
                                          elem_id="flm-eval-md")
                with gr.Column(scale=3):
                    eval_plot = gr.Image(label="Cumulative error distribution", type="filepath", height=340,
                                         interactive=False)
            eval_table = gr.Dataframe(headers=["subset", "faces", "NME %", "median %", "FR@0.08 %", "AUC@0.08",
                                               "FR@0.10 %", "AUC@0.10"], interactive=False, label="Results")

        # ---------------------------------------------------------------- Annotate
        with gr.Tab("Annotate", id="annotate"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=320):
                    project_in = gr.Textbox(new_project_id, label="Project (your autosave folder)",
                                            max_lines=1, info="Keep this id to resume later.", elem_id="flm-project")
                    with gr.Row():
                        new_btn = gr.Button("New project", size="sm", variant="secondary", min_width=80)
                        resume_btn = gr.Button("Resume", size="sm", variant="secondary", min_width=80)
                    with gr.Accordion("Load images", open=True):
                        ann_files = gr.File(label="Photos (add an .xml / .pts to resume from its points)",
                                            file_count="multiple",
                                            file_types=["image", ".xml", ".pts", ".json"], height=120,
                                            elem_id="flm-ann-files")
                        ann_data = gr.Textbox(DEMO_DATA, label="…or a dataset (when no photos are uploaded)", max_lines=1,
                                              info="Each Load adds the next images of it.")
                        with gr.Row():
                            ann_n = gr.Slider(1, 100, value=8, step=1, label="Images")
                            ann_start = gr.Radio([("model", "prediction"), ("dataset", "dataset")],
                                                 value="prediction", label="Start from")
                        ann_load_btn = gr.Button("Load", variant="primary", elem_id="flm-load")
                    ann_md = gr.Markdown(elem_id="flm-ann-md")
                    with gr.Accordion("Export", open=True):
                        exp_which = gr.Radio(["edited and done", "all"], value="edited and done", label="Images")
                        exp_int = gr.Checkbox(False, label="Integer coordinates (dlib-compatible; rounds points)")
                        exp_btn = gr.Button("Export XML · .pts · COCO", variant="primary", elem_id="flm-export")
                        exp_files = gr.File(label="Exports", file_count="multiple", interactive=False, visible=False)
                        exp_md = gr.Markdown(elem_id="flm-export-md")
                with gr.Column(scale=3):
                    editor = gr.HTML(value={}, html_template=EDITOR_TEMPLATE, css_template=EDITOR_CSS,
                                     js_on_load=EDITOR_JS, elem_id="flm-editor", apply_default_css=False)
                    with gr.Row(elem_id="flm-nav"):
                        prev_btn = gr.Button("◀ Previous", elem_id="flm-prev")
                        repredict_btn = gr.Button("↻ Re-predict in box", elem_id="flm-repredict")
                        done_btn = gr.Button("✓ Done, next", variant="primary", elem_id="flm-done")
                        next_btn = gr.Button("Next ▶", elem_id="flm-next")
                    gr.HTML(SHORTCUTS)
                    queue_df = gr.Dataframe(headers=["#", "image", "faces", "uncertainty %", "status"],
                                            datatype=["str", "str", "number", "number", "str"], interactive=False,
                                            label="Queue: most uncertain first (click a row to open it)",
                                            max_height=260, column_widths=["8%", "52%", "10%", "15%", "15%"])

        # ---------------------------------------------------------------- Retrain
        with gr.Tab("Retrain", id="retrain"):
            gr.Markdown("Fine-tune the current model on the project's exported annotations "
                        "(`annotations.xml`, written by **Export** in the Annotate tab) with `train/train.py`, "
                        "then compare NME before and after on the same faces. A short CPU run; for a real "
                        "run copy the command to a machine with a GPU.")
            with gr.Row(equal_height=False):
                with gr.Column(scale=1):
                    rt_epochs = gr.Slider(1, 50, value=5, step=1, label="Epochs")
                    rt_max = gr.Slider(1, 2000, value=200, step=1, label="Max faces")
                    rt_cmd_btn = gr.Button("Show the command", elem_id="flm-rt-cmd")
                    rt_btn = gr.Button("Fine-tune now", variant="primary")
                    rt_use_btn = gr.Button("Use the fine-tuned model", interactive=True)
                with gr.Column(scale=2):
                    rt_cmd = gr.Code(label="Command", language="shell", interactive=False, lines=4, wrap_lines=True,
                                     elem_id="flm-retrain")
                    rt_md = gr.Markdown()
                    rt_table = gr.Dataframe(headers=["model", "faces", "NME %", "median %"], interactive=False,
                                            label="Before / after")
                    rt_log = gr.Textbox(label="Training log", lines=12, max_lines=12, autoscroll=True)
                    rt_best = gr.Textbox(visible=False)

    gr.Markdown("<div class='flm-hint' style='text-align:center'>facelm · every button is an API endpoint "
                "(<code>gradio_client</code>): predict, compare, compare_upload, evaluate, annotate_load, "
                "save_edit, export, retrain…</div>")

    # ---------------------------------------------------------------- events
    demo.load(describe_model, model_in, model_md, api_name=False)
    demo.load(lambda d: gr.Slider(maximum=len(get_dataset(d)) - 1) if (d or "").strip() else gr.skip(), cmp_data,
              cmp_index, api_name=False)
    load_btn.click(load_model, model_in, model_md, api_name="load_model")
    model_in.submit(load_model, model_in, model_md, api_name=False)

    show_files = dict(fn=lambda f: gr.File(visible=bool(f)), api_name=False, show_progress="hidden")
    predict_btn.click(predict, [photo, scheme_in, model_in, refine_in], [drawn_out, predict_md, json_out, files_out],
                      api_name="predict").then(inputs=files_out, outputs=files_out, **show_files)

    cmp_btn.click(compare, [cmp_data, cmp_index, model_in], [cmp_img, cmp_table, cmp_md], api_name="compare")
    cmp_index.release(compare, [cmp_data, cmp_index, model_in], [cmp_img, cmp_table, cmp_md], api_name=False)
    cmp_random.click(lambda d: int(np.random.randint(len(get_dataset(d)))), cmp_data, cmp_index, api_name=False) \
        .then(compare, [cmp_data, cmp_index, model_in], [cmp_img, cmp_table, cmp_md], api_name=False)
    cmp_data.submit(lambda d: gr.Slider(maximum=len(get_dataset(d)) - 1, value=0), cmp_data, cmp_index,
                    api_name=False)
    cmp_up_btn.click(compare_upload, [cmp_photo, cmp_ann, model_in], [cmp_img, cmp_table, cmp_md],
                     api_name="compare_upload")
    eval_btn.click(evaluate, [cmp_data, eval_n, model_in], [eval_table, eval_plot, eval_md], api_name="evaluate",
                   concurrency_limit=1, concurrency_id="heavy")

    nav_out = [editor, queue_df, ann_md]
    ann_load_btn.click(annotate_load, [project_in, ann_files, ann_data, ann_n, ann_start, model_in],
                       [project_in, *nav_out], api_name="annotate_load", concurrency_limit=2)
    resume_btn.click(annotate_resume, project_in, [project_in, *nav_out], api_name="annotate_resume")
    new_btn.click(new_project, None, [project_in, *nav_out], api_name="new_project")
    editor.change(save_edit, [project_in, editor, model_in], [editor, queue_df, ann_md], api_name="save_edit",
                  trigger_mode="always_last", show_progress="hidden")
    next_btn.click(annotate_next, [project_in, editor], nav_out, api_name="annotate_next", show_progress="hidden")
    prev_btn.click(annotate_prev, [project_in, editor], nav_out, api_name="annotate_prev", show_progress="hidden")
    done_btn.click(annotate_done, [project_in, editor], nav_out, api_name="annotate_done", show_progress="hidden")
    repredict_btn.click(repredict, [project_in, editor, model_in], nav_out, api_name="repredict")
    queue_df.select(goto_selected, [project_in, editor], nav_out, api_name=False, show_progress="hidden")
    exp_btn.click(export, [project_in, exp_which, exp_int], [exp_files, exp_md], api_name="export") \
        .then(inputs=exp_files, outputs=exp_files, **show_files)

    rt_cmd_btn.click(retrain_command, [project_in, model_in, rt_epochs, rt_max], rt_cmd, api_name="retrain_command")
    rt_btn.click(retrain_command, [project_in, model_in, rt_epochs, rt_max], rt_cmd, api_name=False) \
        .then(retrain, [project_in, model_in, rt_epochs, rt_max], [rt_log, rt_table, rt_md, rt_best],
              api_name="retrain", concurrency_limit=1, concurrency_id="heavy")
    rt_use_btn.click(lambda b: (b or gr.skip()), rt_best, model_in, api_name=False) \
        .then(load_model, model_in, model_md, api_name=False)

demo.queue(default_concurrency_limit=2, max_size=64)

LAUNCH_KWARGS = dict(theme=THEME, css=CSS, max_file_size=MAX_FILE_SIZE, show_error=True,
                     allowed_paths=[str(Path(DEMO_DATA).parent)] if DEMO_DATA and Path(DEMO_DATA).exists() else [])

if __name__ == "__main__":
    try:  # fail fast: a model that cannot load is reported before the server starts
        load_landmarker(DEFAULT_MODEL)
    except ModelLoadError as e:
        sys.exit(f"facelm app: cannot load the model {DEFAULT_MODEL or str(DEFAULT_MODEL_DIR)!r}:\n  {e}\n"
                 "Set FACELM_MODEL to a local model folder (config.json + model.safetensors) or a Hub id "
                 "that is reachable or in the local cache.")
    demo.launch(**LAUNCH_KWARGS)
