"""The Retrain tab's fine-tune: one plan that both "Show the command" and the run use, the split of
the project's export into faces to train on and faces held out, and NME on the held-out faces.

The before/after comparison is only worth something on faces the fine-tune did not see, so every
``HELD_OUT_EVERY``-th exported face (at least one) goes to ``retrain_heldout.xml`` and the rest to
``retrain_train.xml``, both beside the export's ``annotations.xml`` (their image paths stay valid).
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .annotation import AnnotatedImage, AnnotationSet, landmark_box
from .annotation_store import EXPORT_XML, ProjectError
from .io import read_annotations, write_annotations
from .metrics import nme

__all__ = ["HELD_OUT_EVERY", "RetrainPlan", "plan_retrain", "split_export", "run_lines", "epoch_of", "nme_on_faces"]

HELD_OUT_EVERY = 5
TRAIN_XML = "retrain_train.xml"
HELD_OUT_XML = "retrain_heldout.xml"


@dataclass
class RetrainPlan:
    export_xml: Path
    train_xml: Path
    heldout_xml: Path
    out: Path
    argv: list[str] = field(default_factory=list)
    """What runs: ``python -m train.train --flag value ...``."""
    returncode: int | None = None
    """The run's exit code once ``run_lines`` has finished."""

    @property
    def best(self) -> Path:
        return self.out / "best"

    def shown(self) -> str:
        """The command as the app shows it: exactly ``argv``, one flag per line."""
        head, args = self.argv[:3], self.argv[3:]
        lines = [" ".join(shlex.quote(a) for a in head)]
        lines += ["  " + " ".join(shlex.quote(a) for a in args[i:i + 2]) for i in range(0, len(args), 2)]
        return " \\\n".join(lines)


def _next_run(folder: Path) -> Path:
    """``retrain/run-N``, the first N not used yet: the same answer until a run creates it, so the
    command shown before "Fine-tune now" is the one that runs."""
    n = 1
    while (folder / f"run-{n}").exists():
        n += 1
    return folder / f"run-{n}"


def plan_retrain(project_dir: Path, init_from: str, scheme: str, input_size: int, crop_scale: float,
                 in_chans: int, epochs: int, max_faces: int, python: str = sys.executable) -> RetrainPlan:
    export = project_dir / "export"
    out = _next_run(project_dir / "retrain")
    train_xml, heldout_xml = export / TRAIN_XML, export / HELD_OUT_XML
    argv = [python, "-m", "train.train", "--data", str(train_xml), "--val-data", str(heldout_xml),
            "--init-from", init_from, "--scheme", scheme, "--input-size", str(input_size),
            "--crop-scale", str(crop_scale), "--in-chans", str(in_chans),
            "--epochs", str(int(epochs)), "--max-faces", str(int(max_faces)), "--batch-size", "16", "--lr", "5e-4",
            "--warmup-epochs", "0", "--patience", str(int(epochs)), "--num-workers", "0", "--time-budget-min", "10",
            "--cache-dir", str(out / "cache"), "--out", str(out)]
    return RetrainPlan(export / EXPORT_XML, train_xml, heldout_xml, out, argv)


def split_export(plan: RetrainPlan, every: int = HELD_OUT_EVERY) -> tuple[int, int]:
    """Write the plan's train and held-out XMLs from the export: faces numbered in export order,
    every ``every``-th held out (the last face when there are fewer than ``every``). Returns
    (train faces, held-out faces)."""
    if not plan.export_xml.is_file():
        raise ProjectError("export the project first (Annotate tab → Export): the fine-tune reads its "
                           "annotations.xml")
    aset = read_annotations(plan.export_xml)
    faces = [(i, j) for i, im in enumerate(aset.images) for j, f in enumerate(im.faces) if f.num_points]
    if len(faces) < 2:
        raise ProjectError(f"the export holds {len(faces)} face{'s' * (len(faces) != 1)}: fine-tuning needs at least "
                           "2 (one to train on, one held out to measure it)")
    held = set(faces[every - 1::every]) or {faces[-1]}
    parts = {True: [], False: []}
    for i, im in enumerate(aset.images):
        for is_held in (True, False):
            chosen = [f for j, f in enumerate(im.faces) if f.num_points and ((i, j) in held) == is_held]
            if chosen:
                parts[is_held].append(AnnotatedImage(path=im.path, faces=chosen, width=im.width, height=im.height))
    for is_held, path in ((False, plan.train_xml), (True, plan.heldout_xml)):
        write_annotations(AnnotationSet(images=parts[is_held], scheme=aset.scheme, name=aset.name,
                                        root=aset.root), path, precision=None)
    return len(faces) - len(held), len(held)


def run_lines(plan: RetrainPlan, cwd: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run the plan's command and yield its output lines as they come, without tqdm's progress bars
    (the epoch summaries say it better). ``returncode`` of the finished run: ``plan.returncode``."""
    env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1", TQDM_MININTERVAL="5")
    proc = subprocess.Popen(plan.argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        for line in proc.stdout:
            line = line.strip()
            if line and "%|" not in line:
                yield line
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()
        plan.returncode = proc.returncode


def epoch_of(line: str) -> int | None:
    """The epoch number an ``epoch N: ...`` summary line of train.train reports."""
    head = line.split(":")[0].split()
    return int(head[1]) if len(head) == 2 and head[0] == "epoch" and head[1].isdigit() else None


def nme_on_faces(predict: Callable[..., object], xml: Path) -> np.ndarray:
    """Per-face NME of ``predict(img, boxes=, scheme=)`` (a FaceLandmarker's predict) in each face's
    landmark box, for the faces of ``xml``."""
    from .image import to_rgb_array

    aset = read_annotations(xml)
    errors: list[float] = []
    for im in aset.images:
        faces = [f for f in im.faces if f.num_points]
        if not faces:
            continue
        img = to_rgb_array(Path(aset.root) / im.path)
        gt = np.stack([f.landmarks for f in faces])
        errors.extend(nme(predict(img, boxes=landmark_box(gt), scheme=aset.scheme).landmarks, gt, aset.scheme))
    return np.asarray(errors, np.float64)
