"""The training loop: ``python -m train.train --data ... --out runs/x`` (options: ``--help``, or
train.config.TrainConfig; recipes: docs/training.md).

A run, step by step (``train``): resolve the config against the --init-from model (``load_base``),
cache the training and validation crops (``load_data``), build the model (``build_model``,
``carry_offsets``), drop broken labels (train.label_judge), then epochs of ``train_epoch`` and
``end_of_epoch`` (validate, keep the best, checkpoint, stop early), then ``finish`` (report and
model card, upload).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import convert_to_fp32, set_seed
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm.auto import tqdm

from facelm.augment import AugmentConfig
from facelm.crop import DEFAULT_SCALE
from facelm.crop_cache import CropCache
from facelm.models import LandmarkModel
from facelm.models.growth import grow, shallower, size_of
from facelm.models.landmark_model import config_default
from facelm.schemes import Scheme, get_scheme

from .cached_faces import CachedFaces, neighbors_from_mean_shape, sample_weights
from .config import DEFAULT_DISTILL, TrainConfig, parse_args
from .crop_eval import evaluate_cache, group_labels
from .distill import blend, check_teacher, flip_test_points
from .label_judge import drop_broken_labels, load_judge
from .report import write_report
from .split_caches import DataSpec, load_caches

__all__ = ["TrainConfig", "parse_args", "train", "main"]


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


def build_model(cfg: TrainConfig, base: LandmarkModel | None, train_cache: CropCache) -> LandmarkModel:
    """The --init-from model at ``cfg.input_size``, or a new one; ``cfg``'s sizes are already resolved."""
    if base is not None:
        model = base if base.input_size == cfg.input_size else base.with_input_size(cfg.input_size)
        try:
            if cfg.depth is not None and cfg.depth < size_of(model, "depth"):
                model = shallower(model, cfg.depth)
            growth = {k: v for k, v in (("width", cfg.width), ("depth", cfg.depth))
                      if v is not None and v != size_of(model, k)}
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


def carry_offsets(model: LandmarkModel, cfg: TrainConfig,
                  acc: Accelerator) -> tuple[LandmarkModel, tuple[tuple[float, float], ...] | None]:
    """The model to train, with the --init-from model's calibration moved into what it learns, and the
    shift that mirrored training faces get (None: none)."""
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
    return model, mirror_shift


def load_data(cfg: TrainConfig, acc: Accelerator, scheme: Scheme) -> tuple[CropCache, CropCache]:
    """The (train, validation) crop caches, built once by the main process; --select-by checked
    against the validation groups."""
    spec = DataSpec(cfg.data, cfg.val_data, cfg.val_fraction, cfg.split_seed, cfg.max_faces)
    with acc.main_process_first():
        train_cache, val_cache = load_caches(spec, cfg.input_size, cfg.crop_scale, cfg.cache_dir, scheme)
    groups = ["all", *group_labels(val_cache.sources)]
    if cfg.select_by not in groups:
        raise SystemExit(f"--select-by {cfg.select_by}: the validation faces have the groups {groups}")
    return train_cache, val_cache


def make_loader(cfg: TrainConfig, cache: CropCache, scheme: Scheme, in_chans: int,
                mirror_shift: tuple[tuple[float, float], ...] | None) -> DataLoader:
    """Augmented training faces, each source drawn as often as --source-weight says."""
    augment = AugmentConfig(occlusion=cfg.occlusion, flip=cfg.flip, mirror_shift=mirror_shift).scaled(cfg.augment)
    faces = CachedFaces(cache, scheme, train=True, augment=augment, in_chans=in_chans)
    weights = sample_weights(cache.sources, cfg.source_weights)
    sampler = WeightedRandomSampler(weights, num_samples=len(faces), replacement=True,
                                    generator=torch.Generator().manual_seed(cfg.seed))
    return DataLoader(faces, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                      drop_last=len(faces) > cfg.batch_size, persistent_workers=cfg.num_workers > 0)


def new_state() -> dict:
    """What a checkpoint records of the run's progress (and --resume reads back)."""
    return {"epoch": 0, "step": 0, "best_nme": float("inf"), "best_epoch": -1, "history": [], "train_seconds": 0.0}


@dataclass
class Run:
    """Everything the epochs of one run share."""
    cfg: TrainConfig
    acc: Accelerator
    scheme: Scheme
    out: Path
    model: torch.nn.Module
    """the prepared (possibly wrapped) model that trains"""
    opt: torch.optim.Optimizer
    loader: DataLoader
    ema: AveragedModel | None
    teacher: LandmarkModel | None
    autocast: AbstractContextManager
    state: dict
    t_start: float

    @property
    def judged(self) -> LandmarkModel:
        """What is validated, saved and snapshot: the averaged weights with --ema, else the model."""
        return self.ema.module if self.ema is not None else self.acc.unwrap_model(self.model)

    @property
    def steps_per_epoch(self) -> int:
        return max(len(self.loader), 1)


def start_run(cfg: TrainConfig, acc: Accelerator, scheme: Scheme, model: LandmarkModel,
              loader: DataLoader) -> Run:
    """Optimiser, EMA and teacher around ``model``, prepared by Accelerate; resumed from
    OUT/checkpoint.pt with --resume."""
    model = model.to(memory_format=torch.channels_last)  # oneDNN's and cuDNN's faster convolution layout
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model, opt, loader = acc.prepare(model, opt, loader)
    ema = (AveragedModel(acc.unwrap_model(model), multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
           if cfg.ema > 0 else None)
    state = new_state()
    ckpt = Path(cfg.out) / "checkpoint.pt"
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
    autocast = torch.autocast(acc.device.type, dtype=torch.bfloat16, enabled=cfg.mixed_precision == "bf16")
    return Run(cfg, acc, scheme, Path(cfg.out), model, opt, loader, ema, teacher, autocast, state,
               time.time() - state["train_seconds"])


def train_epoch(run: Run, epoch: int) -> dict[str, float]:
    """One pass over the training faces; the epoch's mean loss terms and last learning rate."""
    cfg, acc, state = run.cfg, run.acc, run.state
    run.model.train()
    bar = tqdm(run.loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not acc.is_local_main_process,
               leave=False, mininterval=0.1 if sys.stderr.isatty() else 60)
    total_steps = cfg.epochs * run.steps_per_epoch
    sums: dict[str, float] = {}
    for x, y in bar:
        for group in run.opt.param_groups:
            group["lr"] = lr_at(state["step"], total_steps, cfg.warmup_epochs * run.steps_per_epoch, cfg.lr,
                                time_fraction(time.time() - run.t_start, cfg.time_budget_min))
        if run.teacher is not None:
            y = blend(y, flip_test_points(run.teacher, x, run.scheme, run.autocast), cfg.distill)
        with run.autocast:
            pred = run.model(x.contiguous(memory_format=torch.channels_last))
        terms = acc.unwrap_model(run.model).head.loss(convert_to_fp32(pred), y)
        run.opt.zero_grad(set_to_none=True)
        acc.backward(terms["total"])
        run.opt.step()
        if run.ema is not None:
            run.ema.update_parameters(acc.unwrap_model(run.model))
        state["step"] += 1
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v.item()
        bar.set_postfix(loss=f"{terms['total'].item():.3f}", refresh=False)
    state["epoch"] = epoch + 1
    state["train_seconds"] = time.time() - run.t_start
    logs = {f"train/{k}": v / run.steps_per_epoch for k, v in sums.items()}
    logs["lr"] = run.opt.param_groups[0]["lr"]
    return logs


def validate(run: Run, epoch: int, val_cache: CropCache, logs: dict[str, float]) -> None:
    """Validation NME into ``logs`` and the history; a better one saves OUT/best."""
    cfg, state = run.cfg, run.state
    result = evaluate_cache(run.judged, val_cache, run.scheme)
    nme = result[cfg.select_by].nme_mean
    logs.update({f"val/nme_{k}": r.nme_mean for k, r in result.items()})
    improved = nme < state["best_nme"]
    if improved:
        state["best_nme"], state["best_epoch"] = nme, epoch + 1
        if run.acc.is_main_process:
            run.judged.save_pretrained(run.out / "best")
    state["history"].append({"epoch": epoch + 1, "val_nme": nme, "train_loss": logs["train/total"],
                             "seconds": round(state["train_seconds"])})
    run.acc.print(f"epoch {epoch + 1}: loss {logs['train/total']:.4f}  val NME ({cfg.select_by}) {nme * 100:.3f}%"
                  f"{' (best)' if improved else ''}  [{state['train_seconds'] / 60:.1f} min]")


def save_progress(run: Run, epoch: int) -> None:
    """The epoch's snapshot (with --snapshot-every) and OUT/checkpoint.pt, by the main process."""
    if not run.acc.is_main_process:
        return
    cfg = run.cfg
    if cfg.snapshot_every and (epoch + 1) % cfg.snapshot_every == 0:
        snap = run.out / "snapshots"
        snap.mkdir(exist_ok=True)
        _atomic_torch_save({"model": run.judged.state_dict(), "epoch": epoch + 1}, snap / f"epoch_{epoch + 1:04d}.pt")
    _atomic_torch_save({"model": run.acc.unwrap_model(run.model).state_dict(), "optimizer": run.opt.state_dict(),
                        "state": run.state, "config": asdict(cfg)}
                       | ({"ema": run.ema.state_dict()} if run.ema is not None else {}), run.out / "checkpoint.pt")


def should_stop(run: Run) -> bool:
    """Early stopping (--patience) or the time budget used up."""
    cfg, state = run.cfg, run.state
    if state["epoch"] - state["best_epoch"] >= cfg.patience:
        run.acc.print(f"early stop: no improvement for {cfg.patience} epochs")
        return True
    if time_fraction(state["train_seconds"], cfg.time_budget_min) >= 1.0:
        run.acc.print(f"time budget of {cfg.time_budget_min} min used up")
        return True
    return False


def finish(run: Run, val_cache: CropCache, dropped: dict[str, int]) -> dict:
    """The run's summary; the best model's report and model card, and its upload (--push-to-hub)."""
    cfg, acc, state = run.cfg, run.acc, run.state
    acc.end_training()
    summary = {"best_val_nme": state["best_nme"], "selected_by": cfg.select_by, "dropped_labels": dropped,
               "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
               "train_minutes": round(state["train_seconds"] / 60, 1)}
    if acc.is_main_process and (run.out / "best").exists():
        summary.update(write_report(run.out / "best", val_cache, run.scheme, cfg, summary))
        if cfg.push_to_hub:
            from facelm.hub import push_model
            push_model(run.out / "best", cfg.push_to_hub)
    acc.print(json.dumps(summary, indent=1, default=str))
    return summary


def train(cfg: TrainConfig) -> dict:
    """One training run, as the module's docstring lists its steps; returns its summary."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.mixed_precision not in ("no", "bf16"):
        raise SystemExit(f"--mixed-precision {cfg.mixed_precision}: choose no or bf16")
    acc = Accelerator(log_with="tensorboard", project_dir=cfg.out)
    set_seed(cfg.seed)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    scheme = get_scheme(cfg.scheme)
    # the checkpoint and report record what ran: the teacher's weight (refused before any data is
    # read), the input size and crop scale, the width and depth
    cfg = replace(cfg, distill=distill_weight(cfg))
    base, input_size, crop_scale = load_base(cfg)
    cfg = replace(cfg, input_size=input_size, crop_scale=crop_scale)
    train_cache, val_cache = load_data(cfg, acc, scheme)
    model, mirror_shift = carry_offsets(build_model(cfg, base, train_cache), cfg, acc)
    cfg = replace(cfg, width=size_of(model, "width"), depth=size_of(model, "depth"))
    # by default judged by the model as built: base's outputs at this run's input size
    judge = load_judge(cfg.label_judge, cfg.crop_scale) or (model if base else None)
    train_cache, dropped = drop_broken_labels(train_cache, judge, cfg.max_label_nme, scheme)
    if dropped:
        by = f"--label-judge {cfg.label_judge}" if cfg.label_judge else "the --init-from model"
        acc.print(f"dropped {sum(dropped.values())} training faces with NME > {cfg.max_label_nme:.3f} under {by}: {dropped}")
    acc.print(f"train faces: {len(train_cache)}, validation faces: {len(val_cache)}")
    loader = make_loader(cfg, train_cache, scheme, model.in_chans, mirror_shift)
    run = start_run(cfg, acc, scheme, model, loader)
    for epoch in range(run.state["epoch"], cfg.epochs):
        logs = train_epoch(run, epoch)
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            validate(run, epoch, val_cache, logs)
        acc.log(logs, step=epoch + 1)
        save_progress(run, epoch)
        if should_stop(run):
            break
    return finish(run, val_cache, dropped)


def main(argv: list[str] | None = None) -> dict:
    return train(parse_args(argv))


if __name__ == "__main__":
    main()
