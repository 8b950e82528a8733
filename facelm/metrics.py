"""Landmark accuracy metrics: normalised mean error (NME), CED curves, failure rate and AUC.

Conventions (as in the 300-W / Menpo / WFLW papers):

* NME of a face = mean over its points of the L2 error, divided by a per-face normaliser.
* A face *fails* at threshold ``t`` when its NME is strictly greater than ``t``.
* AUC@t = area under the CED curve on ``[0, t]`` divided by ``t`` (so it lies in [0, 1]).

Missing values: a NaN ground-truth point is left out of its face's mean (Kaggle data has missing
points); a face whose NME cannot be measured at all (no GT points, or an undefined normaliser) gets
NaN, and the aggregate functions drop NaN errors. A NaN *prediction* for a point that has GT is not
"unmeasurable" but a miss, so it counts as an infinite error: the face fails at every threshold.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .annotation import landmark_box
from .errors import SchemeError
from .schemes import Scheme, get_scheme

__all__ = [
    "NORMS", "THRESHOLDS", "Norm",
    "normaliser", "point_errors", "nme",
    "ced", "failure_rate", "auc",
    "EvalResult", "evaluate", "per_subset", "results_table", "plot_ced",
]

Norm = Literal["interocular", "interpupil", "diagonal", "box_size"]
NORMS: tuple[str, ...] = ("interocular", "interpupil", "diagonal", "box_size")
THRESHOLDS: tuple[float, float] = (0.08, 0.10)
"""The thresholds EvalResult reports failure rate and AUC at (the usual 300-W / WFLW pair)."""


# --------------------------------------------------------------------------- per-face errors

def _as_batch(points: np.ndarray, what: str) -> np.ndarray:
    """(K, 2) or (N, K, 2) -> (N, K, 2) float64 (float64 so tiny errors are not swamped by rounding)."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[-1] != 2:
        raise ValueError(f"{what} must have shape (K, 2) or (N, K, 2), got {np.shape(points)}")
    return arr


def _as_boxes(boxes: np.ndarray, n: int) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if arr.shape[0] == 1 and n > 1:
        arr = np.repeat(arr, n, axis=0)
    if arr.shape[0] != n:
        raise ValueError(f"expected {n} boxes (x1, y1, x2, y2), got {arr.shape[0]}")
    return arr


def _segment_length(pairs: np.ndarray) -> np.ndarray:
    """(N, 2, 2) point pairs -> (N,) distances."""
    return np.linalg.norm(pairs[:, 1] - pairs[:, 0], axis=-1)


def normaliser(gt: np.ndarray, scheme: str | Scheme, norm: Norm = "interocular",
               boxes: np.ndarray | None = None) -> np.ndarray:
    """(N,) per-face normalising distance, from the ground truth (never the prediction, so a bad
    prediction cannot shrink its own error). NaN where it is undefined (missing points) or zero.

    ``diagonal`` / ``box_size`` are the diagonal / sqrt(area) of ``boxes`` when given, else of the
    tight box of the GT landmarks.
    """
    scheme = get_scheme(scheme)
    gt = _as_batch(gt, "gt")
    if norm == "interocular":
        d = _segment_length(gt[:, list(scheme.interocular)])
    elif norm == "interpupil":
        d = _segment_length(scheme.pupil_points(gt))
    elif norm in ("diagonal", "box_size"):
        if boxes is not None:
            box = _as_boxes(boxes, gt.shape[0])
        else:
            with warnings.catch_warnings():  # an all-NaN face has no box; it gets NaN below, quietly
                warnings.simplefilter("ignore", RuntimeWarning)
                box = landmark_box(gt).astype(np.float64)
        w, h = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
        d = np.hypot(w, h) if norm == "diagonal" else np.sqrt(np.clip(w * h, 0.0, None))
    else:
        raise ValueError(f"unknown normalisation {norm!r}; choose one of {NORMS}")
    # A zero normaliser (e.g. a degenerate box) would turn every error into inf or NaN-with-warning.
    return np.where(np.isfinite(d) & (d > 0), d, np.nan)


def point_errors(pred: np.ndarray, gt: np.ndarray, scheme: str | Scheme, norm: Norm = "interocular",
                 boxes: np.ndarray | None = None) -> np.ndarray:
    """(N, K) per-point L2 errors divided by each face's normaliser.

    NaN where the GT point is missing or the face's normaliser is undefined; inf where the GT point
    exists but the prediction is NaN.
    """
    scheme = get_scheme(scheme)
    pred, gt = _as_batch(pred, "pred"), _as_batch(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt shapes differ: {pred.shape} vs {gt.shape}")
    if gt.shape[1] != scheme.num_points:
        raise SchemeError(f"scheme {scheme.name} has {scheme.num_points} points, landmarks have {gt.shape[1]}")
    gt_ok = np.isfinite(gt).all(axis=-1)
    dist = np.linalg.norm(pred - gt, axis=-1)
    dist = np.where(gt_ok, np.where(np.isfinite(dist), dist, np.inf), np.nan)
    return dist / normaliser(gt, scheme, norm, boxes)[:, None]


def _mean_over_measured(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean ignoring NaN; NaN (without a warning) where nothing was measured."""
    measured = ~np.isnan(values)
    total = np.where(measured, values, 0.0).sum(axis=axis)
    count = measured.sum(axis=axis)
    return np.divide(total, count, out=np.full(np.shape(total), np.nan), where=count > 0)


def nme(pred: np.ndarray, gt: np.ndarray, scheme: str | Scheme, norm: Norm = "interocular",
        boxes: np.ndarray | None = None) -> np.ndarray:
    """(N,) per-face normalised mean error; (K, 2) inputs count as one face and give shape (1,).

    ``norm``: ``interocular`` (GT outer eye corners, ``scheme.interocular``), ``interpupil`` (GT
    pupil centres, ``scheme.pupil_points``), ``diagonal`` (diagonal of ``boxes`` or the GT landmark
    box) or ``box_size`` (sqrt of that box's area, the AFLW convention).
    """
    return _mean_over_measured(point_errors(pred, gt, scheme, norm, boxes), axis=1)


# --------------------------------------------------------------------------- aggregates

def _measured(errors: np.ndarray) -> np.ndarray:
    """Flat float64 errors without the unmeasurable (NaN) ones; refuses an empty result because
    every aggregate of nothing is meaningless and would otherwise surface later as a NaN."""
    e = np.asarray(errors, dtype=np.float64).ravel()
    e = e[~np.isnan(e)]
    if e.size == 0:
        raise ValueError("no measurable errors (empty, or all NaN)")
    if (e < 0).any():
        raise ValueError("errors must be non-negative")
    return e


def _check_threshold(threshold: float) -> float:
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    return float(threshold)


def ced(errors: np.ndarray, max_error: float = 0.10, steps: int = 1001) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution: ``steps`` thresholds evenly spaced on [0, max_error] and the
    fraction of faces with error <= each threshold (non-decreasing, in [0, 1])."""
    e = np.sort(_measured(errors))
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    thresholds = np.linspace(0.0, _check_threshold(max_error), steps)
    fractions = np.searchsorted(e, thresholds, side="right") / e.size
    return thresholds, fractions


def failure_rate(errors: np.ndarray, threshold: float = 0.10) -> float:
    """Fraction of faces whose error is strictly above ``threshold``."""
    e = _measured(errors)
    return float(np.mean(e > _check_threshold(threshold)))


def auc(errors: np.ndarray, threshold: float = 0.10) -> float:
    """Area under the CED curve on [0, threshold], divided by threshold.

    Exact, not a Riemann sum: face i contributes 1 to the CED for every t in [e_i, threshold], so
    its share of the area is max(0, threshold - e_i), and AUC = mean(clip(1 - e_i / threshold, 0, 1)).
    """
    t = _check_threshold(threshold)
    e = _measured(errors)
    return float(np.mean(np.clip(1.0 - e / t, 0.0, 1.0)))


@dataclass
class EvalResult:
    """Summary of one set of per-face errors (fractions, not percent)."""
    n: int
    nme_mean: float
    nme_median: float
    fr_08: float
    auc_08: float
    fr_10: float
    auc_10: float
    n_unmeasured: int = 0
    """Faces dropped because their error is NaN (see the module docstring)."""
    norm: str = ""
    per_point: np.ndarray | None = field(default=None, repr=False)
    """(K,) mean normalised error of each point over the faces, when point errors were given."""

    @classmethod
    def from_errors(cls, errors: np.ndarray, point_errs: np.ndarray | None = None, norm: str = "") -> EvalResult:
        """``errors``: (N,) per-face NME; ``point_errs``: optional (N, K) from :func:`point_errors`."""
        raw = np.asarray(errors, dtype=np.float64).ravel()
        e = _measured(raw)
        (t8, t10) = THRESHOLDS
        per_point = None
        if point_errs is not None:
            per_point = _mean_over_measured(np.asarray(point_errs, dtype=np.float64).reshape(raw.size, -1), axis=0)
        return cls(
            n=int(e.size), nme_mean=float(e.mean()), nme_median=float(np.median(e)),
            fr_08=failure_rate(e, t8), auc_08=auc(e, t8), fr_10=failure_rate(e, t10), auc_10=auc(e, t10),
            n_unmeasured=int(raw.size - e.size), norm=norm, per_point=per_point,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain ints/floats, ``per_point`` as a list (None stays None)."""
        d: dict[str, Any] = {
            "n": self.n, "nme_mean": self.nme_mean, "nme_median": self.nme_median,
            "fr_08": self.fr_08, "auc_08": self.auc_08, "fr_10": self.fr_10, "auc_10": self.auc_10,
            "n_unmeasured": self.n_unmeasured, "norm": self.norm,
        }
        d["per_point"] = None if self.per_point is None else [float(v) for v in self.per_point]
        return d

    def format_table(self, name: str = "all") -> str:
        return results_table({name: self})


def evaluate(pred: np.ndarray, gt: np.ndarray, scheme: str | Scheme, norm: Norm = "interocular",
             boxes: np.ndarray | None = None) -> EvalResult:
    """Predictions against ground truth in one call, with per-point errors."""
    pe = point_errors(pred, gt, scheme, norm, boxes)
    return EvalResult.from_errors(_mean_over_measured(pe, axis=1), pe, norm=norm)


def per_subset(errors: np.ndarray, labels: Sequence[str] | np.ndarray, point_errs: np.ndarray | None = None,
               norm: str = "", all_label: str | None = None) -> dict[str, EvalResult]:
    """Group per-face errors by a label per face (e.g. 300-W "common"/"challenging").

    Groups come in order of first appearance; ``all_label`` adds one more entry over every face
    (e.g. "full"). A group whose errors are all NaN is left out rather than failing the whole report.
    """
    e = np.asarray(errors, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if labels.shape[0] != e.shape[0]:
        raise ValueError(f"{e.shape[0]} errors but {labels.shape[0]} labels")
    pe = None if point_errs is None else np.asarray(point_errs, dtype=np.float64).reshape(e.size, -1)
    groups: dict[str, np.ndarray] = {str(lab): labels == lab for lab in dict.fromkeys(labels.tolist())}
    if all_label is not None:
        groups[all_label] = np.ones(e.size, dtype=bool)
    out: dict[str, EvalResult] = {}
    for name, mask in groups.items():
        if np.isnan(e[mask]).all():
            continue
        out[name] = EvalResult.from_errors(e[mask], None if pe is None else pe[mask], norm=norm)
    return out


def results_table(results: Mapping[str, EvalResult]) -> str:
    """Plain-text table, one row per result: NME and FR in percent, AUC as a fraction."""
    (t8, t10) = THRESHOLDS
    header = ["subset", "n", "NME %", "median %", f"FR@{t8:.2f} %", f"AUC@{t8:.2f}", f"FR@{t10:.2f} %", f"AUC@{t10:.2f}"]
    rows = [[name, str(r.n), f"{100 * r.nme_mean:.2f}", f"{100 * r.nme_median:.2f}",
             f"{100 * r.fr_08:.2f}", f"{r.auc_08:.4f}", f"{100 * r.fr_10:.2f}", f"{r.auc_10:.4f}"]
            for name, r in results.items()]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        # First column (names) left-aligned, numbers right-aligned so decimals line up.
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    norms = sorted({r.norm for r in results.values() if r.norm})
    out = [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]
    if norms:
        out.append(f"(NME normalised by {', '.join(norms)})")
    return "\n".join(out)


# --------------------------------------------------------------------------- plot

def plot_ced(errors_by_name: Mapping[str, np.ndarray], path: str | Path, max_error: float = 0.10,
             title: str = "Cumulative error distribution", xlabel: str = "NME",
             figsize: tuple[float, float] = (6.0, 4.5), dpi: int = 100) -> Path:
    """Write a PNG with one CED curve per entry (legend: AUC and FR at ``max_error``); return the path.

    The image is ``figsize * dpi`` pixels exactly.
    """
    # A bare Figure (not pyplot) is never registered with pyplot's figure manager, so nothing global
    # changes, no backend needs selecting and nothing has to be closed; it is freed with the object.
    from matplotlib.figure import Figure

    if not errors_by_name:
        raise ValueError("plot_ced needs at least one set of errors")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.add_subplot()
    for name, errors in errors_by_name.items():
        x, y = ced(errors, max_error)
        label = f"{name} (AUC {auc(errors, max_error):.3f}, FR {100 * failure_rate(errors, max_error):.1f}%)"
        ax.plot(x, y, label=label, linewidth=1.8)
    ax.set_xlim(0.0, max_error)
    ax.set_ylim(0.0, 1.02)  # a curve that reaches 1 would hide under the top spine
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of faces")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=dpi)
    return path
