"""Compare's fit check on real annotations: a photo's own points fit it; another photo's points,
points off the photo, or a face away from every detected face are flagged instead of scored."""
from __future__ import annotations

import numpy as np

from facelm.comparison import check_fit
from facelm.image import to_rgb_array
from facelm.io.pts import read_pts

FACE = "300w/afw/1051618982_1"


def test_own_points_fit_and_others_do_not(shared_data):
    img = to_rgb_array(shared_data / f"{FACE}.jpg")
    h, w = img.shape[:2]
    gt = read_pts(shared_data / f"{FACE}.pts")[None]
    own_box = np.array([[gt[0, :, 0].min(), gt[0, :, 1].min(), gt[0, :, 0].max(), gt[0, :, 1].max()]])
    assert check_fit(gt, w, h, own_box).fits.tolist() == [True]
    assert check_fit(gt, w, h, None).fits.tolist() == [True]  # no detector: the photo's bounds only
    assert check_fit(gt, w, h, np.zeros((0, 4))).fits.tolist() == [True]  # found none: proves nothing
    # The same points on a photo a quarter the size: mostly off it.
    small = check_fit(gt, w // 4, h // 4, None)
    assert small.fits.tolist() == [False] and "outside" in small.reasons[0]
    # Points that lie on the photo but nowhere near the face the detector found.
    away = gt.copy()
    away[..., 0] = away[..., 0] - gt[0, :, 0].min()
    away[..., 1] = away[..., 1] - gt[0, :, 1].min()
    far_box = own_box + np.array([[w / 2, h / 2, w / 2, h / 2]])
    flagged = check_fit(away, w, h, far_box)
    assert flagged.fits.tolist() == [False] and "overlaps none" in flagged.reasons[0]


def test_missing_points_do_not_count_against_a_face(shared_data):
    gt = read_pts(shared_data / f"{FACE}.pts")[None].copy()
    gt[0, :20] = np.nan
    assert check_fit(gt, 10_000, 10_000).fits.tolist() == [True]
