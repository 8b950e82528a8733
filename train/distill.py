"""Distillation targets: a frozen teacher's points on the very crops a training step sees.

The teacher runs with the flip test (its points on the crop and on the mirrored crop, mirrored back,
plus its mirror_offset), which is more accurate than one pass; the student learns a blend of the
labels and those points. Figures and the runs that used it: docs/training.md#distillation.
"""
from __future__ import annotations

from contextlib import AbstractContextManager

import torch

from facelm.landmarker import flip_test_mean
from facelm.models import LandmarkModel
from facelm.schemes import Scheme, get_scheme

from .crop_eval import points_at


def check_teacher(teacher: LandmarkModel, student: LandmarkModel) -> None:
    """Refuse a teacher whose points or crops mean something else than the student's."""
    if get_scheme(teacher.scheme) != get_scheme(student.scheme):
        raise SystemExit(f"--teacher predicts {teacher.scheme} points; the student is {student.scheme}")
    if abs(teacher.crop_scale - student.crop_scale) > 1e-9:
        raise SystemExit(f"--teacher crops at {teacher.crop_scale} x the face box, the student at {student.crop_scale}")
    if teacher.in_chans != student.in_chans:
        raise SystemExit(f"--teacher takes {teacher.in_chans}-channel crops, the student {student.in_chans}")


@torch.no_grad()
def flip_test_points(model: LandmarkModel, x: torch.Tensor, scheme: Scheme,
                     autocast: AbstractContextManager | None = None) -> torch.Tensor:
    """(B, K, 2) in crop pixels: the mean of the points on the crops and on their mirror images, mirrored back."""
    was_training = model.training
    model.eval()
    x = x.float()
    size = x.shape[-1]
    direct = points_at(model, x, autocast).cpu().numpy()
    on_mirrored = points_at(model, x.flip(-1), autocast).cpu().numpy()
    model.train(was_training)
    shift = model.mirror_offset.cpu().numpy() * (size / model.input_size)  # in these crops' pixels
    return torch.from_numpy(flip_test_mean(direct, on_mirrored, scheme, size, shift)).to(x.device)


def blend(labels: torch.Tensor, teacher: torch.Tensor, weight: float) -> torch.Tensor:
    """Labels moved ``weight`` of the way to the teacher's points (0: labels, 1: the teacher)."""
    return labels + weight * (teacher.to(labels) - labels)
