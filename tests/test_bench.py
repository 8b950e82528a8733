"""The benchmark script runs end to end on real faces and reports what it promises (figures are
printed by ``python -m facelm.bench``; nothing here asserts a speed)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from facelm import bench
from facelm.data import identity_of, in_validation


def test_bench_uses_held_out_faces(shared_data):
    faces, photos = bench.load_faces(shared_data / "300w", 1000, split="validation")
    train_faces, _ = bench.load_faces(shared_data / "300w", 1000, split="train")
    assert 100 < len(faces) < len(train_faces)
    # The validation split of the benchmark is train.train's: no face of a held-out identity trains.
    assert {f.gt.tobytes() for f in faces}.isdisjoint({f.gt.tobytes() for f in train_faces})
    assert all(f.image.ndim == 3 and f.image.dtype == np.uint8 for f in faces)
    assert in_validation(identity_of("afw/1051618982_1.jpg")) == in_validation(identity_of("x/1051618982_2.png"))


@pytest.mark.slow
def test_bench_end_to_end(shared_data, tmp_path, capsys, one_torch_thread):
    out = tmp_path / "bench.json"
    assert bench.main(["--data", str(shared_data / "300w"), "--faces", "6", "--photos", "2", "--no-dlib",
                       "--json", str(out)]) == 0
    text = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["protocol"]["split"] == "validation" and result["protocol"]["faces"] == 6
    timed = [r for r in result["rows"] if r["name"].startswith("facelm")]
    # both bundled 68-point models by default, each on both backends, with the refine pass, and as
    # from_pretrained() runs them by default (the shipped int8 file)
    assert {r["name"].split(",")[0] for r in timed} == {f"facelm {m} {kind}" for m in bench.DEFAULT_MODELS
                                                        for kind in ("torch", "onnx", "onnx refine",
                                                                     "default (model_int8.onnx)")}
    for row in timed:
        assert (row["ms_per_face"] or 0) > 0 or (row["faces_per_s"] or 0) > 0
        assert 0 < row["nme_pct"] < 20, row  # a trained model on GT boxes, not noise
    assert set(result["detectors_ms_per_photo"]) >= {"haar"}
    assert result["peak_rss_mb"]["whole run"] > 0
    assert "dlib" in text and "ms" in text
    # The report says how this CPU runs the int8 convolutions: it moves the default's time.
    from facelm.onnx_backend import cpu_has_amx
    kernels = "matrix products (AMX)" if cpu_has_amx() else "direct kernels"
    assert text.splitlines()[0].endswith(f"int8 convolutions: {kernels}")


def test_bench_refuses_a_model_of_another_scheme(shared_data, capsys):
    assert bench.main(["--data", str(shared_data / "300w"), "--faces", "2", "--model", "celeba5", "--no-dlib"]) == 2
    assert "celeba5 model" in capsys.readouterr().err
