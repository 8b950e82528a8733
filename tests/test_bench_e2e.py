"""The end-to-end benchmark runs on real photos and reports what it promises (figures are printed by
``python -m facelm.bench_e2e``; nothing here asserts a speed)."""
from __future__ import annotations

import json

import numpy as np

from facelm import bench_e2e
from facelm.bench import _dlib_predictor_path
from facelm.photo_evaluation import iter_annotated


def test_matching_keeps_each_annotated_face_its_own_prediction(shared_data):
    photos = list(iter_annotated([shared_data / "dlib_examples_faces" / "testing_with_face_landmarks.xml"]))
    ph = max(photos, key=lambda p: len(p.landmarks))
    gt = ph.landmarks
    assert len(gt) >= 3
    shuffled = gt[::-1].copy()
    np.testing.assert_array_equal(bench_e2e.match_to_annotated(shuffled, gt), gt)  # order does not matter
    moved = gt.copy()
    moved[0] += np.ptp(gt[0], axis=0)  # a full face size off: no longer that face
    got = bench_e2e.match_to_annotated(moved[:2], gt)
    assert np.isnan(got[0]).all() and np.array_equal(got[1], gt[1]) and np.isnan(got[2:]).all()
    assert np.isnan(bench_e2e.match_to_annotated(np.zeros((0, 68, 2), np.float32), gt)).all()


def test_end_to_end_bench_runs_the_default_pipeline(shared_data, tmp_path, capsys):
    out = tmp_path / "e2e.json"
    args = ["--data", str(shared_data / "300w"), "--every", "30", "--passes", "1", "--detector", "haar_frontal",
            "--json", str(out)]
    assert bench_e2e.main(args) == 0
    text = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["protocol"]["split"] == "validation" and result["protocol"]["photos"] >= 4
    rows = result["rows"]
    assert rows[0]["name"].startswith("facelm default model, onnx (model_int8.onnx), detector haar_frontal")
    assert len(rows) == (2 if _dlib_predictor_path() else 1)
    for row in rows:
        assert row["ms_per_photo"] > 0 and row["faces"] == result["protocol"]["faces"]
        assert 0.5 * row["faces"] <= row["found"] <= min(row["faces"], row["predicted"])
        assert 0 < row["nme_pct"] < 20, row  # landmarks on the right faces, not noise
    assert "rerun: python -m facelm.bench_e2e" in text and "ms/photo" in text
