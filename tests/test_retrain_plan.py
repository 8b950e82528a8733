"""The Retrain tab's plan: the command shown is the argv that runs (same --out until a run makes
it), and the export is split into faces to train on and faces held out, none in both."""
from __future__ import annotations

import shlex
import sys

import numpy as np
import pytest

from facelm.annotation import AnnotatedImage, AnnotationSet
from facelm.annotation_store import ProjectError
from facelm.io import read_annotations, write_annotations
from facelm.retrain_plan import epoch_of, plan_retrain, run_lines, split_export


def _plan(tmp_path):
    return plan_retrain(tmp_path / "p", "models/x", "ibug68", 128, 1.3, 3, 2, 50, python="python")


def test_shown_command_is_the_argv_and_stable_until_a_run(tmp_path):
    plan = _plan(tmp_path)
    assert shlex.split(plan.shown().replace("\\\n", " ")) == plan.argv
    assert plan.argv[plan.argv.index("--out") + 1] == str(tmp_path / "p" / "retrain" / "run-1")
    assert _plan(tmp_path).argv == plan.argv  # shown now, run later: the same command
    plan.out.mkdir(parents=True)
    assert _plan(tmp_path).out.name == "run-2"  # a new run gets a new folder


def _export(shared_data, tmp_path, names):
    """An export folder holding real 300-W faces (one XML beside their images)."""
    export = tmp_path / "p" / "export"
    (export / "images").mkdir(parents=True)
    images = []
    for n in names:
        aset = read_annotations(shared_data / f"300w/afw/{n}.pts")
        (export / "images" / f"{n}.jpg").write_bytes((shared_data / f"300w/afw/{n}.jpg").read_bytes())
        images.append(AnnotatedImage(path=f"images/{n}.jpg", faces=aset.images[0].faces))
    write_annotations(AnnotationSet(images=images, scheme="ibug68"), export / "annotations.xml", precision=None)


NAMES = ["1051618982_1", "111076519_1", "111076519_2", "1130084326_1", "1130084326_2", "1130084326_3",
         "1139324862_1"]


@pytest.mark.parametrize("n, held", [(2, 1), (5, 1), (7, 1)])
def test_split_holds_faces_out(shared_data, tmp_path, n, held):
    _export(shared_data, tmp_path, NAMES[:n])
    plan = _plan(tmp_path)
    assert split_export(plan) == (n - held, held)
    train, out = read_annotations(plan.train_xml), read_annotations(plan.heldout_xml)
    keys = lambda a: {(im.path, f.landmarks.tobytes()) for im in a.images for f in im.faces}  # noqa: E731
    assert len(keys(train)) == n - held and len(keys(out)) == held and not keys(train) & keys(out)
    assert all((tmp_path / "p" / "export" / im.path).is_file() for im in out.images)
    whole = read_annotations(plan.export_xml)
    assert sorted(keys(train) | keys(out)) == sorted(keys(whole))
    np.testing.assert_array_equal(out.images[0].faces[0].landmarks,
                                  whole.images[(n - 1 if n < 5 else 4)].faces[0].landmarks)


def test_split_needs_two_faces_and_an_export(shared_data, tmp_path):
    with pytest.raises(ProjectError, match="export the project first"):
        split_export(_plan(tmp_path))
    _export(shared_data, tmp_path, NAMES[:1])
    with pytest.raises(ProjectError, match="at least 2"):
        split_export(_plan(tmp_path))


def test_run_lines_streams_the_output_without_progress_bars(tmp_path):
    plan = _plan(tmp_path)
    plan.argv = [sys.executable, "-c", "import sys; print('epoch 1: loss 0.5'); print(' 50%|#####     | 1/2');"
                                       "print('epoch 2: loss 0.4'); sys.exit(3)"]
    lines = list(run_lines(plan, tmp_path))
    assert lines == ["epoch 1: loss 0.5", "epoch 2: loss 0.4"] and plan.returncode == 3
    assert [epoch_of(line) for line in lines + ["epochs: 5", "resumed at epoch 3"]] == [1, 2, None, None]
