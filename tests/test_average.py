"""train.average: weights of several checkpoints of one run, averaged into a loadable model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facelm import FaceLandmarker
from facelm.models import LandmarkModel
from train.average import average_weights, main as average_main


def _model(seed: int, width: int = 8) -> LandmarkModel:
    torch.manual_seed(seed)
    model = LandmarkModel(width=width, input_size=48)
    with torch.no_grad():  # distinct BatchNorm statistics too, so that averaging them is visible
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return model.eval()


def test_average_of_a_folder_and_a_checkpoint(tmp_path: Path) -> None:
    a, b = _model(0), _model(1)
    a.save_pretrained(tmp_path / "a")
    torch.save({"model": b.state_dict(), "state": {}}, tmp_path / "b.pt")
    average_main([str(tmp_path / "a"), str(tmp_path / "b.pt"), "--like", str(tmp_path / "a"),
                  "--out", str(tmp_path / "avg")])
    fl = FaceLandmarker.from_pretrained(tmp_path / "avg")
    got = fl.model.state_dict()
    sa, sb = a.state_dict(), b.state_dict()
    for k, v in got.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, (sa[k] + sb[k]) / 2)
    assert not torch.equal(got["backbone.stem.0.1.running_mean"], sa["backbone.stem.0.1.running_mean"])
    img = np.random.default_rng(0).integers(0, 255, (120, 100, 3), dtype=np.uint8)
    pts = fl.predict(img, boxes=np.array([[20, 20, 80, 100]], np.float32)).landmarks
    assert pts.shape == (1, 68, 2) and np.isfinite(pts).all()


def test_average_refuses_mixed_architectures(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shapes differ|not one architecture"):
        average_weights([_model(0).state_dict(), _model(0, width=16).state_dict()])
    with pytest.raises(ValueError, match="nothing"):
        average_weights([])
    torch.save({"weights": {}}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a train.train checkpoint"):
        average_main([str(tmp_path / "x.pt"), "--like", "ibug68_fast", "--out", str(tmp_path / "o")])
