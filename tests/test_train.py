"""Smoke training through the real entry point on a real annotation file (seconds, tiny model)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facelm.hub import load_model
from train.train import main as train_main

REPO = Path(__file__).resolve().parents[1]
TINY = ["--width", "8", "--input-size", "32", "--batch-size", "8", "--num-workers", "0", "--num-neighbors", "3",
        "--threads", "1"]


@pytest.fixture()
def xml(shared_data: Path) -> str:
    return str(shared_data / "dlib_examples_faces" / "training_with_face_landmarks.xml")


def _history(out: Path) -> list[dict]:
    import torch
    return torch.load(out / "checkpoint.pt", weights_only=False)["state"]["history"]


def test_train_resume_and_report(tmp_path: Path, xml: str) -> None:
    out = tmp_path / "run"
    common = ["--data", xml, "--val-data", xml, "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--lr", "5e-3"]
    train_main(common + TINY + ["--epochs", "2"])
    best = out / "best"
    for name in ("config.json", "model.safetensors", "README.md", "eval.json", "ced.png"):
        assert (best / name).is_file(), name
    assert list((out / "tb").rglob("events.out.tfevents*")), "no TensorBoard log"
    assert len(_history(out)) == 2
    card = (best / "README.md").read_text()
    assert "NME" in card and "facelm" in card
    report = json.loads((best / "eval.json").read_text())
    assert 0 < report["results"]["all"]["nme_mean"] < 10
    # resume continues where it stopped instead of starting over
    train_main(common + TINY + ["--epochs", "6", "--resume"])
    hist = _history(out)
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4, 5, 6]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    model = load_model(best)
    assert model.input_size == 32 and model.num_points == 68


def test_fine_tune_from_model_and_push_to_local_hub(tmp_path: Path, xml: str) -> None:
    base = tmp_path / "base"
    args = ["--data", xml, "--val-data", xml, "--cache-dir", str(tmp_path / "cache")] + TINY
    train_main(args + ["--out", str(base), "--epochs", "1"])
    hub_dir = tmp_path / "hub_repo"
    hub_dir.mkdir()
    train_main(args + ["--out", str(tmp_path / "ft"), "--epochs", "1", "--init-from", str(base / "best"),
                       "--push-to-hub", str(hub_dir)])
    assert (hub_dir / "model.safetensors").is_file() and (hub_dir / "config.json").is_file()
    pushed, trained = load_model(hub_dir).state_dict(), load_model(tmp_path / "ft" / "best").state_dict()
    assert all((pushed[k] == trained[k]).all() for k in trained)


def test_fine_tune_keeps_or_changes_the_input_size(tmp_path: Path, xml: str) -> None:
    """Without --input-size a fine-tune keeps the model's; with one it re-grids the head and trains at
    that size. A different crop scale would change what the coordinates mean: refused."""
    base = tmp_path / "base"
    args = ["--data", xml, "--val-data", xml, "--cache-dir", str(tmp_path / "cache"), "--epochs", "1",
            "--num-workers", "0", "--threads", "1", "--batch-size", "8"]
    train_main(args + TINY + ["--out", str(base)])
    train_main(args + ["--out", str(tmp_path / "same"), "--init-from", str(base / "best")])
    assert load_model(tmp_path / "same" / "best").input_size == 32
    recorded = json.loads((tmp_path / "same" / "best" / "eval.json").read_text())["config"]
    assert (recorded["input_size"], recorded["crop_scale"]) == (32, 1.3)
    assert (recorded["width"], recorded["depth"]) == (8, 1)  # the sizes that ran, not None for "the model's"
    train_main(args + ["--out", str(tmp_path / "bigger"), "--init-from", str(base / "best"), "--input-size", "48"])
    bigger = load_model(tmp_path / "bigger" / "best")
    assert bigger.input_size == 48 and bigger.head.grid == 6
    with pytest.raises(SystemExit, match="crops at 1.3"):
        train_main(args + ["--out", str(tmp_path / "ft"), "--init-from", str(base / "best"), "--crop-scale", "1.5"])


def test_fine_tune_grows_the_model_and_selects_by_a_group(tmp_path: Path, xml: str) -> None:
    """--width / --depth above the --init-from model's grow it (facelm.models.growth); a smaller depth
    keeps each stage's first blocks; a smaller width is refused, and so is a --select-by group that
    the validation faces do not have."""
    base = tmp_path / "base"
    args = ["--data", xml, "--val-data", xml, "--cache-dir", str(tmp_path / "cache"), "--epochs", "1",
            "--num-workers", "0", "--threads", "1", "--batch-size", "8"]
    train_main(args + TINY + ["--out", str(base)])
    summary = train_main(args + ["--out", str(tmp_path / "grown"), "--init-from", str(base / "best"),
                                 "--width", "12", "--depth", "2", "--select-by", "dlib_examples_faces"])
    grown = load_model(tmp_path / "grown" / "best")
    assert grown.backbone.channels == (24, 48) and len(grown.backbone.s8) == 3
    assert summary["selected_by"] == "dlib_examples_faces"
    train_main(args + ["--out", str(tmp_path / "shallow"), "--init-from", str(tmp_path / "grown" / "best"),
                       "--depth", "1"])
    shallow = load_model(tmp_path / "shallow" / "best")
    assert shallow.backbone.channels == (24, 48) and len(shallow.backbone.s8) == 2
    with pytest.raises(SystemExit, match="cannot shrink width"):
        train_main(args + ["--out", str(tmp_path / "x"), "--init-from", str(base / "best"), "--width", "4"])
    with pytest.raises(SystemExit, match="groups"):
        train_main(args + ["--out", str(tmp_path / "y"), "--init-from", str(base / "best"), "--select-by", "300w"])


@pytest.mark.slow
def test_distributed_two_cpu_processes(tmp_path: Path, xml: str) -> None:
    """The Accelerate path: two gloo processes on the CPU train one model together."""
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "train.train",
           "--data", xml, "--val-data", xml, "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
           "--epochs", "2"] + TINY
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (out / "best" / "model.safetensors").is_file()
    assert "train faces" in r.stdout


def test_grayscale_model_trains_and_predicts(tmp_path: Path, xml: str) -> None:
    """``--in-chans 1``: training, the final evaluation and inference all feed the same one channel."""
    out = tmp_path / "gray"
    train_main(["--data", xml, "--val-data", xml, "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                "--in-chans", "1", "--epochs", "1"] + TINY)
    assert json.loads((out / "best" / "eval.json").read_text())["results"]["all"]["nme_mean"] > 0
    from facelm import FaceLandmarker
    from facelm.photo_evaluation import iter_annotated
    fl = FaceLandmarker.from_pretrained(out / "best", detector=None)
    assert fl.model.in_chans == 1
    ph = next(iter(iter_annotated([xml])))
    assert fl.predict(ph.path, boxes=ph.boxes).landmarks.shape == (len(ph.boxes), 68, 2)


def test_broken_labels_are_dropped_before_training(tmp_path: Path, shared_data: Path, xml: str) -> None:
    """--max-label-nme drops the training faces whose labels the --init-from model disagrees with
    wildly (scrambled or displaced shapes, as some ytf68 frames have) and keeps every sound one."""
    import numpy as np
    from facelm.schemes import get_scheme
    from train.split_caches import DataSpec, load_caches
    from train.label_judge import drop_broken_labels
    scheme = get_scheme("ibug68")
    cache, _ = load_caches(DataSpec([str(shared_data / "300w" / "helen_trainset")], max_faces=10), 112, 1.3,
                           str(tmp_path / "cache"), scheme)
    cache.landmarks[3] = cache.landmarks[3][::-1].copy()  # points in the wrong order
    cache.landmarks[7] += 20.0  # the whole shape a fifth of the crop away from the face
    kept, dropped = drop_broken_labels(cache, load_model(None), 0.10, scheme)
    assert dropped == {"helen_trainset": 2} and len(kept) == 8
    assert not any(np.array_equal(k, cache.landmarks[i]) for k in kept.landmarks for i in (3, 7))
    assert drop_broken_labels(cache, None, None, scheme) == (cache, {})
    with pytest.raises(SystemExit, match="--init-from"):
        train_main(["--data", xml, "--out", str(tmp_path / "x"), "--max-label-nme", "0.1", "--epochs", "1"] + TINY)


def test_a_model_of_another_scheme_judges_the_labels(tmp_path: Path, shared_data: Path, xml: str) -> None:
    """--label-judge: the 68-point ibug68 (128 px input) judges 5-point labels at 64 px, as it does for the
    five_point set, where about 40 % of the web faces carry labels that miss the face."""
    from facelm.schemes import get_scheme
    from train.split_caches import DataSpec, load_caches
    from train.label_judge import drop_broken_labels
    scheme = get_scheme("celeba5")
    cache, _ = load_caches(DataSpec([str(shared_data / "five_point" / "list_landmarks.csv")], max_faces=12), 64,
                           1.3, str(tmp_path / "cache"), scheme)
    assert len(cache) >= 8
    moved = [1, 4, 6]
    for i in moved:
        cache.landmarks[i, :, 1] -= 16.0  # a quarter of the crop up: eyes on the forehead
    kept, dropped = drop_broken_labels(cache, load_model("ibug68"), 0.2, scheme)
    assert sum(dropped.values()) == len(moved) and len(kept) == len(cache) - len(moved)
    with pytest.raises(SystemExit, match="would not line up"):
        train_main(["--data", xml, "--out", str(tmp_path / "x"), "--crop-scale", "1.5", "--label-judge", "ibug68",
                    "--max-label-nme", "0.2", "--epochs", "1", "--cache-dir", str(tmp_path / "cache")] + TINY)


@pytest.mark.slow
def test_evaluate_leaves_out_the_labels_a_judge_rejects(shared_data: Path, capsys, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m train.evaluate celeba5 --split validation --label-judge ibug68 --max-label-nme 0.2``:
    the five_point web faces whose labels miss the face (docs/results.md) leave the figure, and it
    drops. Only the validation faces are cropped and cached, not the training side."""
    monkeypatch.setenv("FACELM_CACHE", str(tmp_path))
    import re
    from train.evaluate import main as evaluate_main
    data = str(shared_data / "five_point" / "list_landmarks.csv")

    def mean_nme(out: str) -> tuple[int, float]:
        n, value = re.search(r"^all\s+(\d+)\s+([\d.]+)", out, re.M).groups()
        return int(n), float(value)

    evaluate_main(["celeba5", "--data", data, "--split", "validation"])
    n_all, nme_all = mean_nme(capsys.readouterr().out)
    evaluate_main(["celeba5", "--data", data, "--split", "validation", "--label-judge", "ibug68", "--max-label-nme", "0.2"])
    out = capsys.readouterr().out
    left_out = int(re.search(r"left out (\d+) faces", out).group(1))
    n_clean, nme_clean = mean_nme(out)
    assert 1000 < n_all < 2000 and n_clean == n_all - left_out
    assert 0.1 * n_all < left_out < 0.4 * n_all
    assert nme_clean < nme_all - 1.0
    assert [p.name.split("-")[0] for p in (tmp_path / "crops").iterdir()] == ["validation"]


def test_bfloat16_training_learns_and_saves_float32(tmp_path: Path, xml: str) -> None:
    """``--mixed-precision bf16`` autocasts the steps only: the loss falls and the saved model is float32."""
    import torch
    out = tmp_path / "bf16"
    train_main(["--data", xml, "--val-data", xml, "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                "--lr", "5e-3", "--epochs", "4", "--mixed-precision", "bf16"] + TINY)
    hist = _history(out)
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert torch.load(out / "checkpoint.pt", weights_only=False)["config"]["mixed_precision"] == "bf16"
    model = load_model(out / "best")
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert 0 < json.loads((out / "best" / "eval.json").read_text())["results"]["all"]["nme_mean"] < 10


def test_ema_weights_are_what_is_judged_and_saved(tmp_path: Path, xml: str) -> None:
    """``--ema``: the best model is the moving average, not the last step, and resume carries it on."""
    import torch
    from safetensors.torch import load_file
    out = tmp_path / "ema"
    args = ["--data", xml, "--val-data", xml, "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
            "--lr", "5e-3", "--ema", "0.5", "--eval-every", "100"] + TINY
    train_main(args + ["--epochs", "3"])  # judged once, after the last epoch
    saved = torch.load(out / "checkpoint.pt", weights_only=False)
    best = load_file(out / "best" / "model.safetensors")
    averaged = {k.removeprefix("module."): v for k, v in saved["ema"].items() if k.startswith("module.")}
    assert set(best) <= set(averaged)
    for k, v in best.items():
        torch.testing.assert_close(v, averaged[k].to(v.dtype))
    assert any(not torch.equal(best[k], saved["model"][k]) for k in best if best[k].is_floating_point())
    train_main(args + ["--epochs", "4", "--resume"])
    resumed = torch.load(out / "checkpoint.pt", weights_only=False)
    assert resumed["state"]["epoch"] == 4 and int(resumed["ema"]["n_averaged"]) > int(saved["ema"]["n_averaged"])


def test_snapshots_feed_weight_averaging(tmp_path: Path, xml: str) -> None:
    """``--snapshot-every 2``: every second epoch's (EMA) weights are kept, and train.average turns them
    into a model whose weights are their mean."""
    import torch
    from train.average import main as average_main
    out = tmp_path / "snap"
    train_main(["--data", xml, "--val-data", xml, "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                "--lr", "5e-3", "--ema", "0.5", "--epochs", "4", "--snapshot-every", "2"] + TINY)
    snaps = sorted((out / "snapshots").glob("*.pt"))
    assert [p.name for p in snaps] == ["epoch_0002.pt", "epoch_0004.pt"]
    last = torch.load(snaps[-1], weights_only=False)["model"]
    ema = torch.load(out / "checkpoint.pt", weights_only=False)["ema"]
    for k, v in last.items():
        torch.testing.assert_close(v, ema["module." + k])
    average_main([*map(str, snaps), "--like", str(out / "best"), "--out", str(out / "swa")])
    first = torch.load(snaps[0], weights_only=False)["model"]
    got = load_model(out / "swa").state_dict()
    k = "head.score.weight"
    assert not torch.equal(first[k], last[k])
    torch.testing.assert_close(got[k], (first[k] + last[k]) / 2)


def test_seed_leaves_the_validation_split_alone(tmp_path: Path, shared_data: Path) -> None:
    """``--seed`` changes the training randomness only: runs with other seeds hold out the same faces
    (one validation cache between them); ``--split-seed`` is what draws another split."""
    cache = tmp_path / "cache"
    args = ["--data", str(shared_data / "300w" / "helen_trainset"), "--max-faces", "60", "--cache-dir", str(cache),
            "--epochs", "1"] + TINY

    def held_out(out: str, *extra: str) -> set[str]:
        before = set(cache.glob("validation-*.npz"))
        train_main(args + ["--out", str(tmp_path / out), *extra])
        return {p.name for p in set(cache.glob("validation-*.npz")) - before}

    first = held_out("a")
    assert len(first) == 1
    assert held_out("b", "--seed", "1") == set(), "another --seed drew another validation split"
    assert len(held_out("c", "--split-seed", "1")) == 1
    n = [json.loads((tmp_path / r / "best" / "eval.json").read_text())["results"]["all"]["n"] for r in "abc"]
    assert n[0] == n[1] > 0
