"""Knowledge distillation: train.distill's teacher targets and train.train --teacher."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facelm import FaceLandmarker
from facelm.hub import load_model
from facelm.metrics import nme
from facelm.schemes import get_scheme
from train.split_caches import DataSpec, load_caches
from train.distill import blend, flip_test_points
from train.crop_eval import gt_in_crop
from train.cached_faces import CachedFaces

pytestmark = pytest.mark.usefixtures("one_torch_thread")
IBUG = get_scheme("ibug68")


@pytest.fixture()
def xml(shared_data: Path) -> str:
    return str(shared_data / "dlib_examples_faces" / "training_with_face_landmarks.xml")


def _faces(xml: str, size: int, cache_dir: Path):
    _, cache = load_caches(DataSpec([xml], [xml], 1.0), size, 1.3, str(cache_dir), IBUG)
    faces = CachedFaces(cache, IBUG, train=False, in_chans=3)
    x = torch.stack([faces[i][0] for i in range(len(faces))])
    return cache, x


def test_teacher_points_are_the_landmarkers_flip_test(tmp_path: Path, xml: str) -> None:
    """On real face crops: the same points as FaceLandmarker's flip test (float32), nearly the same
    under bfloat16 autocast, and a teacher of another input size answers in these crops' pixels."""
    cache, x = _faces(xml, 128, tmp_path / "cache")
    teacher = load_model("ibug68")
    got = flip_test_points(teacher, x, IBUG).numpy()
    crops = x.permute(0, 2, 3, 1).round().to(torch.uint8).numpy()
    ref = FaceLandmarker(teacher, detector=None, flip_test=True).predict_crops(crops)
    np.testing.assert_allclose(got, ref, atol=1e-3)
    bf16 = flip_test_points(teacher, x, IBUG, torch.autocast("cpu", dtype=torch.bfloat16)).numpy()
    assert np.abs(bf16 - got).mean() < 0.1
    gt = gt_in_crop(cache)
    small = flip_test_points(load_model("ibug68_fast"), x, IBUG).numpy()  # a 96 px model on 128 px crops
    assert nme(small, gt, IBUG).mean() < 1.5 * nme(got, gt, IBUG).mean()
    assert np.abs(small - got).mean() < 2.0


def test_blend_moves_labels_towards_the_teacher() -> None:
    labels, teacher = torch.zeros(2, 68, 2), torch.full((2, 68, 2), 4.0)
    torch.testing.assert_close(blend(labels, teacher, 0.0), labels)
    torch.testing.assert_close(blend(labels, teacher, 0.25), torch.full((2, 68, 2), 1.0))
    torch.testing.assert_close(blend(labels, teacher, 1.0), teacher)


def test_training_with_a_teacher_learns_its_points(tmp_path: Path, xml: str) -> None:
    """With --distill 1 and the starting model as its own teacher, the targets are that model's
    flip-test points, which it already nearly reproduces: the training loss is below the one on dlib's
    labels (a run at a learning rate too small to move the weights; ignoring the teacher would give the
    same loss to the last digit). Most of the loss is the score maps' cross-entropy floor, which no
    target lowers: measured 3.59 on the labels, 3.48 on the teacher's points."""
    from train.train import main as train_main
    args = ["--data", xml, "--val-data", xml, "--cache-dir", str(tmp_path / "cache"), "--batch-size", "8",
            "--num-workers", "0", "--threads", "1", "--epochs", "1", "--lr", "1e-9", "--augment", "0",
            "--init-from", "ibug68_fast"]
    loss = {}
    for weight in ("0", "1"):
        out = tmp_path / weight
        train_main(args + ["--out", str(out), "--teacher", "ibug68_fast", "--distill", weight])
        saved = torch.load(out / "checkpoint.pt", weights_only=False)
        assert saved["config"]["teacher"] == "ibug68_fast"
        loss[weight] = saved["state"]["history"][0]["train_loss"]
        assert f"moved {float(weight):.0%} of the way to the flip-test points of `ibug68_fast`" in \
            (out / "best" / "README.md").read_text()  # the model card says how it was trained
    assert loss["1"] < loss["0"] - 0.05, loss


@pytest.mark.parametrize(("extra", "message"), [(["--teacher", "celeba5"], "predicts celeba5 points"),
                                                (["--teacher", "ibug68_fast", "--distill", "1.5"], "from 0 to 1"),
                                                (["--distill", "0.3"], "give --teacher")])
def test_a_teacher_that_does_not_fit_is_refused(tmp_path: Path, xml: str, extra: list[str], message: str) -> None:
    from train.train import main as train_main
    with pytest.raises(SystemExit, match=message):
        train_main(["--data", xml, "--val-data", xml, "--cache-dir", str(tmp_path / "cache"), "--out",
                    str(tmp_path / "run"), "--epochs", "1", "--init-from", "ibug68_fast", "--num-workers", "0"] + extra)
