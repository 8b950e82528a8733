"""Known-answer tests for facelm.metrics: every expected value below is worked out by hand."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelm.errors import SchemeError
from facelm.metrics import (
    EvalResult, auc, ced, evaluate, failure_rate, nme, normaliser, per_subset, plot_ced, point_errors,
    results_table,
)
from facelm.schemes import CELEBA5, IBUG68, KAGGLE15


# --------------------------------------------------------------------------- toy faces

def toy68() -> np.ndarray:
    """A 68-pt face whose normalisers are easy by hand: outer eye corners 60 px apart, pupils 40 px
    apart, tight landmark box 60 x 60."""
    pts = np.full((68, 2), [40.0, 60.0])
    # Image-left eye (36..41) around (20, 50): outer corner 36 at x=10, inner 39 at x=30.
    pts[36:42] = [(10, 50), (15, 45), (25, 45), (30, 50), (25, 55), (15, 55)]
    # Image-right eye (42..47) around (60, 50): inner 42 at x=50, outer 45 at x=70.
    pts[42:48] = [(50, 50), (55, 45), (65, 45), (70, 50), (65, 55), (55, 55)]
    pts[19] = (40, 30)  # brow: top of the box
    pts[8] = (40, 90)   # chin: bottom of the box
    return pts


def toy5() -> np.ndarray:
    # Eyes 20 px apart; landmark box x 10..30, y 20..40 (20 x 20).
    return np.array([(10, 20), (30, 20), (20, 30), (12, 40), (28, 40)], dtype=float)


# A uniform (0.6, 0.8) shift moves every point exactly 1 px.
UNIT_SHIFT = np.array([0.6, 0.8])


@pytest.mark.parametrize("norm, expected", [
    ("interocular", 1 / 60),
    ("interpupil", 1 / 40),
    ("diagonal", 1 / (60 * math.sqrt(2))),
    ("box_size", 1 / 60),
])
def test_nme_each_normaliser_on_toy68(norm: str, expected: float) -> None:
    gt = toy68()
    assert nme(gt + UNIT_SHIFT, gt, IBUG68, norm) == pytest.approx([expected], rel=1e-12)


@pytest.mark.parametrize("norm, boxes, expected", [
    # One point off by (3, 4) = 5 px, four exact: mean 1 px.
    ("interocular", None, 1 / 20),
    ("interpupil", None, 1 / 20),
    ("diagonal", None, 1 / (20 * math.sqrt(2))),
    ("box_size", None, 1 / 20),
    ("diagonal", [0, 0, 30, 40], 1 / 50),   # a given box: 30 x 40, diagonal 50
    ("box_size", [0, 0, 30, 40], 1 / math.sqrt(1200)),
])
def test_nme_single_point_error_celeba5(norm: str, boxes, expected: float) -> None:
    gt = toy5()
    pred = gt.copy()
    pred[2] += (3, 4)
    assert nme(pred, gt, CELEBA5, norm, boxes=boxes) == pytest.approx([expected], rel=1e-12)


def test_nme_batch_shape_and_scheme_by_name() -> None:
    gt = np.stack([toy68(), toy68() * 2])  # the second face is twice as big: half the NME
    out = nme(gt + UNIT_SHIFT, gt, "68")
    assert out.shape == (2,)
    assert out == pytest.approx([1 / 60, 1 / 120])


def test_normaliser_uses_gt_only() -> None:
    gt = toy68()
    # A prediction that collapses the eyes must not change the denominator.
    pred = gt.copy()
    pred[36:48] = pred[36:48].mean(axis=0)
    assert normaliser(gt, IBUG68) == pytest.approx([60.0])
    assert nme(pred, gt, IBUG68)[0] > 0


def test_nme_shape_and_scheme_errors() -> None:
    gt = toy5()
    with pytest.raises(ValueError, match="shapes differ"):
        nme(gt[:4], gt, CELEBA5)
    with pytest.raises(SchemeError, match="5 points"):
        nme(toy68(), toy68(), CELEBA5)
    with pytest.raises(ValueError, match="normalisation"):
        nme(gt, gt, CELEBA5, "bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        nme(gt.ravel(), gt.ravel(), CELEBA5)


# --------------------------------------------------------------------------- missing values

def kaggle_face() -> np.ndarray:
    pts = np.full((15, 2), [45.0, 60.0])
    pts[3] = (70, 40)  # left_eye_outer_corner (image right)
    pts[5] = (20, 40)  # right_eye_outer_corner (image left): interocular 50
    pts[0] = (62, 40)  # left_eye_center
    pts[1] = (28, 40)  # right_eye_center: interpupil 34
    return pts


def test_nan_gt_points_are_ignored() -> None:
    gt = kaggle_face()
    gt[10] = np.nan               # nose tip missing from the annotation
    pred = kaggle_face()
    pred[10] = (1000, 1000)       # wildly wrong, but there is no GT to score it against
    pred[11] += (3, 4)            # 5 px over the 14 annotated points
    assert nme(pred, gt, KAGGLE15) == pytest.approx([5 / 14 / 50])
    assert nme(pred, gt, KAGGLE15, "interpupil") == pytest.approx([5 / 14 / 34])
    pe = point_errors(pred, gt, KAGGLE15)
    assert np.isnan(pe[0, 10]) and np.isfinite(np.delete(pe[0], 10)).all()


def test_missing_normaliser_point_gives_nan_not_warning() -> None:
    gt = kaggle_face()
    gt[3] = np.nan  # no outer eye corner -> interocular undefined, interpupil still fine
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(nme(gt, gt, KAGGLE15, "interocular")[0])
        assert nme(gt, gt, KAGGLE15, "interpupil")[0] == 0.0


def test_all_nan_face_and_degenerate_normaliser_are_nan_quietly() -> None:
    empty = np.full((5, 2), np.nan)
    same_eyes = toy5()
    same_eyes[1] = same_eyes[0]  # zero interocular distance
    gt = np.stack([empty, same_eyes, toy5()])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for norm in ("interocular", "diagonal"):
            out = nme(toy5()[None].repeat(3, 0), gt, CELEBA5, norm)
            assert np.isnan(out[0]) and np.isfinite(out[2])
        assert np.isnan(nme(same_eyes, same_eyes, CELEBA5)[0])


def test_nan_prediction_is_a_failure_not_skipped() -> None:
    gt = toy5()
    pred = gt.copy()
    pred[4] = np.nan
    e = nme(pred, gt, CELEBA5)
    assert e[0] == np.inf
    assert failure_rate(e, 0.10) == 1.0 and auc(e, 0.10) == 0.0


# --------------------------------------------------------------------------- FR / AUC / CED

T = 0.08


def test_auc_fr_all_zero() -> None:
    e = np.zeros(10)
    assert auc(e, T) == 1.0
    assert failure_rate(e, T) == 0.0


def test_auc_fr_all_above() -> None:
    e = np.full(10, 0.5)
    assert auc(e, T) == 0.0
    assert failure_rate(e, T) == 1.0


def test_auc_uniform_on_zero_to_threshold_is_half() -> None:
    # CED of errors evenly spread on [0, T] is the diagonal: area T/2, normalised 1/2.
    e = np.linspace(0.0, T, 101)
    assert auc(e, T) == pytest.approx(0.5, abs=1e-12)


def test_auc_uniform_on_zero_to_twice_threshold_is_quarter() -> None:
    # CED(t) = t / 2T on [0, T]: area T/4, normalised 1/4; half the faces fail.
    n = 1000
    e = (np.arange(n) + 0.5) / n * 2 * T
    assert auc(e, T) == pytest.approx(0.25, abs=1e-12)
    assert failure_rate(e, T) == 0.5


def test_auc_single_error_and_boundary() -> None:
    assert auc([0.02], T) == pytest.approx(0.75)       # CED is 1 on [0.02, 0.08]
    assert auc([T], T) == 0.0                          # no area, ...
    assert failure_rate([T], T) == 0.0                 # ... but exactly at the threshold is not a failure
    assert failure_rate([T + 1e-12], T) == 1.0


def test_auc_exact_matches_fine_numerical_integration() -> None:
    rng = np.random.default_rng(0)
    e = rng.gamma(2.0, 0.025, size=500)
    x, y = ced(e, T, steps=20001)
    numeric = np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / T
    assert auc(e, T) == pytest.approx(numeric, abs=1e-3)


def test_ced_is_monotone_and_bounded() -> None:
    rng = np.random.default_rng(1)
    e = rng.exponential(0.05, size=300)
    x, y = ced(e, 0.10, steps=51)
    assert x.shape == y.shape == (51,)
    assert x[0] == 0.0 and x[-1] == pytest.approx(0.10)
    assert np.all(np.diff(y) >= 0)
    assert 0.0 <= y[0] and y[-1] <= 1.0
    assert y[-1] == pytest.approx(np.mean(e <= 0.10))


def test_ced_known_values() -> None:
    x, y = ced([0.0, 0.05, 0.05, 0.2], 0.10, steps=3)   # thresholds 0, 0.05, 0.10
    assert x == pytest.approx([0.0, 0.05, 0.10])
    assert y == pytest.approx([0.25, 0.75, 0.75])


def test_aggregates_drop_nan_keep_inf() -> None:
    e = np.array([0.0, np.nan, np.inf, 0.0])
    assert failure_rate(e, T) == pytest.approx(1 / 3)
    assert auc(e, T) == pytest.approx(2 / 3)


@pytest.mark.parametrize("fn", [lambda e: auc(e, T), lambda e: failure_rate(e, T), lambda e: ced(e)])
def test_aggregates_refuse_nothing(fn) -> None:
    with pytest.raises(ValueError, match="no measurable"):
        fn([])
    with pytest.raises(ValueError, match="no measurable"):
        fn([np.nan])


def test_bad_threshold_and_negative_errors() -> None:
    with pytest.raises(ValueError, match="threshold"):
        auc([0.1], 0.0)
    with pytest.raises(ValueError, match="non-negative"):
        failure_rate([-0.1], T)


# --------------------------------------------------------------------------- EvalResult

def test_eval_result_from_errors() -> None:
    e = np.array([0.02, 0.04, 0.09, 0.2, np.nan])
    r = EvalResult.from_errors(e)
    assert r.n == 4 and r.n_unmeasured == 1
    assert r.nme_mean == pytest.approx(0.0875)
    assert r.nme_median == pytest.approx(0.065)
    assert r.fr_08 == 0.5 and r.fr_10 == 0.25
    # AUC@0.08: (0.75 + 0.5 + 0 + 0) / 4; AUC@0.10: (0.8 + 0.6 + 0.1 + 0) / 4
    assert r.auc_08 == pytest.approx(0.3125)
    assert r.auc_10 == pytest.approx(0.375)


def test_eval_result_to_dict_is_json_ready() -> None:
    gt = np.stack([toy5(), toy5()])
    pred = gt.copy()
    pred[:, 2] += (3, 4)
    r = evaluate(pred, gt, CELEBA5)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["n"] == 2 and d["norm"] == "interocular"
    assert d["nme_mean"] == pytest.approx(0.05)
    # Per point: only the nose is off, by 5 px / 20 px.
    assert d["per_point"] == pytest.approx([0, 0, 0.25, 0, 0])
    assert EvalResult.from_errors([0.1]).to_dict()["per_point"] is None


def test_format_table() -> None:
    r = EvalResult.from_errors([0.02, 0.04, 0.09, 0.2], norm="interocular")
    table = r.format_table("300w-full")
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["subset", "n", "NME"]
    assert "300w-full" in lines[2] and "8.75" in lines[2] and "0.3125" in lines[2]
    assert "interocular" in lines[-1]


def test_per_subset() -> None:
    e = np.array([0.01, 0.2, 0.03, np.nan, 0.05])
    labels = ["common", "challenging", "common", "ghost", "challenging"]
    pe = np.arange(10, dtype=float).reshape(5, 2)
    out = per_subset(e, labels, pe, all_label="full")
    assert list(out) == ["common", "challenging", "full"]  # "ghost" has nothing measurable
    assert out["common"].n == 2 and out["common"].nme_mean == pytest.approx(0.02)
    assert out["challenging"].fr_10 == 0.5
    assert out["full"].n == 4 and out["full"].n_unmeasured == 1
    assert out["common"].per_point == pytest.approx([2.0, 3.0])  # rows 0 and 2
    assert "challenging" in results_table(out)
    with pytest.raises(ValueError, match="labels"):
        per_subset(e, labels[:2])


# --------------------------------------------------------------------------- plot

def test_plot_ced_writes_png_of_expected_size(tmp_path: Path) -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    figs_before = plt.get_fignums()
    rng = np.random.default_rng(2)
    path = plot_ced({"model a": rng.exponential(0.04, 200), "model b": rng.exponential(0.06, 200)},
                    tmp_path / "sub" / "ced.png", max_error=0.10, title="test", figsize=(5, 4), dpi=80)
    assert path == tmp_path / "sub" / "ced.png" and path.is_file()
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == (400, 320)
        colours = len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0))
    assert colours > 10                       # not blank
    assert plt.get_fignums() == figs_before   # nothing left in pyplot's global state


def test_plot_ced_refuses_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        plot_ced({}, tmp_path / "x.png")


# --------------------------------------------------------------------------- real data

def _read_pts(path: Path) -> np.ndarray:
    # 300-W .pts: 3 header lines, 68 "x y" lines, "}"; 1-based coordinates.
    return np.loadtxt(path, skiprows=3, max_rows=68) - 1.0


def test_real_afw_one_pixel_shift(shared_data: Path) -> None:
    files = sorted((shared_data / "300w" / "afw").glob("*.pts"))[:5]
    assert files, "no .pts files in 300w/afw"
    gt = np.stack([_read_pts(f) for f in files])
    assert gt.shape == (len(files), 68, 2)
    pred = gt + np.array([1.0, 0.0])
    interocular = np.linalg.norm(gt[:, 45] - gt[:, 36], axis=1)
    assert np.all(interocular > 20)  # sanity: real faces, outer corners well apart
    assert nme(pred, gt, IBUG68) == pytest.approx(1.0 / interocular, rel=1e-9)
