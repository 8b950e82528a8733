"""Every registered architecture builds, trains one step, decodes to the right shape, and the
pipnet decoder inverts its own training targets exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facelm.models import LandmarkModel, list_backbones, list_heads


@pytest.mark.parametrize("backbone", list_backbones())
@pytest.mark.parametrize("head", list_heads())
def test_every_architecture_trains_and_decodes(backbone: str, head: str) -> None:
    torch.manual_seed(0)
    width = 64 if backbone == "resnet18" else 16
    nb = [[(i + j + 1) % 68 for j in range(3)] for i in range(68)] if head == "pipnet" else None
    model = LandmarkModel(backbone=backbone, head=head, width=width, input_size=64, neighbors=nb)
    x = torch.rand(2, 3, 64, 64) * 255
    target = torch.rand(2, 68, 2) * 60
    terms = model.loss(x, target)
    assert torch.isfinite(terms["total"])
    terms["total"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    out = model.eval().predict(x)
    assert out.shape == (2, 68, 2)


def test_grayscale_resnet18() -> None:
    model = LandmarkModel(backbone="resnet18", head="regression", width=64, in_chans=1, input_size=64)
    assert model.backbone.stem[0].in_channels == 1
    assert model.eval().predict(torch.rand(1, 1, 64, 64) * 255).shape == (1, 68, 2)


def test_unknown_names_are_clear() -> None:
    with pytest.raises(KeyError, match="unknown backbone 'nope'.*facelm_res"):
        LandmarkModel(backbone="nope")
    with pytest.raises(KeyError, match="unknown head"):
        LandmarkModel(head="nope")


def test_pipnet_decode_inverts_its_targets() -> None:
    """Outputs that put all score on the target cell and exact offsets from every cell must decode back
    to the target points, including the neighbour votes, and minimise the offset losses."""
    torch.manual_seed(1)
    nb = [[(i + 1) % 68, (i + 5) % 68] for i in range(68)]
    model = LandmarkModel(input_size=64, width=16, neighbors=nb).eval()
    head = model.head
    target = torch.rand(1, 68, 2) * 62
    g, s = head.grid, head.stride
    u = (target + 0.5) / s
    cell = u.floor()
    score = torch.full((1, 68, g, g), -10.0)
    score[0, torch.arange(68), cell[0, :, 1].long(), cell[0, :, 0].long()] = 10.0
    grid = torch.arange(g, dtype=torch.float32)
    # the offset field that points from every cell to each point (x: varies along columns, y: rows)
    fx = u[0, :, 0, None, None] - grid[None, None, :]
    fy = u[0, :, 1, None, None] - grid[None, :, None]
    offset = torch.cat([fx.expand(68, g, g), fy.expand(68, g, g)])[None]
    idx = torch.tensor(nb).T.reshape(-1)  # vote m of point k at channel m * 68 + k
    nb_off = torch.cat([offset[:, idx], offset[:, 68 + idx]], dim=1)
    out = head.decode({"score": score, "offset": offset, "nb_offset": nb_off})
    np.testing.assert_allclose(out.numpy(), target.numpy(), atol=1e-4)
    terms = head.loss({"score": score, "offset": offset, "nb_offset": nb_off}, target)
    assert float(terms["offset"]) < 1e-6 and float(terms["neighbor"]) < 1e-6
    # Offsets right at the true cell only are not enough: the score's argmax often lands next to it.
    only_true_cell = torch.zeros_like(offset)
    for k in range(68):
        cx, cy = int(cell[0, k, 0]), int(cell[0, k, 1])
        only_true_cell[0, [k, 68 + k], cy, cx] = offset[0, [k, 68 + k], cy, cx]
    wrong = head.loss({"score": score, "offset": only_true_cell, "nb_offset": nb_off}, target)
    assert float(wrong["offset"]) > 0.3


@pytest.mark.parametrize("name", ["ibug68", "ibug68_fast", "celeba5"])
def test_pipnet_predict_equals_decoding_the_full_maps(name, shared_data) -> None:
    """Inference computes the offsets only at the chosen cells; it must give the points that decoding
    the whole offset maps (what training sees) gives, on real faces with the bundled weights."""
    from facelm.hub import load_model
    from facelm.onnx_backend import calibration_crops
    model = load_model(name).float()
    data = shared_data / ("five_point/list_landmarks.csv" if name == "celeba5" else "300w")
    x = torch.from_numpy(calibration_crops(model, [data], n=8, split="validation"))
    with torch.inference_mode():
        sparse, full = model.predict(x), model.decode(model(x))
    assert sparse.shape == (8, model.num_points, 2)
    np.testing.assert_allclose(sparse.numpy(), full.numpy(), atol=1e-3)
    assert float(sparse.std(dim=1).min()) > model.input_size / 20  # a face's points, not one spot


def test_pipnet_predict_on_an_odd_grid() -> None:
    """An input size whose grid is odd takes the other upsampling path; both paths must agree."""
    torch.manual_seed(3)
    nb = [[(i + 1) % 68, (i + 7) % 68] for i in range(68)]
    model = LandmarkModel(input_size=72, width=16, neighbors=nb).eval()
    x = torch.rand(3, 3, 72, 72) * 255
    with torch.inference_mode():
        np.testing.assert_allclose(model.predict(x).numpy(), model.decode(model(x)).numpy(), atol=1e-3)


def test_growing_the_bundled_model_keeps_its_landmarks_and_can_train(shared_data) -> None:
    """A wider and deeper copy of the bundled model predicts the same landmarks on real faces, and the
    parts it added get gradients (zero-scale BatchNorms must not be dead ends)."""
    from facelm import FaceLandmarker
    from facelm.photo_evaluation import iter_annotated
    from facelm.hub import load_model
    from facelm.models.growth import grow, size_of

    base = load_model(None).eval()
    width, depth = size_of(base, "width") + 8, size_of(base, "depth") + 1
    grown = grow(base, width=width, depth=depth).eval()
    assert grown.backbone.channels == (2 * width, 4 * width) and len(grown.backbone.s16) == depth + 1
    assert sum(p.numel() for p in grown.parameters()) > 1.5 * sum(p.numel() for p in base.parameters())
    photos = list(iter_annotated([shared_data / "300w"], every=40, split="validation"))
    assert len(photos) >= 3
    for ph in photos:
        a = FaceLandmarker(base, detector=None).predict(ph.path, boxes=ph.boxes).landmarks
        b = FaceLandmarker(grown, detector=None).predict(ph.path, boxes=ph.boxes).landmarks
        np.testing.assert_allclose(b, a, atol=1e-3)

    grown.train()
    opt = torch.optim.SGD(grown.parameters(), lr=1e-3)
    x = torch.rand(4, 3, base.input_size, base.input_size) * 255
    target = torch.rand(4, 68, 2) * (base.input_size - 1)
    for _ in range(2):  # the new channels' scales wake up at the second step (see facelm.models.growth)
        opt.zero_grad()
        grown.loss(x, target)["total"].backward()
        opt.step()
    for norm in (grown.backbone.stem[0][1], grown.backbone.s8[0].conv1[1], grown.head.fuse[1]):
        assert norm.weight.grad[norm.weight.shape[0] * 4 // 5:].abs().min() > 0, "new channels get no gradient"
    assert grown.backbone.s16[2].last_norm.weight.grad.abs().min() > 0, "a new block gets no gradient"


def test_growing_refuses_to_shrink_or_change_other_things() -> None:
    from facelm.models.growth import grow
    model = LandmarkModel(width=16, depth=2, input_size=64)
    with pytest.raises(ValueError, match="cannot shrink width"):
        grow(model, width=8)
    with pytest.raises(ValueError, match="cannot shrink depth"):
        grow(model, depth=1)
    with pytest.raises(ValueError, match="only grow"):
        grow(model, input_size=96)
    with pytest.raises(ValueError, match="fixed depth"):
        LandmarkModel(backbone="simple_cnn", depth=2)


def test_shallower_copy_keeps_the_first_blocks_and_builds_the_student_init(shared_data) -> None:
    """The start of a faster model: each stage's first blocks and every other weight of the deeper
    model, one stride-1 block per stage, still a face-shaped prediction on real faces."""
    from facelm.hub import load_model
    from facelm.models.growth import shallower, size_of
    from facelm.onnx_backend import calibration_crops

    base = load_model(None).float().eval()
    assert size_of(base, "depth") == 2
    small = shallower(base, 1).eval()
    assert len(small.backbone.s8) == len(base.backbone.s8) - 1 and size_of(small, "depth") == 1
    for name, t in small.state_dict().items():
        torch.testing.assert_close(t, base.state_dict()[name])
    x = torch.from_numpy(calibration_crops(base, [shared_data / "300w"], n=6, split="validation"))
    with torch.inference_mode():
        a, b = base.predict(x), small.predict(x)
    err = (a - b).norm(dim=-1).mean() / (a[:, 36] - a[:, 45]).norm(dim=-1).mean()
    assert 0.005 < float(err) < 0.2, "a shallower copy is a near start, not the same network"
    with pytest.raises(ValueError, match="1 <= depth <= 2"):
        shallower(base, 3)
    with pytest.raises(ValueError, match="only facelm_res"):
        shallower(LandmarkModel(backbone="simple_cnn", width=16, input_size=64), 1)
