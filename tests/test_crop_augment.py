"""The crop rule and the augmentation keep points on the pixels that show them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facelm.augment import AugmentConfig, MirrorFlip, apply, build_augment, build_eval
from facelm.crop import crop_matrix, invert, transform_points, uncrop_points, warp
from facelm.crop_cache import build_cache, cache_size
from facelm.face_box import face_box, upright_face_box
from facelm.schemes import IBUG68, get_scheme


def _blobs(h: int, w: int, pts: np.ndarray, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w), np.float32)
    for x, y in pts:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    return np.repeat((img.clip(0, 1) * 255)[..., None], 3, axis=2)


def _centroid(img: np.ndarray, x: float, y: float, r: int) -> tuple[float, float]:
    xi, yi = int(round(x)), int(round(y))
    win = img[yi - r:yi + r + 1, xi - r:xi + r + 1].astype(np.float64)
    ys, xs = np.mgrid[yi - r:yi + r + 1, xi - r:xi + r + 1]
    return float((win * xs).sum() / win.sum()), float((win * ys).sum() / win.sum())


@pytest.mark.parametrize("size,rotation", [(112, 0.0), (112, 17.0), (48, 0.0), (24, -30.0)])
def test_crop_points_follow_pixels(size: int, rotation: float) -> None:
    pts = np.array([[210.0, 230.0], [330.0, 260.0], [270.0, 380.0]])
    img = _blobs(600, 500, pts, sigma=6.0)
    box = np.array([190, 200, 350, 400], np.float64)
    m = crop_matrix(box, size, rotation_deg=rotation)
    crop = warp(img, m, size)
    mapped = transform_points(pts, m)
    for x, y in mapped:
        cx, cy = _centroid(crop[..., 0], x, y, r=max(2, size // 16))
        assert abs(cx - x) < 0.25 and abs(cy - y) < 0.25
    np.testing.assert_allclose(transform_points(mapped, invert(m)), pts, atol=1e-3)


def test_uncrop_maps_every_crop_back_by_its_own_matrix() -> None:
    pts = np.array([[210.0, 230.0], [330.0, 260.0], [270.0, 380.0]])
    boxes = [np.array([190, 200, 350, 400.0]), np.array([100, 120, 420, 480.0]), np.array([250, 150, 300, 260.0])]
    mats = [crop_matrix(b, 96, rotation_deg=r) for b, r in zip(boxes, (0.0, 25.0, -40.0))]
    in_crops = np.stack([transform_points(pts, m) for m in mats])
    back = uncrop_points(in_crops, mats)
    assert back.dtype == np.float32 and back.shape == (3, 3, 2)
    np.testing.assert_allclose(back, np.broadcast_to(pts, back.shape), atol=1e-3)
    assert uncrop_points(np.zeros((0, 68, 2), np.float32), []).shape == (0, 68, 2)


@pytest.mark.parametrize("size", [112, 48, 24])
def test_crop_reads_only_the_pixels_under_it(size: int) -> None:
    """A face cut from a big photo is the same crop as from a small one (only the region under the crop
    is shrunk), and a crop that runs off the photo's edge still puts points on their pixels."""
    pts = np.array([[210.0, 230.0], [330.0, 260.0], [270.0, 380.0]])
    img = _blobs(600, 500, pts, sigma=6.0).astype(np.uint8)
    box = np.array([190, 200, 350, 400], np.float64)
    big = np.zeros((3000, 4000, 3), np.uint8)
    big[1001:1601, 1502:2002] = img
    small_crop = warp(img, crop_matrix(box, size), size)
    big_crop = warp(big, crop_matrix(box + [1502, 1001, 1502, 1001], size), size)
    assert np.abs(small_crop.astype(int) - big_crop).max() <= 1
    edge = img[150:, 180:]  # the box now starts 10 px from the left edge and 50 px from the top
    m = crop_matrix(box - [180, 150, 180, 150], size)
    crop = warp(edge, m, size)
    for x, y in transform_points(pts - [180, 150], m):
        cx, cy = _centroid(crop[..., 0], x, y, r=max(2, size // 16))
        assert abs(cx - x) < 0.3 and abs(cy - y) < 0.3


def test_crop_centre_and_side() -> None:
    m = crop_matrix(np.array([10, 20, 110, 220]), 100, scale=1.0)
    # the box's long side (200 px) spans the crop; its centre lands on the crop centre
    c = transform_points(np.array([[60.0, 120.0]]), m)[0]
    np.testing.assert_allclose(c, [49.5, 49.5], atol=1e-6)  # continuous centre 50 is between pixels 49 and 50
    a, b = transform_points(np.array([[60.0, 20.0], [60.0, 220.0]]), m)
    assert abs((b[1] - a[1]) - 100.0) < 1e-6


def _rotate(pts: np.ndarray, deg: float, about: np.ndarray) -> np.ndarray:
    a = np.radians(deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (pts - about) @ r.T + about


@pytest.mark.parametrize("scheme,k", [("ibug68", 68), ("celeba5", 5)])
def test_upright_crop_does_not_depend_on_the_roll_of_the_face(scheme: str, k: int) -> None:
    rng = np.random.default_rng(0)
    face = rng.uniform(100, 200, (k, 2))
    level = face.copy()
    left, right = (list(e) for e in get_scheme(scheme).pupils)
    level[left, 0] -= 80  # the image-left eye on the left,
    level[left, 1] += level[right, 1].mean() - level[left, 1].mean()  # level with the other one
    box, roll = upright_face_box(level, scheme)
    assert abs(float(roll)) < 1e-4
    np.testing.assert_allclose(box, face_box(level, scheme), atol=1e-3)
    for deg in (25.0, -70.0, 160.0):
        turned = _rotate(level, deg, np.array([37.0, -12.0]))
        tbox, troll = upright_face_box(turned, scheme)
        assert abs((float(troll) - deg + 180) % 360 - 180) < 1e-3
        np.testing.assert_allclose(tbox[2:] - tbox[:2], box[2:] - box[:2], atol=1e-3)
        # The upright crop of the turned face is the crop of the level face, point for point.
        a = transform_points(level, crop_matrix(box, 112))
        b = transform_points(turned, crop_matrix(tbox, 112, rotation_deg=float(troll)))
        np.testing.assert_allclose(a, b, atol=1e-3)
    batch, rolls = upright_face_box(np.stack([level, _rotate(level, 30.0, level[0])]), scheme)
    assert batch.shape == (2, 4) and np.allclose(rolls, [0.0, 30.0], atol=1e-3)


def test_mirror_flip_renumbers_and_mirrors() -> None:
    from torchvision import tv_tensors
    flip = MirrorFlip(IBUG68.flip, p=1.0)
    pts = torch.rand(68, 2) * 50
    img = tv_tensors.Image(torch.zeros(3, 60, 64, dtype=torch.uint8))
    kp = tv_tensors.KeyPoints(pts.clone(), canvas_size=(60, 64))
    _, out = flip(img, kp)
    out = out.as_subclass(torch.Tensor)
    assert torch.allclose(out[45], torch.tensor([63 - pts[36, 0], pts[36, 1]]))  # outer eye corners swap
    assert torch.allclose(out[8], torch.tensor([63 - pts[8, 0], pts[8, 1]]))     # chin stays the chin
    twice = flip(img, tv_tensors.KeyPoints(out.clone(), canvas_size=(60, 64)))[1]
    assert torch.allclose(twice.as_subclass(torch.Tensor), pts, atol=1e-5)


@pytest.mark.parametrize("flip_p", [0.0, 1.0])
def test_augment_keeps_points_on_their_blobs(flip_p: float) -> None:
    torch.manual_seed(0)
    c = cache_size(64, 1.75)
    pts = np.zeros((68, 2), np.float32) + c / 2
    pts[36] = [c / 2 - 14, c / 2 - 6]   # two blobs that the flip must swap
    pts[45] = [c / 2 + 12, c / 2 - 8]
    img = _blobs(c, c, pts[[36, 45]], sigma=2.0).astype(np.uint8)
    cfg = AugmentConfig(flip=flip_p, brightness=0, contrast=0, saturation=0, hue=0, grayscale=0, blur=0)
    t = build_augment(IBUG68, 64, cfg)
    for _ in range(10):
        out, kp = apply(t, torch.from_numpy(img), torch.from_numpy(pts))
        a = out[0].float().numpy()
        for k in (36, 45):
            x, y = kp[k].tolist()
            cx, cy = _centroid(a, x, y, r=8)
            # to a few hundredths of a pixel: torchvision's own affine is 0.1-0.3 px off at these angles
            assert abs(cx - x) < 0.05 and abs(cy - y) < 0.05, (k, x, y, cx, cy)
        # point 36 stays on the image's left of point 45 whatever the flip did
        assert kp[36, 0] < kp[45, 0]


def test_eval_transform_is_the_inference_crop() -> None:
    """The centre of a cached crop equals the crop FaceLandmarker makes from the same box."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (300, 280, 3), dtype=np.uint8)
    box = np.array([80, 90, 200, 230], np.float32)
    pts = rng.uniform(90, 200, (68, 2)).astype(np.float32)
    cache = build_cache([{"image": img, "landmarks": pts, "box": box, "source": "x"}], 64, 1.3)
    out, kp = apply(build_eval(64), torch.from_numpy(cache.images[0]), torch.from_numpy(cache.landmarks[0]))
    m = crop_matrix(box, 64, 1.3)
    direct = warp(img, m, 64)
    np.testing.assert_allclose(kp.numpy(), transform_points(pts, m), atol=1e-3)
    assert np.abs(out.permute(1, 2, 0).numpy().astype(int) - direct.astype(int)).mean() < 2.0


def test_augment_strength_scales_the_geometric_jitter() -> None:
    """Strength 0 leaves the geometry alone (points land where the evaluation crop puts them); the
    default strength moves them; colour jitter is not what strength turns down."""
    torch.manual_seed(0)
    c = cache_size(64, 1.75)
    pts = torch.from_numpy(np.random.default_rng(1).uniform(30, 80, (68, 2)).astype(np.float32))
    img = torch.zeros(c, c, 3, dtype=torch.uint8)
    base = AugmentConfig(flip=0.0)
    _, ref = apply(build_eval(64), img, pts)
    moved = []
    for strength in (0.0, 1.0):
        cfg = base.scaled(strength)
        assert cfg.brightness == base.brightness
        t = build_augment(IBUG68, 64, cfg)
        moved.append(max(float((apply(t, img, pts)[1] - ref).abs().max()) for _ in range(5)))
    assert moved[0] < 1e-3 and moved[1] > 1.0
    half = base.scaled(0.5)
    assert half.rotation == base.rotation / 2 and half.scale == pytest.approx((0.925, 1.075))


def test_occlusion_paints_one_flat_patch_and_keeps_the_points() -> None:
    """Occlusion covers a rectangle with a single colour and leaves the labels alone, without
    torchvision's pass-through warning on every sample."""
    import warnings
    from torchvision import tv_tensors
    from facelm.augment import Occlude
    torch.manual_seed(0)
    img = tv_tensors.Image(torch.full((3, 64, 64), 7, dtype=torch.uint8))
    pts = torch.rand(68, 2) * 60
    colours = set()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(10):
            out, kp = Occlude(p=1.0, scale=(0.02, 0.2), value=0)(img, tv_tensors.KeyPoints(pts.clone(), canvas_size=(64, 64)))
            changed = (out != 7).any(0)
            ys, xs = torch.nonzero(changed, as_tuple=True)
            area = int(changed.sum())
            assert 0.01 * 64 * 64 < area <= 0.2 * 64 * 64 + 64
            assert area == (int(ys.max() - ys.min()) + 1) * (int(xs.max() - xs.min()) + 1)  # a filled rectangle
            patch = out[:, changed]
            assert (patch == patch[:, :1]).all()
            colours.add(tuple(patch[:, 0].tolist()))
            assert torch.equal(kp.as_subclass(torch.Tensor), pts)
    assert len(colours) > 5
    never = build_augment(IBUG68, 64, AugmentConfig(flip=0, brightness=0, contrast=0, saturation=0, hue=0,
                                                    grayscale=0, blur=0).scaled(0.0))
    assert torch.equal(apply(never, img.permute(1, 2, 0), pts)[0], img.as_subclass(torch.Tensor))
