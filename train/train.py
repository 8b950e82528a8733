"""Train a landmark model.

    python -m train.train --data ../shared/data/300w ../shared/data/ytf68 --out runs/default
    accelerate launch -m train.train --data ...        # many GPUs / nodes, unchanged
    python -m train.train --data my_edits.xml --init-from facelm/default --epochs 20   # fine-tune
    python -m train.train --data ... --init-from ibug68 --teacher ibug68   # distil a teacher's flip test

Best checkpoint by validation NME, early stopping, ``--resume``, TensorBoard logs in OUT/tb, a final
evaluation (NME, FR, AUC, CED PNG) and a model card in OUT/best.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import convert_to_fp32, set_seed
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm.auto import tqdm

from facelm.augment import AugmentConfig
from facelm.crop import DEFAULT_SCALE
from facelm.crop_cache import CropCache
from facelm.data import DEFAULT_VAL_FRACTION
from facelm.models import LandmarkModel
from facelm.models.landmark_model import config_default
from facelm.models.growth import grow, size_of
from facelm.schemes import Scheme, get_scheme

from .datasets import DataSpec, load_caches
from .distill import blend, check_teacher, flip_test_points
from .evaluate import errors_on_cache, evaluate_cache, group_labels, write_report
from .samples import CachedFaces, neighbors_from_mean_shape, sample_weights


DEFAULT_DISTILL = 0.5


@dataclass
class TrainConfig:
    data: list[str]
    out: str = "runs/default"
    val_data: list[str] = field(default_factory=list)
    val_fraction: float = DEFAULT_VAL_FRACTION
    scheme: str = "ibug68"
    backbone: str = "facelm_res"
    head: str = "pipnet"
    width: int | None = None
    """network width; default: the --init-from model's, else 32. A larger one than the --init-from
    model's grows it (facelm.models.growth: same outputs at the start, more capacity to train)."""
    depth: int | None = None
    """stride-1 blocks per backbone stage (facelm_res); default and growth as for width, else 1"""
    input_size: int | None = None
    """crop side in pixels; default: the --init-from model's, else 112. Another size than the
    --init-from model's re-grids its head and fine-tunes at the new size."""
    in_chans: int = 3
    num_neighbors: int = 5
    crop_scale: float | None = None
    """crop side / face box side; default: the --init-from model's, else 1.3"""
    epochs: int = 60
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    patience: int = 20
    num_workers: int = 1
    seed: int = 0
    """seed of the training randomness (initialisation, sampling, augmentation)"""
    split_seed: int = 0
    """seed of the validation split (facelm.data.split_dataset), apart from --seed: runs with other
    seeds validate on the same held-out faces instead of training on them"""
    source_weights: dict[str, float] = field(default_factory=dict)
    init_from: str | None = None
    resume: bool = False
    time_budget_min: float | None = None
    max_faces: int | None = None
    cache_dir: str = str(Path.home() / ".cache" / "facelm" / "crops")
    push_to_hub: str | None = None
    eval_every: int = 1
    threads: int = 0
    """torch CPU threads (0: torch's default). One thread is steadier on a busy 2-core machine."""
    max_label_nme: float | None = None
    """drop training faces on which the --init-from model's (or --label-judge's) NME exceeds this
    (e.g. 0.15): labels that far off are broken (ytf68 has scrambled and lagging tracker shapes), not hard faces"""
    label_judge: str | None = None
    """the model whose NME --max-label-nme reads (default: the --init-from model); any scheme (its
    points are converted) and input size, at this run's crop scale: e.g. ibug68 on 5-point data"""
    augment: float = 1.0
    """strength of the geometric augmentation (rotation, scale, box shift); 1 = facelm.augment's defaults"""
    flip: float = 0.5
    """probability of mirroring a training face (its points renumbered by the scheme's mirror permutation)"""
    occlusion: float = 0.0
    """probability of painting a random flat rectangle over a training face (facelm.augment.Occlude)"""
    ema: float = 0.0
    """decay of an exponential moving average of the weights (e.g. 0.998); above 0, validation, the
    best checkpoint and the final model use the averaged weights, which are steadier than the last step's"""
    mixed_precision: str = "no"
    """"bf16" runs the training steps under bfloat16 autocast: about 2x faster on CPUs with AMX or
    AVX512-BF16, and on recent GPUs; validation and the saved model stay float32. (Accelerate's own
    `--mixed_precision` also works, but it fixes the precision for the whole process.)"""
    snapshot_every: int = 0
    """above 0, also keep the (averaged, with --ema) weights of every N-th epoch in OUT/snapshots/, for
    ``python -m train.average`` (stochastic weight averaging over the end of a run)"""
    teacher: str | None = None
    """a model (folder, bundled name or Hub id) whose flip-test points on each training crop are
    blended into the labels (train.distill): knowledge distillation"""
    distill: float | None = None
    """with --teacher, how far the targets move from the labels towards the teacher's points (0-1;
    default 0.5)"""
    select_by: str = "all"
    """validation group whose mean NME picks the best checkpoint and drives early stopping: "all", a
    source (e.g. ytf68) or a group such as 300w"""


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = TrainConfig(data=[])
    optional_floats = ("time_budget_min", "crop_scale", "max_label_nme", "distill")
    optional_ints = ("max_faces", "input_size", "width", "depth")
    p.add_argument("--data", nargs="+", required=True, help="dataset ids, save_to_disk dirs or annotation files/folders")
    p.add_argument("--val-data", nargs="*", default=[], help="validation data; default: a split of --data")
    for name in ("out", "val_fraction", "scheme", "backbone", "head", "width", "input_size", "in_chans",
                 "num_neighbors", "crop_scale", "epochs", "batch_size", "lr", "weight_decay", "warmup_epochs",
                 "patience", "num_workers", "seed", "split_seed", "init_from", "time_budget_min", "max_faces", "cache_dir",
                 "push_to_hub", "eval_every", "threads", "depth", "select_by", "max_label_nme", "augment",
                 "occlusion", "flip", "ema", "mixed_precision", "snapshot_every", "label_judge", "teacher", "distill"):
        default = getattr(d, name)
        typ = (type(default) if default is not None else float if name in optional_floats
               else int if name in optional_ints else str)
        p.add_argument("--" + name.replace("_", "-"), type=typ, default=default)
    p.add_argument("--source-weight", action="append", default=[], metavar="SOURCE=W",
                   help="sample faces of a source W times as often (e.g. afw=2)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    a = p.parse_args(argv)
    weights = {}
    for item in a.source_weight:
        k, _, v = item.partition("=")
        weights[k] = float(v)
    kw = {k: v for k, v in vars(a).items() if k != "source_weight"}
    return TrainConfig(**kw, source_weights=weights)


def load_base(cfg: TrainConfig) -> tuple[LandmarkModel | None, int, float]:
    """The --init-from model (if any), and the input size and crop scale to train at."""
    if not cfg.init_from:
        return None, cfg.input_size or config_default("input_size"), cfg.crop_scale or DEFAULT_SCALE
    from facelm.hub import load_model
    base = load_model(cfg.init_from)
    crop_scale = cfg.crop_scale or base.crop_scale
    if abs(base.crop_scale - crop_scale) > 1e-9:
        # The model's coordinates are tied to its framing of the face; refuse rather than retrain it silently.
        raise SystemExit(f"--init-from model crops at {base.crop_scale} x the face box; "
                         f"leave out --crop-scale or pass --crop-scale {base.crop_scale}")
    return base, cfg.input_size or base.input_size, crop_scale


def distill_weight(cfg: TrainConfig) -> float | None:
    """--distill as it applies (0.5 with a --teacher unless given), refused where it cannot."""
    if cfg.teacher is None:
        if cfg.distill is not None:
            raise SystemExit("--distill weighs a teacher's points: give --teacher MODEL too")
        return None
    weight = DEFAULT_DISTILL if cfg.distill is None else cfg.distill
    if not 0 <= weight <= 1:
        raise SystemExit(f"--distill {weight}: the teacher's weight in the targets goes from 0 to 1")
    return weight


def load_teacher(cfg: TrainConfig, student: LandmarkModel, device: torch.device) -> LandmarkModel | None:
    if cfg.teacher is None:
        return None
    from facelm.hub import load_model
    teacher = load_model(cfg.teacher).float().to(device).eval().requires_grad_(False)
    check_teacher(teacher, student)
    return teacher


def drop_broken_labels(cache: CropCache, judge: LandmarkModel | None, max_nme: float | None,
                       scheme: Scheme) -> tuple[CropCache, dict[str, int]]:
    """``cache`` without the faces whose labels ``judge`` disagrees with by more than ``max_nme``, and
    how many were dropped per source."""
    if max_nme is None:
        return cache, {}
    if judge is None:
        raise SystemExit("--max-label-nme judges labels with the --init-from model or --label-judge; give one")
    keep = errors_on_cache(judge, cache, scheme) <= max_nme
    dropped = {str(s): int(n) for s, n in zip(*np.unique(cache.sources[~keep], return_counts=True))}
    return cache.subset(keep), dropped


def load_judge(name: str | None, crop_scale: float) -> LandmarkModel | None:
    """The --label-judge model, checked to frame faces as crops cut at ``crop_scale`` do."""
    if not name:
        return None
    from facelm.hub import load_model
    judge = load_model(name)
    if abs(judge.crop_scale - crop_scale) > 1e-6 or judge.crop_shift_y != 0.0:
        raise SystemExit(f"--label-judge {name} crops at {judge.crop_scale}x the face box (shift "
                         f"{judge.crop_shift_y}); these crops are at {crop_scale}x: its points would not line up")
    return judge


def build_model(cfg: TrainConfig, base: LandmarkModel | None, train_cache: CropCache) -> LandmarkModel:
    """The --init-from model at ``cfg.input_size``, or a new one; ``cfg``'s sizes are already resolved."""
    if base is not None:
        model = base if base.input_size == cfg.input_size else base.with_input_size(cfg.input_size)
        growth = {k: v for k, v in (("width", cfg.width), ("depth", cfg.depth))
                  if v is not None and v != size_of(model, k)}
        try:
            return grow(model, **growth) if growth else model
        except ValueError as e:
            raise SystemExit(f"--init-from {cfg.init_from}: {e}") from None
    scheme = get_scheme(cfg.scheme)
    neighbors = (neighbors_from_mean_shape(train_cache.landmarks, cfg.num_neighbors)
                 if cfg.head == "pipnet" and cfg.num_neighbors else None)
    return LandmarkModel(backbone=cfg.backbone, head=cfg.head, scheme=scheme.name, num_points=scheme.num_points,
                         input_size=cfg.input_size, in_chans=cfg.in_chans, width=cfg.width or config_default("width"),
                         depth=cfg.depth or config_default("depth"),
                         neighbors=neighbors,
                         crop_scale=cfg.crop_scale)


def lr_at(step: float, total: float, warmup: float, base: float, time_fraction: float = 0.0) -> float:
    """Linear warm-up, then cosine decay over the steps or the time budget, whichever runs out first."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = max((step - warmup) / max(total - warmup, 1), time_fraction)
    return base * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def time_fraction(elapsed_s: float, budget_min: float | None) -> float:
    return elapsed_s / (budget_min * 60) if budget_min else 0.0


def _atomic_torch_save(obj: object, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.mixed_precision not in ("no", "bf16"):
        raise SystemExit(f"--mixed-precision {cfg.mixed_precision}: choose no or bf16")
    acc = Accelerator(log_with="tensorboard", project_dir=cfg.out)
    set_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    scheme = get_scheme(cfg.scheme)
    # the checkpoint and report record the weight that ran; refused before any data is read
    cfg = replace(cfg, distill=distill_weight(cfg))
    spec = DataSpec(cfg.data, cfg.val_data, cfg.val_fraction, cfg.split_seed, cfg.max_faces)
    base, input_size, crop_scale = load_base(cfg)
    cfg = replace(cfg, input_size=input_size, crop_scale=crop_scale)  # the checkpoint and report record what ran
    with acc.main_process_first():
        train_cache, val_cache = load_caches(spec, cfg.input_size, cfg.crop_scale, cfg.cache_dir, scheme)
    groups = ["all", *group_labels(val_cache.sources)]
    if cfg.select_by not in groups:
        raise SystemExit(f"--select-by {cfg.select_by}: the validation faces have the groups {groups}")
    model = build_model(cfg, base, train_cache)
    mirror_shift = None
    if cfg.flip > 0 and bool(model.mirror_offset.any()):
        # Mirrored faces keep the labels' mirror-asymmetric convention, so the network learns it from
        # every face, mirrored or not.
        mirror_shift = tuple(map(tuple, model.mirror_offset.tolist()))
        acc.print("mirrored training faces keep the labels' asymmetry (the --init-from model's mirror_offset)")
    if bool(model.point_offset.any()):
        # Trained on labels as they are (mirrored ones shifted, or none mirrored), the network learns
        # the offset itself.
        model = model.with_offsets(None, model.mirror_offset)
        acc.print("the --init-from model's point_offset goes into the network")
    cfg = replace(cfg, width=size_of(model, "width"), depth=size_of(model, "depth"))
    # by default judged by the model as built: base's outputs at this run's input size
    judge = load_judge(cfg.label_judge, cfg.crop_scale) or (model if base else None)
    train_cache, dropped = drop_broken_labels(train_cache, judge, cfg.max_label_nme, scheme)
    if dropped:
        by = f"--label-judge {cfg.label_judge}" if cfg.label_judge else "the --init-from model"
        acc.print(f"dropped {sum(dropped.values())} training faces with NME > {cfg.max_label_nme:.3f} under {by}: {dropped}")
    acc.print(f"train faces: {len(train_cache)}, validation faces: {len(val_cache)}")
    train_set = CachedFaces(train_cache, scheme, train=True, augment=AugmentConfig(occlusion=cfg.occlusion, flip=cfg.flip, mirror_shift=mirror_shift).scaled(cfg.augment),
                            in_chans=model.in_chans)
    w = sample_weights(train_cache.sources, cfg.source_weights)
    g = torch.Generator().manual_seed(cfg.seed)
    sampler = WeightedRandomSampler(w, num_samples=len(train_set), replacement=True, generator=g)
    loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                        drop_last=len(train_set) > cfg.batch_size, persistent_workers=cfg.num_workers > 0)
    model = model.to(memory_format=torch.channels_last)  # oneDNN's and cuDNN's faster convolution layout
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model, opt, loader = acc.prepare(model, opt, loader)
    ema = (AveragedModel(acc.unwrap_model(model), multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
           if cfg.ema > 0 else None)
    judged = ema.module if ema is not None else acc.unwrap_model(model)  # what is validated, saved and snapshot
    steps_per_epoch = max(len(loader), 1)
    total_steps = cfg.epochs * steps_per_epoch
    state = {"epoch": 0, "step": 0, "best_nme": float("inf"), "best_epoch": -1, "history": [], "train_seconds": 0.0}
    ckpt = out / "checkpoint.pt"
    if cfg.resume and ckpt.exists():
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
        acc.unwrap_model(model).load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        if ema is not None and "ema" in saved:
            ema.load_state_dict(saved["ema"])
        state = saved["state"]
        acc.print(f"resumed from {ckpt} at epoch {state['epoch']} (best NME {state['best_nme']:.4f})")
    teacher = load_teacher(cfg, acc.unwrap_model(model), acc.device)
    acc.init_trackers("tb", config={k: v for k, v in asdict(cfg).items() if isinstance(v, (int, float, str, bool))})
    t_start = time.time() - state["train_seconds"]
    autocast = torch.autocast(acc.device.type, dtype=torch.bfloat16, enabled=cfg.mixed_precision == "bf16")
    for epoch in range(state["epoch"], cfg.epochs):
        model.train()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not acc.is_local_main_process, leave=False,
                   mininterval=0.1 if sys.stderr.isatty() else 60)
        sums: dict[str, float] = {}
        for x, y in bar:
            for group in opt.param_groups:
                group["lr"] = lr_at(state["step"], total_steps, cfg.warmup_epochs * steps_per_epoch, cfg.lr,
                                    time_fraction(time.time() - t_start, cfg.time_budget_min))
            if teacher is not None:
                y = blend(y, flip_test_points(teacher, x, scheme, autocast), cfg.distill)
            with autocast:
                pred = model(x.contiguous(memory_format=torch.channels_last))
            terms = acc.unwrap_model(model).head.loss(convert_to_fp32(pred), y)
            opt.zero_grad(set_to_none=True)
            acc.backward(terms["total"])
            opt.step()
            if ema is not None:
                ema.update_parameters(acc.unwrap_model(model))
            state["step"] += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.item()
            bar.set_postfix(loss=f"{terms['total'].item():.3f}", refresh=False)
        state["epoch"] = epoch + 1
        state["train_seconds"] = time.time() - t_start
        logs = {f"train/{k}": v / steps_per_epoch for k, v in sums.items()}
        logs["lr"] = opt.param_groups[0]["lr"]
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            result = evaluate_cache(judged, val_cache, scheme)
            nme = result[cfg.select_by].nme_mean
            logs.update({f"val/nme_{k}": r.nme_mean for k, r in result.items()})
            improved = nme < state["best_nme"]
            if improved:
                state["best_nme"], state["best_epoch"] = nme, epoch + 1
                if acc.is_main_process:
                    judged.save_pretrained(out / "best")
            state["history"].append({"epoch": epoch + 1, "val_nme": nme, "train_loss": logs["train/total"],
                                     "seconds": round(state["train_seconds"])})
            acc.print(f"epoch {epoch + 1}: loss {logs['train/total']:.4f}  val NME ({cfg.select_by}) {nme * 100:.3f}%"
                      f"{' (best)' if improved else ''}  [{state['train_seconds'] / 60:.1f} min]")
        acc.log(logs, step=epoch + 1)
        if acc.is_main_process and cfg.snapshot_every and (epoch + 1) % cfg.snapshot_every == 0:
            snap = out / "snapshots"
            snap.mkdir(exist_ok=True)
            _atomic_torch_save({"model": judged.state_dict(), "epoch": epoch + 1}, snap / f"epoch_{epoch + 1:04d}.pt")
        if acc.is_main_process:
            _atomic_torch_save({"model": acc.unwrap_model(model).state_dict(), "optimizer": opt.state_dict(),
                                "state": state, "config": asdict(cfg)}
                               | ({"ema": ema.state_dict()} if ema is not None else {}), ckpt)
        if epoch + 1 - state["best_epoch"] >= cfg.patience:
            acc.print(f"early stop: no improvement for {cfg.patience} epochs")
            break
        if time_fraction(state["train_seconds"], cfg.time_budget_min) >= 1.0:
            acc.print(f"time budget of {cfg.time_budget_min} min used up")
            break
    acc.end_training()
    summary = {"best_val_nme": state["best_nme"], "selected_by": cfg.select_by, "dropped_labels": dropped,
               "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
               "train_minutes": round(state["train_seconds"] / 60, 1)}
    if acc.is_main_process and (out / "best").exists():
        summary.update(write_report(out / "best", val_cache, scheme, cfg, summary))
        if cfg.push_to_hub:
            from facelm.hub import push_model
            push_model(out / "best", cfg.push_to_hub)
    acc.print(json.dumps(summary, indent=1, default=str))
    return summary


def main(argv: list[str] | None = None) -> dict:
    return train(parse_args(argv))


if __name__ == "__main__":
    main()
