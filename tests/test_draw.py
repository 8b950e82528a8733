"""facelm.draw: numpy in, new numpy out; points land where they should, in the colour asked for."""
from __future__ import annotations

import numpy as np
import pytest

from facelm.draw import (
    BOX_COLOR, ERROR_LINE_COLOR, GT_COLOR, HIGHLIGHT_COLOR, PRED_COLOR, draw_comparison, draw_landmarks, to_rgb,
    worst_points,
)
from facelm.errors import ImageError, SchemeError
from facelm.schemes import CELEBA5, IBUG68


def blank(h: int = 100, w: int = 120) -> np.ndarray:
    return np.zeros((h, w, 3), dtype=np.uint8)


def face5() -> np.ndarray:
    return np.array([(30, 30), (70, 30), (50, 50), (35, 70), (65, 70)], dtype=float)


def tinted(pixel: np.ndarray, colour: tuple[int, int, int]) -> bool:
    """The pixel is ``colour`` at least half covered over black (anti-aliased lines are not solid)."""
    c = np.asarray(colour, dtype=float)
    alpha = float(np.max(pixel)) / c.max()
    return 0.5 <= alpha <= 1.0 and np.allclose(pixel, alpha * c, atol=3)


def painted(img: np.ndarray) -> int:
    return int(np.count_nonzero(img.any(axis=2)))


def test_output_shape_dtype_and_input_untouched() -> None:
    img = np.random.default_rng(0).integers(0, 256, (100, 120, 3), dtype=np.uint8)
    before = img.copy()
    out = draw_landmarks(img, face5(), CELEBA5)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert out is not img and not np.shares_memory(out, img)
    np.testing.assert_array_equal(img, before)
    assert not np.array_equal(out, img)


def test_pixel_at_landmark_takes_the_colour() -> None:
    out = draw_landmarks(blank(), face5(), CELEBA5, color=(10, 200, 30), radius=3, lines=False)
    for x, y in face5().astype(int):
        assert tuple(out[y, x]) == (10, 200, 30)
    assert tuple(out[5, 5]) == (0, 0, 0)


def test_sub_pixel_position_matters() -> None:
    a = draw_landmarks(blank(), [[50.0, 50.0]], radius=3)
    b = draw_landmarks(blank(), [[50.5, 50.0]], radius=3)
    assert not np.array_equal(a, b)


def test_lines_follow_scheme_connections() -> None:
    pts = face5()
    no_lines = draw_landmarks(blank(), pts, CELEBA5, radius=2, lines=False)
    with_lines = draw_landmarks(blank(), pts, CELEBA5, radius=2, lines=True)
    assert tinted(with_lines[30, 50], (255, 0, 0))        # midway between the eyes (connection "eyes")
    assert tuple(no_lines[30, 50]) == (0, 0, 0)
    assert painted(draw_landmarks(blank(), pts, None, radius=2)) == painted(no_lines)  # no scheme: no lines


def test_nan_points_and_their_lines_are_skipped() -> None:
    pts = face5()
    pts[1] = np.nan
    out = draw_landmarks(blank(), pts, CELEBA5, radius=2)
    assert tuple(out[30, 50]) == (0, 0, 0)               # the eye line would need point 1
    assert tuple(out[30, 30]) == (255, 0, 0)
    all_nan = draw_landmarks(blank(), np.full((5, 2), np.nan), CELEBA5)
    np.testing.assert_array_equal(all_nan, blank())


def test_absurd_coordinates_do_not_crash() -> None:
    pts = face5()
    pts[0] = (1e12, -1e12)
    pts[1] = (np.inf, 3)
    out = draw_landmarks(blank(), pts, CELEBA5)
    assert out.shape == (100, 120, 3)
    assert tuple(out[50, 50]) == (255, 0, 0)        # the sane points are still drawn ...
    assert painted(out) < 0.1 * out.shape[0] * out.shape[1]  # ... at a sane size


@pytest.mark.parametrize("shape", [(100, 120), (100, 120, 1), (100, 120, 4)])
def test_gray_and_rgba_become_rgb(shape: tuple[int, ...]) -> None:
    img = np.full(shape, 77, dtype=np.uint8)
    before = img.copy()
    out = draw_landmarks(img, face5(), CELEBA5, radius=2)
    assert out.shape == (100, 120, 3) and out.dtype == np.uint8
    assert tuple(out[2, 2]) == (77, 77, 77)
    assert tuple(out[30, 30]) == (255, 0, 0)
    np.testing.assert_array_equal(img, before)


def test_to_rgb_rejects_other_types() -> None:
    with pytest.raises(ImageError, match="uint8"):
        to_rgb(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ImageError, match="shape"):
        to_rgb(np.zeros((4, 4, 2), dtype=np.uint8))


def test_multiple_faces_and_boxes() -> None:
    faces = np.stack([face5() * 0.5, face5() * 0.5 + (60, 40)])
    boxes = np.array([[5, 5, 45, 45], [62, 45, 110, 90]], dtype=float)
    out = draw_landmarks(blank(), faces, CELEBA5, boxes=boxes, radius=1.5, lines=False)
    for x, y in faces.reshape(-1, 2).astype(int):
        assert tuple(out[y, x]) == (255, 0, 0)
    assert tinted(out[5, 25], BOX_COLOR)    # top edge of the first box
    assert tinted(out[70, 110], BOX_COLOR)  # right edge of the second
    with pytest.raises(ValueError, match="boxes"):
        draw_landmarks(blank(), faces, CELEBA5, boxes=boxes[:1])


def test_auto_radius_grows_with_face_size() -> None:
    small = draw_landmarks(blank(400, 400), face5(), CELEBA5, lines=False)
    big = draw_landmarks(blank(400, 400), face5() * 5, CELEBA5, lines=False)
    assert painted(big) > painted(small) > 0


def test_highlight_rings_points() -> None:
    plain = draw_landmarks(blank(), face5(), CELEBA5, radius=2, lines=False)
    marked = draw_landmarks(blank(), face5(), CELEBA5, radius=2, lines=False, highlight=[2],
                            highlight_color=(0, 0, 255))
    assert painted(marked) > painted(plain)
    assert tuple(marked[50, 50]) == (0, 0, 255)
    assert tuple(marked[30, 30]) == (255, 0, 0)  # other points unchanged
    with pytest.raises(ValueError, match="out of range"):
        draw_landmarks(blank(), face5(), CELEBA5, highlight=[5])
    with pytest.raises(ValueError, match="per-face"):
        draw_landmarks(blank(), face5(), CELEBA5, highlight=[[0], [1]])


def test_labels_add_text() -> None:
    plain = draw_landmarks(blank(), face5(), CELEBA5, radius=2)
    labelled = draw_landmarks(blank(), face5(), CELEBA5, radius=2, labels=True)
    assert painted(labelled) > painted(plain)


def test_scheme_mismatch_and_bad_shapes() -> None:
    with pytest.raises(SchemeError):
        draw_landmarks(blank(), face5(), IBUG68)
    with pytest.raises(ValueError, match="shape"):
        draw_landmarks(blank(), np.zeros((5, 3)), CELEBA5)


def test_draw_comparison_colours() -> None:
    gt = face5()
    pred = gt + (0, 12)
    img = blank()
    before = img.copy()
    out = draw_comparison(img, gt, pred, CELEBA5, radius=2, lines=False, worst_k=0)
    np.testing.assert_array_equal(img, before)
    assert out.shape == (100, 120, 3) and out.dtype == np.uint8
    for (gx, gy), (px, py) in zip(gt.astype(int), pred.astype(int)):
        assert tuple(out[gy, gx]) == GT_COLOR
        assert tuple(out[py, px]) == PRED_COLOR
        assert tinted(out[(gy + py) // 2, gx], ERROR_LINE_COLOR)
    no_err = draw_comparison(img, gt, pred, CELEBA5, radius=2, lines=False, worst_k=0, error_lines=False)
    assert tuple(no_err[36, 30]) == (0, 0, 0)


def test_draw_comparison_highlights_worst_points() -> None:
    gt = face5()
    pred = gt.copy()
    pred[3] += (0, 8)  # the worst point
    pred[0] += (0, 3)
    out = draw_comparison(blank(), gt, pred, CELEBA5, radius=2, lines=False, worst_k=1)
    x, y = pred[3].astype(int)
    assert tuple(out[y, x]) == HIGHLIGHT_COLOR
    x, y = pred[0].astype(int)
    assert tuple(out[y, x]) == PRED_COLOR


def test_worst_points_skips_missing_gt() -> None:
    gt = face5()
    gt[4] = np.nan
    pred = face5() + np.array([[0, 1], [0, 2], [0, 0], [0, 3], [0, 9]], dtype=float)
    assert worst_points(gt, pred, 2)[0].tolist() == [3, 1]
    assert worst_points(gt, pred, 10)[0].tolist() == [3, 1, 0, 2]
    assert worst_points(gt, pred, 0)[0].tolist() == []
