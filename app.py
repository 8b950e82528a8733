"""facelm: face landmarks you can see, fix and retrain. A Gradio app, thin over the facelm package.

    python app.py                      # http://127.0.0.1:7860 (also the entry point of a HF Space)

Tabs: Predict (photo or webcam -> landmarks and downloads), Video (a live webcam or a video file ->
landmarks followed and smoothed, an overlay video and JSON), Compare (ground truth vs prediction,
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
    FACELM_YUNET            YuNet face detector weights (default: the Hugging Face cache, else
                            models/yunet/ beside the demo data; without them the Haar detector runs)
    FACELM_MAX_FILE_SIZE    upload limit (default 20mb)
    FACELM_MAX_VIDEO_FRAMES frames of an uploaded video that are tracked (default 600)
"""
from __future__ import annotations

import functools
import os
import sys
import tempfile
import threading
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from facelm.hub_status import hub_reachable  # noqa: E402  (imports no huggingface_hub)

# No network: use the local cache only, so a Hub id that is not cached fails at once with a clear
# message instead of retrying for a minute (huggingface_hub reads this when it is first imported).
if "HF_HUB_OFFLINE" not in os.environ and not hub_reachable():
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from facelm import FaceLandmarker, FacelmError, ModelLoadError, get_scheme  # noqa: E402
from facelm import __version__ as facelm_version  # noqa: E402
from facelm import annotate_session  # noqa: E402
from facelm.annotate_import import (add_photos, check_point_count, dataset_photos, match_uploads,  # noqa: E402
                                    split_uploads)
from facelm.annotate_session import View as AnnotateView  # noqa: E402
from facelm.annotation import landmark_box  # noqa: E402
from facelm.app_ui import CSS, HEADER, SHORTCUTS  # noqa: E402
from facelm.annotation_store import Project, ProjectError, faces_to_json, new_project_id  # noqa: E402
from facelm.comparison import FitCheck, check_fit, evaluate_dataset  # noqa: E402
from facelm.detect.yunet import MIN_SCORE as YUNET_MIN_SCORE  # noqa: E402
from facelm.draw import draw_captions, draw_comparison, draw_landmarks, worst_points  # noqa: E402
from facelm.editor import CSS as EDITOR_CSS, JS as EDITOR_JS, TEMPLATE as EDITOR_TEMPLATE  # noqa: E402
from facelm.hub import DEFAULT_MODEL_DIR, bundled_models  # noqa: E402
from facelm.image import to_rgb_array  # noqa: E402
from facelm.io import read_annotations  # noqa: E402
from facelm.io.pts import read_pts  # noqa: E402
from facelm.metrics import nme, plot_ced, point_errors  # noqa: E402
from facelm.prediction_export import prediction_document, prediction_files  # noqa: E402
from facelm.project_access import ResumeThrottle, check_typed_id  # noqa: E402
from facelm.retrain_plan import RetrainPlan, epoch_of, nme_on_faces, plan_retrain, run_lines, split_export  # noqa: E402
from facelm.start_points import predict_with_uncertainty  # noqa: E402
from facelm.video import Tracker, track_video_file, webcam_step  # noqa: E402
from facelm.video_io import VideoError  # noqa: E402

# ---------------------------------------------------------------------------------------- settings
REPO = Path(__file__).resolve().parent
DEFAULT_MODEL = os.environ.get("FACELM_MODEL", "").strip()
_demo = REPO.parent / "shared" / "data" / "300w"
DEMO_DATA = os.environ.get("FACELM_DEMO_DATA", str(_demo) if _demo.exists() else "").strip()
# YuNet's weights beside the demo data (its sibling models/yunet/), for machines without the Hub.
_demo_yunet = sorted((Path(DEMO_DATA).parent / "models" / "yunet").glob("*.onnx")) if DEMO_DATA else []
if _demo_yunet:
    os.environ.setdefault("FACELM_YUNET", str(_demo_yunet[-1]))
ANNOTATIONS_DIR = Path(os.environ.get("FACELM_ANNOTATIONS_DIR", REPO / "annotations"))
LOCAL_PATHS = os.environ.get("FACELM_LOCAL_PATHS", "restricted" if os.environ.get("SPACE_ID") else "any")
RESTRICTED = LOCAL_PATHS != "any"
"""A shared app: local paths limited, typed project names refused, failed project look-ups slowed."""
MAX_FILE_SIZE = os.environ.get("FACELM_MAX_FILE_SIZE", "20mb")
torch.set_num_threads(int(os.environ.get("FACELM_THREADS", max(1, min(4, (os.cpu_count() or 2) // 2)))))

SCHEMES = [("68 points (iBUG 300-W)", "ibug68"), ("15 points (Kaggle)", "kaggle15"), ("5 points (CelebA)", "celeba5")]


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
    det = f"face detector: {fl.detector.name}" if fl.detector is not None else "no face detector (boxes needed)"
    return (f"**Model:** `{name}` · {fl.scheme.name}, {fl.scheme.num_points} points · "
            f"{m.input_size}px input · {sum(p.numel() for p in m.parameters()) / 1e6:.2f} M params · {det}")


@readable_errors
def load_model_markdown(spec: str) -> str:
    """Load the model and describe it (Markdown for the model bar)."""
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
def predict(image: str | None, scheme: str = "ibug68", model: str = "", refine: bool = True,
            min_score: float = YUNET_MIN_SCORE):
    """Photo -> (drawing, summary, JSON result, downloads, faces table, faces to keep, the result)."""
    if image is None:
        raise gr.Error("Upload a photo first (or take one with the webcam).")
    fl = load_landmarker(model)
    if fl.detector is None:
        raise gr.Error("This model has no face detector available; use the Compare tab with known boxes.")
    img = to_rgb_array(image, fl.max_pixels)
    faces = run(fl, img, scheme=scheme, refine=bool(refine), min_score=float(min_score))
    meta = {"model": (model or "").strip() or DEFAULT_MODEL or "bundled default", "scheme": faces.scheme,
            "detector": faces.detector, "min_score": float(min_score), "refine": bool(refine)}
    shown = {"image": img, "name": _name(image), "faces": faces, "meta": meta, "note": fl.detector.fallback_reason}
    keep = list(range(len(faces)))
    choices = [(f"face {i + 1} · score {s:.2f}", i) for i, s in enumerate(faces.scores)]
    return (*show_prediction(shown, keep), gr.CheckboxGroup(choices=choices, value=keep, visible=len(faces) > 1),
            shown)


@readable_errors
def keep_faces(shown: dict | None, keep: list[int] | None):
    """The result without the faces left out of ``keep``: drawing, summary, JSON and downloads rebuilt."""
    if not shown:
        raise gr.Error("Find the landmarks of a photo first.")
    return show_prediction(shown, keep or [])


def show_prediction(shown: dict, keep: list[int]):
    """(drawing, summary, JSON result, downloads, faces table) of the faces ``keep`` of a prediction."""
    faces, meta, name = shown["faces"], shown["meta"], shown["name"]
    keep = sorted(int(i) for i in keep if 0 <= int(i) < len(faces))
    kept = faces.take(keep)
    drawn = shown["image"]
    if len(kept):
        drawn = draw_landmarks(drawn, kept.landmarks, kept.scheme, boxes=kept.boxes)
        drawn = draw_captions(drawn, kept.boxes, [f"{i + 1}: {s:.2f}" for i, s in zip(keep, kept.scores)])
    result = prediction_document([(name, kept)], {"facelm": facelm_version, **meta})
    files = [str(f) for f in prediction_files(_tmpdir("predict"), name, kept, {"facelm": facelm_version, **meta})]
    table = [[i + 1, round(float(faces.scores[i]), 3),
              round(float(min(faces.boxes[i, 2] - faces.boxes[i, 0], faces.boxes[i, 3] - faces.boxes[i, 1]))),
              "yes" if i in keep else "dropped"] for i in range(len(faces))]
    sch = get_scheme(faces.scheme)
    w, h = faces.image_size
    note = f"\n\nYuNet is not available here ({shown['note']})." if shown.get("note") else ""
    if len(faces):
        dropped = f" ({len(faces) - len(kept)} dropped from the downloads)" if len(kept) < len(faces) else ""
        summary = (f"### Found {len(faces)} face{'s' * (len(faces) > 1)}{dropped}\n"
                   f"{sch.num_points} points each ({sch.name}) on a {w}×{h} photo; face detector: "
                   f"`{faces.detector}`, scores ≥ {meta['min_score']:.2f}. "
                   "Downloads: JSON, dlib XML, COCO keypoints and 300-W `.pts`." + note)
    else:
        summary = (f"### No face found\nFace detector: `{faces.detector}`, scores ≥ {meta['min_score']:.2f}. "
                   "Lower the threshold, or try a larger, more frontal face." + note)
    return drawn, summary, result, files, table


# ----------------------------------------------------------------------------------------- Compare
def compare_faces(img: np.ndarray, gt: np.ndarray, pred: np.ndarray, scheme: str, title: str,
                  fit: FitCheck | None = None):
    """Drawing (GT green, prediction red, worst 3 points ringed), per-face table and a summary. Faces
    that do not fit the photo (``fit``) are drawn but flagged, not scored."""
    sch = get_scheme(scheme)
    fit = fit or FitCheck(np.ones(len(gt), bool), [""] * len(gt))
    errs = point_errors(pred, gt, sch)
    face_nme = nme(pred, gt, sch)
    worst = worst_points(gt, pred, 3)
    drawn = draw_comparison(img, gt, pred, sch, boxes=landmark_box(gt), worst_k=3)
    rows = []
    for j, (e, idx) in enumerate(zip(face_nme, worst)):
        if not fit.fits[j]:
            rows.append([j + 1, "—", f"not scored: {fit.reasons[j]}"])
            continue
        names = ", ".join(f"{i} {sch.names[i]} ({100 * errs[j, i]:.1f}%)" for i in idx)
        rows.append([j + 1, round(100 * float(e), 2), names])
    scored = face_nme[fit.fits]
    legend = ("<span class='gt'>●</span> ground truth · <span class='pred'>●</span> prediction · "
              "<span class='worst'>◯</span> worst points")
    if not len(scored) or not np.isfinite(scored).any():
        reasons = "; ".join(sorted({r for r in fit.reasons if r})) or "no face could be measured"
        summary = (f"### Not scored\nThe points in {title} do not fit this photo ({reasons}): is it the right "
                   f"annotation file? {legend}")
        return drawn, rows, summary
    flagged = int((~fit.fits).sum())
    summary = (f"### NME {100 * float(np.nanmean(scored)):.2f}%\n{title} · {len(gt)} face{'s' * (len(gt) > 1)}"
               + (f" ({flagged} not scored)" if flagged else "") + " · inter-ocular NME "
               f"(outer eye corners), boxes from the ground-truth landmarks. {legend}")
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
    """An uploaded photo and its annotation (.pts, dlib XML or COCO JSON). Points that do not fit
    the photo (off it, or away from every face the detector finds) are flagged, not scored."""
    if image is None or annotation is None:
        raise gr.Error("Upload both a photo and its annotation file (.pts, .xml or COCO .json).")
    img = to_rgb_array(image)
    gt, scheme = read_ground_truth(Path(annotation), _name(image))
    fl = load_landmarker(model)
    detected = run(fl, img).boxes if fl.detector is not None else None
    fit = check_fit(gt, img.shape[1], img.shape[0], detected)
    pred = _predict_in_boxes(fl, img, landmark_box(gt), scheme)
    return compare_faces(img, gt, pred, scheme, f"{_name(image)} with {Path(annotation).name}", fit)


def read_ground_truth(ann: Path, image_name: str) -> tuple[np.ndarray, str]:
    """(N, K, 2) points and scheme an annotation file gives the photo named ``image_name``."""
    from facelm.schemes import scheme_for_count
    if ann.suffix.lower() == ".pts":
        gt = read_pts(ann)[None]
        return gt, scheme_for_count(gt.shape[1]).name
    if ann.suffix.lower() not in (".xml", ".json"):
        raise gr.Error(f"{ann.name}: expected a .pts, .xml (dlib) or .json (COCO) annotation file")
    aset = read_annotations(ann)
    hits = [im for im in aset.images if Path(im.path.replace("\\", "/")).name == image_name]
    if not hits and len(aset.images) != 1:
        raise gr.Error(f"the annotation file lists {len(aset.images)} images and none is named {image_name!r}")
    faces = [f for f in (hits or aset.images)[0].faces if f.num_points]
    if not faces:
        raise gr.Error(f"{ann.name} has no landmarks for this image")
    return np.stack([f.landmarks for f in faces]), aset.scheme


@readable_errors
def evaluate_on_dataset(dataset: str, n_faces: float = 100, model: str = "", progress=gr.Progress()):
    """Dataset-level NME / failure rate / AUC on up to ``n_faces`` faces spread over the dataset."""
    ds = get_dataset(dataset)
    n = int(min(max(int(n_faces or 1), 1), len(ds)))
    idx = np.unique(np.linspace(0, len(ds) - 1, n).round().astype(int))
    fl = load_landmarker(model)
    ev = evaluate_dataset(progress.tqdm(ds.select(idx.tolist()), total=len(idx), desc="Predicting faces"),
                          lambda img, boxes, scheme: _predict_in_boxes(fl, img, boxes, scheme), _row_scheme,
                          to_rgb_array)
    progress(1.0, desc="Summarising")
    table = [[name, r.n, round(100 * r.nme_mean, 2), round(100 * r.nme_median, 2), round(100 * r.fr_08, 2),
              round(r.auc_08, 4), round(100 * r.fr_10, 2), round(r.auc_10, 4)] for name, r in ev.results.items()]
    plot = plot_ced(ev.curves, _tmpdir("eval") / "ced.png", title=f"CED · {ev.n} faces", figsize=(6.4, 4.2))
    summary = (f"### NME {100 * ev.overall.nme_mean:.2f}% on {ev.overall.n} faces\n"
               f"Failure rate {100 * ev.overall.fr_10:.1f}% and AUC {ev.overall.auc_10:.3f} at NME 0.10. "
               "Boxes from the ground-truth landmarks, inter-ocular NME. The faces may include ones the model "
               "trained on; for held-out figures run `python -m facelm evaluate DATA --split validation`.")
    return table, str(plot), summary


# ---------------------------------------------------------------------------------------- Annotate
_resume_throttle = ResumeThrottle()


def _client(request: gr.Request | None) -> str:
    return getattr(getattr(request, "client", None), "host", None) or "local"


def _open(project: str, request: gr.Request | None = None) -> Project:
    """An existing project; on a shared app, clients that keep naming projects that do not exist wait."""
    pid = check_typed_id(project, RESTRICTED)
    client = _client(request)
    _resume_throttle.check(client)
    try:
        return Project.open(ANNOTATIONS_DIR, pid)
    except ProjectError:
        _resume_throttle.failed(client)
        raise


def _starts(fl: FaceLandmarker):
    return lambda img, boxes=None: predict_with_uncertainty(fl, img, boxes, predict=functools.partial(run, fl))


def _nav(view: AnnotateView):
    """A View as the Annotate tab's outputs: editor, queue, progress line, session."""
    keep = gr.skip()
    return (keep if view.value is None else view.value), view.rows, view.message, \
        (keep if view.state is None else view.state)


@readable_errors
def annotate_load(project: str, files: list[str] | None = None, dataset: str = "", n_images: float = 10,
                  start_from: str = "prediction", model: str = "", state: dict | None = None,
                  progress=gr.Progress()):
    """Add images to the project, each with starting points, and open the most uncertain one.

    Sources: uploaded photos (with .xml / COCO .json / .pts files among them to resume from their
    points, flags and status), or, without uploads, ``n_images`` photos of a dataset
    (``start_from="dataset"`` keeps its points)."""
    fl = load_landmarker(model)
    pid = check_typed_id((project or "").strip() or new_project_id(), RESTRICTED)
    images, anns = split_uploads(files)
    plan = match_uploads(images, anns, fl.scheme.name, fl.scheme.num_points)
    if anns and plan.missing and not images:
        raise gr.Error(plan.message())
    photos = plan.photos
    if (dataset or "").strip() and not files:
        proj = Project.create(ANNOTATIONS_DIR, pid, fl.scheme.name, model_path(model))
        photos = dataset_photos(get_dataset(dataset), proj, int(n_images or 1), start_from == "dataset")
    if not photos:
        raise gr.Error("Nothing to load: upload photos (optionally with an .xml/.json/.pts to resume), "
                       "or name a dataset.")
    check_point_count(photos, fl.scheme.num_points)
    proj = Project.create(ANNOTATIONS_DIR, pid, fl.scheme.name, model_path(model))
    add_photos(proj, progress.tqdm(photos, desc="Predicting starting points"), _starts(fl),
               lambda src: to_rgb_array(src, fl.max_pixels))
    resumed = sum(p.given is not None for p in photos)
    note = (f"Loaded {len(photos)} image{'s' * (len(photos) != 1)}"
            + (f" ({resumed} with the points of {'the uploaded annotation files' if anns else 'the dataset'})"
               if resumed else "")
            + "; the queue starts with the most uncertain. " + plan.message()).strip()
    return (proj.id, *_nav(annotate_session.open_first(proj, note, state)))


@readable_errors
def annotate_resume(project: str, state: dict | None = None, request: gr.Request = None):
    """Reopen an autosaved project by its id."""
    proj = _open(project, request)
    return (proj.id, *_nav(annotate_session.open_first(proj, "Resumed: every saved edit is back.", state)))


@readable_errors
def new_project():
    pid = new_project_id()
    return pid, {}, [], f"New project `{pid}`: load images to start.", None


@readable_errors
def save_edit(project: str, edit: dict | None, state: dict | None = None, model: str = "",
              request: gr.Request = None):
    """Autosave of the editor's value (``op``: edit, delete_face, add_face; see annotate_session)."""
    if not isinstance(edit, dict) or not edit.get("dirty"):
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    proj = _open(project, request)
    return _nav(annotate_session.save_edit(proj, state, edit, lambda item, box: _face_in_box(proj, item, box, model)))


def _starts_in_boxes(proj: Project, item, boxes: list, model: str):
    """The model's starting points on ``item``'s photo inside ``boxes`` (x1, y1, x2, y2 each)."""
    fl = load_landmarker(model)
    return _starts(fl)(to_rgb_array(proj.image_path(item)), np.asarray(boxes, np.float32).reshape(-1, 4))


def _face_in_box(proj: Project, item, box: list[float], model: str) -> tuple[dict, float | None]:
    """The model's points for a face drawn as ``box`` on ``item``'s photo, and its uncertainty."""
    sp = _starts_in_boxes(proj, item, [box], model)
    return faces_to_json(sp.points, sp.boxes)[0], sp.face_uncertainty()[0]


@readable_errors
def annotate_next(project: str, value: dict | None = None, state: dict | None = None, request: gr.Request = None):
    return _nav(annotate_session.step(_open(project, request), state, value, +1))


@readable_errors
def annotate_prev(project: str, value: dict | None = None, state: dict | None = None, request: gr.Request = None):
    return _nav(annotate_session.step(_open(project, request), state, value, -1))


@readable_errors
def annotate_done(project: str, value: dict | None = None, state: dict | None = None, request: gr.Request = None):
    """Mark the shown image done (with its current points) and open the next one."""
    return _nav(annotate_session.step(_open(project, request), state, value, +1, status="done"))


@readable_errors
def annotate_goto(project: str, item_id: str, value: dict | None = None, state: dict | None = None,
                  request: gr.Request = None):
    return _nav(annotate_session.goto(_open(project, request), state, value, str(item_id)))


def goto_selected(project: str, value: dict | None, state: dict | None, evt: gr.SelectData, request: gr.Request):
    row = evt.row_value or []
    if not row:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    return annotate_goto(project, str(row[0]), value, state, request)


@readable_errors
def repredict(project: str, value: dict | None, state: dict | None = None, model: str = "",
              request: gr.Request = None):
    """Predict the shown image again inside its (adjusted) boxes."""
    proj = _open(project, request)
    load_landmarker(model)  # a model that cannot load is reported before anything is checked or written

    def again(item, faces):
        sp = _starts_in_boxes(proj, item, [f["box"] for f in faces], model)
        return faces_to_json(sp.points, sp.boxes)
    return _nav(annotate_session.replace_faces(proj, state, value, again, "Predicted again inside the boxes."))


@readable_errors
def export(project: str, which: str = "edited and done", integer: bool = False, request: gr.Request = None):
    """dlib XML, COCO JSON, a .pts zip and a dataset zip of the project's edited/done images."""
    proj = _open(project, request)
    statuses = ("predicted", "edited", "done") if which == "all" else ("edited", "done")
    files = proj.export(statuses, precision=0 if integer else None)
    n = len(proj.annotation_set(statuses).images)
    copies = proj.copy_exports(files, _tmpdir("export"))
    rounding = "integer pixels (dlib's own loader needs them; points move by up to 0.5 px)" if integer else \
        "exact float coordinates (re-importing gives back exactly the same points)"
    md = (f"Exported **{n} image{'s' * (n != 1)}** to `{files['xml']}` with {rounding}. Images keep their own "
          "names; paths in the XML are relative to it. To resume elsewhere, load the XML (or the COCO JSON) "
          "together with the original photos: points, occluded flags and statuses come back.")
    return copies, md


# ----------------------------------------------------------------------------------------- Retrain
def _retrain_plan(project: str, model: str, epochs: float, max_faces: float) -> RetrainPlan:
    """The one place the fine-tune command is built (shown by "Show the command", run by "Fine-tune now")."""
    proj = Project(ANNOTATIONS_DIR, check_typed_id(project, RESTRICTED))
    fl = load_landmarker(model)
    return plan_retrain(proj.dir, model_path(model), fl.scheme.name, fl.model.input_size, fl.model.crop_scale,
                        fl.model.in_chans, int(epochs), int(max_faces))


@readable_errors
def retrain_command(project: str, model: str = "", epochs: float = 5, max_faces: float = 200) -> str:
    """The exact training command the Retrain button runs (run it yourself on a bigger machine)."""
    return _retrain_plan(project, model, epochs, max_faces).shown()


def retrain(project: str, model: str = "", epochs: float = 5, max_faces: float = 200, progress=gr.Progress()):
    """Fine-tune the current model on the project's export minus held-out faces (a short CPU run of
    train/train.py), streaming its log, then compare NME before and after on the held-out faces."""
    try:
        plan = _retrain_plan(project, model, epochs, max_faces)
        n_train, n_held = split_export(plan)
    except (FacelmError, ValueError, OSError) as e:
        raise gr.Error(str(e)) from e
    log = f"$ {plan.shown()}\n({n_train} faces to train on, {n_held} held out to measure)\n"
    yield log, gr.skip(), "Training…", gr.skip()
    for line in run_lines(plan, REPO):
        log += line + "\n"
        if (epoch := epoch_of(line)) is not None:
            progress(epoch / max(int(epochs), 1), desc=f"epoch {epoch}/{int(epochs)}")
        yield log[-20000:], gr.skip(), "Training…", gr.skip()
    if plan.returncode != 0 or not (plan.best / "model.safetensors").is_file():
        yield log, gr.skip(), f"Training failed (exit code {plan.returncode}); see the log.", gr.skip()
        return
    progress(1.0, desc="Comparing before and after")
    before = nme_on_faces(functools.partial(run, load_landmarker(model)), plan.heldout_xml)
    after = nme_on_faces(functools.partial(run, load_landmarker(str(plan.best))), plan.heldout_xml)
    yield log, retrain_table(before, after), retrain_summary(before, after, plan, model), str(plan.best)


def retrain_table(before: np.ndarray, after: np.ndarray) -> list[list]:
    return [[name, len(e), round(100 * float(np.nanmean(e)), 2), round(100 * float(np.nanmedian(e)), 2)]
            for name, e in (("before", before), ("after", after))]


def retrain_summary(before: np.ndarray, after: np.ndarray, plan: RetrainPlan, model: str) -> str:
    b, a = 100 * float(np.nanmean(before)), 100 * float(np.nanmean(after))
    where = (f"Before: `{(model or '').strip() or DEFAULT_MODEL or 'bundled default'}` · after: `{plan.best}`. "
             f"NME on the {len(after)} exported face{'s' * (len(after) != 1)} held out from the fine-tune.")
    if a > b:
        return (f"### ⚠️ The fine-tuned model is worse: {b:.2f}% → {a:.2f}% NME\nKeep the current model: do not "
                "press \"Use the fine-tuned model\". Correct more faces, or train longer on a GPU. " + where)
    small = " A few faces are a small sample." if len(after) < 10 else ""
    return f"### Better: {b:.2f}% → {a:.2f}% NME\n" + where + small


# ------------------------------------------------------------------------------------------- Video
MAX_VIDEO_FRAMES = int(os.environ.get("FACELM_MAX_VIDEO_FRAMES", 600))
"""Frames of an uploaded video that are tracked (the rest are left out, and the summary says so): a
CPU Space follows one face at a few tens of frames per second, and the queue is shared."""
LIVE_MODEL = "ibug68_fast"
"""The webcam's model while the model box is empty: the bundled model made for speed, so the stream
keeps up with the camera (docs/video.md); a model typed in the box is used as it is."""


def live_landmarker(spec: str | None) -> FaceLandmarker:
    return load_landmarker((spec or "").strip() or DEFAULT_MODEL or LIVE_MODEL)


def _with_detector(fl: FaceLandmarker) -> FaceLandmarker:
    if fl.detector is None:
        raise gr.Error("This model has no face detector available, and video needs one to find the faces.")
    return fl


@readable_errors
def track_webcam(frame: np.ndarray | None, tracker: Tracker | None, model: str = "", smooth: bool = True):
    """One streamed webcam frame -> (the frame with faces, ids and frames per second drawn, the
    session's tracker, a status line)."""
    fl = _with_detector(live_landmarker(model))
    with _infer_lock:
        drawn, tracker = webcam_step(frame, tracker, fl, smooth=bool(smooth))
    name = (model or "").strip() or DEFAULT_MODEL or LIVE_MODEL
    fps = (f"the tracker keeps up with {tracker.processing_fps:.0f} frames per second"
           if tracker.processing_fps else "starting")
    return drawn, tracker, f"**Live:** {fps} · `{name}` · smoothing {'on' if smooth else 'off'}"


@readable_errors
def track_video_upload(video: str | None, model: str = "", smooth: bool = True,
                       progress=gr.Progress(track_tqdm=True)):
    """A video file -> (overlay video, landmarks JSON file, summary): every face followed from frame
    to frame (ids kept), its points smoothed; at most MAX_VIDEO_FRAMES frames."""
    if not video:
        raise gr.Error("Upload a video first.")
    fl = _with_detector(load_landmarker(model))
    try:
        with _infer_lock:  # the whole video: the detectors are shared with the other tabs' calls
            overlay, doc = track_video_file(video, fl, _tmpdir("video"), smooth=bool(smooth),
                                            max_frames=MAX_VIDEO_FRAMES, progress=True)
    except VideoError as e:
        raise gr.Error(str(e).replace(str(video), _name(video, "the video")), title="Video not read") from e
    return str(overlay), str(overlay.with_suffix(".json")), video_summary(doc, _name(video, "the video"))


def video_summary(doc: dict, name: str) -> str:
    frames = doc["frames"]
    ids = {face["id"] for f in frames for face in f["faces"]}
    with_face = sum(bool(f["faces"]) for f in frames)
    skipped = len(doc["skipped_frames"])
    lines = [f"### {len(ids)} face{'s' * (len(ids) != 1)} followed in {name}",
             f"{len(frames)} frames tracked at {doc['fps']:.3g} fps ({with_face} with a face), "
             f"{doc['width']}×{doc['height']}, smoothing {'on' if doc['smoothing'] else 'off'}, "
             f"detector every {doc['detect_every']} frames. "
             f"{skipped} frame{'s' * (skipped != 1)} could not be decoded and were skipped."]
    if doc["stopped"]:
        lines.append(f"⚠️ Reading {doc['stopped']}.")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------- UI
THEME = gr.themes.Soft(
    primary_hue="indigo", secondary_hue="sky", neutral_hue="slate",
    font=[gr.themes.LocalFont("IBM Plex Sans"), "ui-sans-serif", "system-ui", "sans-serif"],
    font_mono=[gr.themes.LocalFont("IBM Plex Mono"), "ui-monospace", "monospace"],
).set(block_radius="12px", button_large_radius="10px", button_small_radius="8px")


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
                    # On by default, as FaceLandmarker's "auto" does for detected faces (docs/detection.md).
                    refine_in = gr.Checkbox(True, label="Refine (second stage framed on the first prediction: "
                                                        "more accurate, 3x the model time)")
                    min_score_in = gr.Slider(0.3, 1.0, value=YUNET_MIN_SCORE, step=0.01, label="Detection threshold",
                                             info="Keep faces the YuNet detector scores at least this (0-1; "
                                                  "lower finds more faces and more false ones)",
                                             elem_id="flm-min-score")
                    predict_btn = gr.Button("Find landmarks", variant="primary", size="lg", elem_id="flm-predict")
                    if _examples():
                        gr.Examples(_examples(), inputs=photo, label="Try a photo from 300-W (AFW)")
                with gr.Column(scale=1):
                    drawn_out = gr.Image(label="Landmarks", type="numpy", height=380, interactive=False,
                                         format="png", elem_id="flm-drawn")
                    predict_md = gr.Markdown("Upload a photo: every face gets its landmarks.", elem_id="flm-predict-md")
                    keep_in = gr.CheckboxGroup([], label="Faces to keep in the downloads", visible=False,
                                               elem_id="flm-keep")
                    faces_table = gr.Dataframe(headers=["face", "score", "size (px)", "kept"],
                                               datatype=["number", "number", "number", "str"], interactive=False,
                                               label="Faces found (score: the detector's confidence)",
                                               max_height=220, elem_id="flm-faces")
                    files_out = gr.File(label="Downloads", file_count="multiple", interactive=False, visible=False)
                    shown_state = gr.State(None)
                    with gr.Accordion("Result as JSON", open=False):
                        json_out = gr.JSON(label="Result")

        # ---------------------------------------------------------------- Video
        with gr.Tab("Video", id="video"):
            with gr.Tabs():
                with gr.Tab("Live webcam", id="video-live"):
                    with gr.Row(equal_height=False):
                        with gr.Column(scale=1):
                            cam_in = gr.Image(label="Webcam", sources=["webcam"], streaming=True, type="numpy",
                                              height=360, elem_id="flm-cam")
                            cam_smooth = gr.Checkbox(True, label="Smooth the points (One Euro filter)",
                                                     elem_id="flm-cam-smooth")
                            gr.Markdown(f"Press the record button to start. The model box's model, or "
                                        f"`{LIVE_MODEL}` (made for speed) while it is empty. Each face keeps "
                                        "its id while it is followed.", elem_classes="flm-hint")
                        with gr.Column(scale=1):
                            cam_out = gr.Image(label="Landmarks", type="numpy", height=360, interactive=False,
                                               elem_id="flm-cam-out")
                            cam_md = gr.Markdown(elem_id="flm-cam-md")
                            cam_state = gr.State(None)  # the session's facelm.video.Tracker
                with gr.Tab("Video file", id="video-file"):
                    with gr.Row(equal_height=False):
                        with gr.Column(scale=1):
                            video_in = gr.Video(label="Video", sources=["upload"], height=360, elem_id="flm-video")
                            video_smooth = gr.Checkbox(True, label="Smooth the points (One Euro filter)")
                            video_btn = gr.Button("Track the faces", variant="primary", elem_id="flm-video-btn")
                            gr.Markdown(f"Up to {MAX_VIDEO_FRAMES} frames are tracked here (longer videos are "
                                        "cut there); `python -m facelm video` has no limit.", elem_classes="flm-hint")
                        with gr.Column(scale=1):
                            video_out = gr.Video(label="Landmarks", height=360, interactive=False,
                                                 elem_id="flm-video-out")
                            video_md = gr.Markdown("Upload a video: every face is followed and its points "
                                                   "smoothed.", elem_id="flm-video-md")
                            video_json = gr.File(label="Landmarks per frame (JSON)", interactive=False)

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
                                            file_types=["image", ".xml", ".pts", ".json"], height=220,
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
                    ann_state = gr.State(None)  # which image this browser session shows (annotate_session.Shown)
                    goto_in = gr.Textbox(visible=False, label="Open image id")  # the /annotate_goto endpoint
                    queue_df = gr.Dataframe(headers=annotate_session.QUEUE_HEADERS,
                                            datatype=["str", "str", "number", "str", "str"], interactive=False,
                                            label="Queue: most uncertain first (click a row to open it)",
                                            max_height=260, column_widths=["8%", "52%", "10%", "15%", "15%"])

        # ---------------------------------------------------------------- Retrain
        with gr.Tab("Retrain", id="retrain"):
            gr.Markdown("Fine-tune the current model on the project's exported annotations "
                        "(`export/annotations.xml`, written by **Export** in the Annotate tab) with `train/train.py`, "
                        "holding every 5th face out, then compare NME before and after on those held-out faces. "
                        "A short CPU run; for a real run copy the command to a machine with a GPU.")
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
                                            elem_id="flm-rt-table",
                                            label="Before / after, on exported faces held out from the fine-tune",
                                            column_widths=["25%", "25%", "25%", "25%"], wrap=True)
                    rt_log = gr.Textbox(label="Training log", lines=12, max_lines=12, autoscroll=True)
                    rt_best = gr.Textbox(visible=False)

    gr.Markdown("<div class='flm-hint' style='text-align:center'>facelm · every button is an API endpoint "
                "(<code>gradio_client</code>): predict, track_video, compare, compare_upload, evaluate, annotate_load, "
                "save_edit, export, retrain…</div>")

    # ---------------------------------------------------------------- events
    demo.load(describe_model, model_in, model_md, api_name=False)
    demo.load(lambda d: gr.Slider(maximum=len(get_dataset(d)) - 1) if (d or "").strip() else gr.skip(), cmp_data,
              cmp_index, api_name=False)
    load_btn.click(load_model_markdown, model_in, model_md, api_name="load_model")
    model_in.submit(load_model_markdown, model_in, model_md, api_name=False)

    show_files = dict(fn=lambda f: gr.File(visible=bool(f)), api_name=False, show_progress="hidden")
    shown_out = [drawn_out, predict_md, json_out, files_out, faces_table]
    predict_btn.click(predict, [photo, scheme_in, model_in, refine_in, min_score_in],
                      [*shown_out, keep_in, shown_state], api_name="predict") \
        .then(inputs=files_out, outputs=files_out, **show_files)
    keep_in.input(keep_faces, [shown_state, keep_in], shown_out, api_name="keep_faces") \
        .then(inputs=files_out, outputs=files_out, **show_files)

    cam_in.stream(track_webcam, [cam_in, cam_state, model_in, cam_smooth], [cam_out, cam_state, cam_md],
                  api_name="track_webcam", stream_every=0.1, time_limit=120, concurrency_limit=2,
                  concurrency_id="live", show_progress="hidden")
    video_btn.click(track_video_upload, [video_in, model_in, video_smooth], [video_out, video_json, video_md],
                    api_name="track_video", concurrency_limit=1, concurrency_id="heavy")

    cmp_btn.click(compare, [cmp_data, cmp_index, model_in], [cmp_img, cmp_table, cmp_md], api_name="compare")
    cmp_index.release(compare, [cmp_data, cmp_index, model_in], [cmp_img, cmp_table, cmp_md], api_name=False)
    cmp_random.click(lambda d: int(np.random.randint(len(get_dataset(d)))), cmp_data, cmp_index, api_name=False) \
        .then(compare, [cmp_data, cmp_index, model_in], [cmp_img, cmp_table, cmp_md], api_name=False)
    cmp_data.submit(lambda d: gr.Slider(maximum=len(get_dataset(d)) - 1, value=0), cmp_data, cmp_index,
                    api_name=False)
    cmp_up_btn.click(compare_upload, [cmp_photo, cmp_ann, model_in], [cmp_img, cmp_table, cmp_md],
                     api_name="compare_upload")
    eval_btn.click(evaluate_on_dataset, [cmp_data, eval_n, model_in], [eval_table, eval_plot, eval_md],
                   api_name="evaluate",
                   concurrency_limit=1, concurrency_id="heavy")

    nav_out = [editor, queue_df, ann_md, ann_state]
    ann_load_btn.click(annotate_load, [project_in, ann_files, ann_data, ann_n, ann_start, model_in, ann_state],
                       [project_in, *nav_out], api_name="annotate_load", concurrency_limit=2)
    resume_btn.click(annotate_resume, [project_in, ann_state], [project_in, *nav_out], api_name="annotate_resume")
    new_btn.click(new_project, None, [project_in, *nav_out], api_name="new_project")
    editor.change(save_edit, [project_in, editor, ann_state, model_in], nav_out, api_name="save_edit",
                  trigger_mode="always_last", show_progress="hidden")
    next_btn.click(annotate_next, [project_in, editor, ann_state], nav_out, api_name="annotate_next",
                   show_progress="hidden")
    prev_btn.click(annotate_prev, [project_in, editor, ann_state], nav_out, api_name="annotate_prev",
                   show_progress="hidden")
    done_btn.click(annotate_done, [project_in, editor, ann_state], nav_out, api_name="annotate_done",
                   show_progress="hidden")
    repredict_btn.click(repredict, [project_in, editor, ann_state, model_in], nav_out, api_name="repredict")
    queue_df.select(goto_selected, [project_in, editor, ann_state], nav_out, api_name=False, show_progress="hidden")
    goto_in.submit(annotate_goto, [project_in, goto_in, editor, ann_state], nav_out, api_name="annotate_goto",
                   show_progress="hidden")
    exp_btn.click(export, [project_in, exp_which, exp_int], [exp_files, exp_md], api_name="export") \
        .then(inputs=exp_files, outputs=exp_files, **show_files)

    rt_cmd_btn.click(retrain_command, [project_in, model_in, rt_epochs, rt_max], rt_cmd, api_name="retrain_command")
    rt_btn.click(retrain_command, [project_in, model_in, rt_epochs, rt_max], rt_cmd, api_name=False) \
        .then(retrain, [project_in, model_in, rt_epochs, rt_max], [rt_log, rt_table, rt_md, rt_best],
              api_name="retrain", concurrency_limit=1, concurrency_id="heavy")
    rt_use_btn.click(lambda b: (b or gr.skip()), rt_best, model_in, api_name=False) \
        .then(load_model_markdown, model_in, model_md, api_name=False)

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
