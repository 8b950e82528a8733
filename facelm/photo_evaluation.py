"""Accuracy of a FaceLandmarker on annotated photos, through the same path as inference on real
photos (decode, crop, model, map back), with boxes from the ground truth or from the face detector.

Ground-truth boxes are the tight box of each face's landmarks (300-W's bb_ground_truth; estimated
by :func:`facelm.face_box.face_box` for schemes of fewer points). With the
detector, each annotated face takes the detection that overlaps its landmark box best (IoU > 0.5,
one detection per face); a face the detector misses gets NaN landmarks, which the metrics count as
a failure at every threshold.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from .face_box import face_box
from .metrics import EvalResult, nme, per_subset, point_errors
from .schemes import get_scheme

BoxSource = Literal["gt", "detector"]


@dataclass
class AnnotatedPhoto:
    path: Path
    landmarks: np.ndarray
    """(M, K, 2) ground truth of the annotated faces, 0-based pixels."""
    scheme: str
    subset: str

    @property
    def boxes(self) -> np.ndarray:
        """(M, 4) face boxes in the model's convention (the 68-point tight box, estimated from the
        points of other schemes)."""
        return face_box(self.landmarks, self.scheme).reshape(-1, 4)


Split = Literal["all", "train", "validation"]
SPLITS: tuple[str, ...] = get_args(Split)


def in_split(path: str | Path, split: Split) -> bool:
    """Whether ``train.train``'s default split puts the photo at ``path`` on the ``split`` side (by the
    identity in its file name: :func:`facelm.data.in_validation`)."""
    from .data import identity_of, in_validation
    return split == "all" or in_validation(identity_of(str(path))) == (split == "validation")


def iter_annotated(paths: Sequence[str | Path], every: int = 1, split: Split = "all") -> Iterator[AnnotatedPhoto]:
    """Photos with at least one annotated face from anything :func:`facelm.io.read_annotations`
    reads. ``subset`` is the first subfolder for a folder of .pts files (300-W's afw/, helen/), else
    the file or folder name. ``every`` keeps every n-th photo (quick runs). ``split`` keeps the photos
    whose identity ``train.train``'s default split puts on that side (:func:`facelm.data.in_validation`)."""
    from .io import image_file, read_annotations
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    count = 0
    for p in paths:
        p = Path(p)
        aset = read_annotations(p)
        for im in aset.images:
            faces = [f.landmarks for f in im.faces if np.isfinite(f.landmarks).all()]
            if not faces or not in_split(im.path, split):
                continue
            count += 1
            if (count - 1) % every:
                continue
            parts = Path(im.path).parts
            subset = parts[0] if p.is_dir() and len(parts) > 1 else (p.name if p.is_dir() else p.stem)
            yield AnnotatedPhoto(image_file(aset, im, allow_absolute=True), np.stack(faces), aset.scheme, subset)


@dataclass
class EvalPredictions:
    pred: np.ndarray
    """(N, K, 2), NaN for faces the detector missed."""
    gt: np.ndarray
    subsets: np.ndarray
    scheme: str

    @property
    def found(self) -> np.ndarray:
        """(N,) bool: the face got landmarks (always, with ground-truth boxes)."""
        return np.isfinite(self.pred).all(axis=(1, 2))

    def errors(self, norm: str = "interocular") -> np.ndarray:
        """(N,) NME per face; inf for a missed face."""
        return nme(self.pred, self.gt, self.scheme, norm)

    def results(self, norm: str = "interocular", found_only: bool = False) -> dict[str, EvalResult]:
        """Per subset (and "all" when there are several). ``found_only`` leaves out the faces the
        detector missed; otherwise they count as failures (and make the mean NME infinite)."""
        keep = self.found if found_only else np.ones(len(self.pred), bool)
        pe = point_errors(self.pred[keep], self.gt[keep], self.scheme, norm)
        errors = nme(self.pred[keep], self.gt[keep], self.scheme, norm)
        labels = self.subsets[keep]
        single = len(set(labels.tolist())) == 1
        return per_subset(errors, labels, pe, norm=norm, all_label=None if single else "all")


def predict_annotated(landmarker: object, photos: Sequence[AnnotatedPhoto], boxes: BoxSource = "gt",
                      progress: bool = True) -> EvalPredictions:
    """Run ``landmarker`` (a :class:`facelm.FaceLandmarker`) on every annotated face."""
    from tqdm import tqdm

    from .detect import greedy_matches
    from .errors import FacelmError
    if not photos:
        raise FacelmError("no annotated faces to evaluate")
    scheme = get_scheme(photos[0].scheme)
    preds, gts, subsets = [], [], []
    for ph in tqdm(photos, desc="evaluate", unit="img", disable=not progress, leave=False):
        if get_scheme(ph.scheme) != scheme:
            raise FacelmError(f"{ph.path}: scheme {ph.scheme} differs from the first photo's ({scheme.name})")
        gt_boxes = ph.boxes
        if boxes == "gt":
            faces = landmarker.predict(ph.path, boxes=gt_boxes, scheme=scheme.name)
            pred = faces.landmarks
        else:
            faces = landmarker.predict(ph.path, scheme=scheme.name)
            pred = np.full(ph.landmarks.shape, np.nan, np.float32)
            for det, face in greedy_matches(faces.boxes, gt_boxes):
                pred[face] = faces.landmarks[det]
        preds.append(pred)
        gts.append(ph.landmarks)
        subsets += [ph.subset] * len(pred)
    return EvalPredictions(np.concatenate(preds), np.concatenate(gts), np.asarray(subsets), scheme.name)
