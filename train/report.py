"""The final report of a training run: eval.json, ced.png and the model card beside the best checkpoint."""
from __future__ import annotations

import json
from pathlib import Path

from facelm.crop_cache import CropCache
from facelm.metrics import EvalResult, plot_ced
from facelm.schemes import Scheme

from .crop_eval import errors_on_cache, group_labels


def write_report(model_dir: Path, val_cache: CropCache, scheme: Scheme, cfg: object, summary: dict) -> dict:
    """Final evaluation of the best checkpoint: eval.json, ced.png and the model card, next to it."""
    from facelm.hub import load_model
    from facelm.model_card import write_model_card
    model = load_model(model_dir)
    errors = errors_on_cache(model, val_cache, scheme)
    groups = group_labels(val_cache.sources)
    results = {"all": EvalResult.from_errors(errors)} | {k: EvalResult.from_errors(errors[m]) for k, m in groups.items()}
    plot_ced({k: errors[m] for k, m in groups.items()} | {"all": errors}, model_dir / "ced.png",
             title="CED on validation faces (GT boxes)")
    report = {"protocol": "validation split, boxes = tight box of GT landmarks, inter-ocular NME, no flip test",
              "results": {k: r.to_dict() for k, r in results.items()}, "training": summary,
              "config": {k: v for k, v in vars(cfg).items()} if hasattr(cfg, "__dict__") else {}}
    (model_dir / "eval.json").write_text(json.dumps(report, indent=1, default=str))
    write_model_card(model_dir)
    return {"val": {k: round(r.nme_mean * 100, 3) for k, r in results.items()}}
