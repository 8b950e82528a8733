"""Model cards as the Hugging Face Hub reads them: ``ModelCardData`` metadata (library, tags, datasets,
and a ``model-index`` with the NME of each validation subset) and a body filled from the model folder's
``config.json``, weights and ``eval.json``.

``eval.json`` (written by train.train's final report) holds ``protocol``, ``results`` (subset ->
``facelm.metrics.EvalResult.to_dict()``), ``training`` (the run's summary) and ``config`` (the
TrainConfig); optional keys: ``description`` (one line, shown by ``facelm.list_models()``) and
``subset_notes`` (subset -> what its faces are).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult as HubEvalResult, ModelCard, ModelCardData

from .metrics import EvalResult, results_table
from .models.model_card import MODEL_CARD_TEMPLATE
from .schemes import get_scheme

TAGS = ["face-landmarks", "facial-landmark-detection", "facelm"]
LIMITATIONS = "Trained on near-frontal to moderate-pose faces; extreme profiles and heavy occlusion are weak."


def read_report(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The folder's ``eval.json`` ({} when there is none)."""
    path = Path(model_dir) / "eval.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def default_description(config: dict[str, Any]) -> str:
    scheme = get_scheme(config.get("scheme", "ibug68"))
    return f"{scheme.num_points} face landmarks ({scheme.name}), {config.get('input_size', '?')} px input"


def _datasets(train_config: dict[str, Any]) -> list[str]:
    return [Path(str(d)).name or str(d) for d in train_config.get("data") or []]


def hub_eval_results(results: dict[str, dict], norm_name: str) -> list[HubEvalResult]:
    """One ``model-index`` entry per validation subset: its mean NME in percent."""
    return [HubEvalResult(task_type="keypoint-detection", task_name="Face landmark detection",
                          dataset_type=subset, dataset_name=subset, dataset_split="validation",
                          metric_type="nme", metric_name=f"NME ({norm_name}, %)",
                          metric_value=round(100 * r["nme_mean"], 2))
            for subset, r in results.items()]


def _architecture(model: Any, model_dir: Path, half: bool) -> str:
    config = model.config
    n_params = sum(p.numel() for p in model.parameters())
    size_mb = (model_dir / "model.safetensors").stat().st_size / 1e6
    text = (f"`{config.get('backbone', '?')}` backbone + `{model.head.__class__.__name__}`; input {model.input_size}x"
            f"{model.input_size} px, {model.in_chans} channel(s); {n_params / 1e6:.2f} M parameters; "
            f"{size_mb:.1f} MB safetensors{' (float16 weights, computed in float32)' if half else ''}. "
            f"Crop: square, centred on the face box, side = {model.crop_scale} x the larger box side.")
    if bool(model.point_offset.any()):
        text += (f" Decoded points move by a per-point offset (mean {model.point_offset.abs().mean():.2f} px, "
                 f"largest {model.point_offset.abs().max():.2f} px): the labels' mirror-asymmetric part, measured "
                 "on training faces by `python -m train.point_offsets`.")
    return text


def _training(report: dict[str, Any]) -> str:
    cfg, summary = report.get("config") or {}, report.get("training") or {}
    data = cfg.get("data")
    text = (f"Data: {', '.join(map(str, data)) if data else '?'}. "
            f"{summary.get('epochs_run', '?')} epochs, {summary.get('train_minutes', '?')} minutes on the "
            f"training machine (best epoch {summary.get('best_epoch', '?')})")
    text += f", starting from the weights of `{cfg['init_from']}`." if cfg.get("init_from") else "."
    if cfg.get("teacher"):
        text += (f" Targets: the labels moved {cfg['distill']:.0%} of the way to the flip-test points of "
                 f"`{cfg['teacher']}` (knowledge distillation, `train.distill`).")
    dropped = summary.get("dropped_labels")
    if dropped:
        judge = f"--label-judge {cfg['label_judge']}" if cfg.get("label_judge") else "the --init-from model"
        counts = ", ".join(f"{source} {n:,}" for source, n in dropped.items())
        text += (f" Training faces left out as broken labels ({judge}, --max-label-nme "
                 f"{cfg.get('max_label_nme')}): {counts}.")
    return text


def _evaluation(report: dict[str, Any], scheme_name: str) -> str:
    scheme = get_scheme(scheme_name)
    a, b = scheme.interocular
    results = {k: EvalResult(**{f: v for f, v in r.items() if f != "per_point"})
               for k, r in report.get("results", {}).items()}
    text = ("Validation split, boxes from the ground-truth landmarks (tight box), NME normalised by the "
            f"distance between points {a} and {b} ({scheme.names[a]}, {scheme.names[b]}), no flip test")
    notes = report.get("subset_notes") or {}
    text += ":\n\n" + "".join(f"- `{k}`: {v}\n" for k, v in notes.items()) + ("\n" if notes else "")
    return text + "```\n" + results_table(results) + "\n```\n\nMore figures: docs/results.md in the facelm repository."


def build_model_card(model_dir: str | os.PathLike, repo_id: str | None = None) -> ModelCard:
    """The card of a saved model folder, from its config, weights and ``eval.json``; ``repo_id`` is
    what its usage example loads (default: a placeholder path)."""
    from .hub import load_model, stores_float16
    model_dir = Path(model_dir)
    model = load_model(model_dir)
    report = read_report(model_dir)
    scheme = get_scheme(model.scheme)
    name = repo_id.split("/")[-1] if repo_id else model_dir.name
    data = ModelCardData(
        library_name="facelm", pipeline_tag="keypoint-detection", tags=list(TAGS), model_name=name,
        datasets=_datasets(report.get("config") or {}) or None,
        eval_results=hub_eval_results(report["results"], "inter-ocular") if report.get("results") else None,
        description=report.get("description") or default_description(model.config),
    )
    return ModelCard.from_template(
        data, template_str=MODEL_CARD_TEMPLATE, model_name=f"{model.scheme} ({model.num_points} points)",
        scheme=scheme.name, repo_id=repo_id, description=data.description,
        architecture=_architecture(model, model_dir, stores_float16(model_dir)),
        training=_training(report) if report.get("training") else None,
        metrics=_evaluation(report, model.scheme) if report.get("results") else None,
        limitations=LIMITATIONS)


def write_model_card(model_dir: str | os.PathLike, repo_id: str | None = None) -> Path:
    """(Re)write ``README.md`` of a saved model folder; returns its path."""
    path = Path(model_dir) / "README.md"
    build_model_card(model_dir, repo_id).save(path)
    return path


def card_description(model_dir: str | os.PathLike) -> str | None:
    """The one-line description in a folder's model card metadata, if any."""
    path = Path(model_dir) / "README.md"
    if not path.is_file():
        return None
    return ModelCard.load(path).data.to_dict().get("description")


def main(argv: list[str] | None = None) -> None:
    """``python -m facelm.model_card [FOLDER ...]``: rewrite the cards (default: the bundled models')."""
    import argparse

    from .hub import WEIGHTS_DIR, bundled_models
    p = argparse.ArgumentParser(prog="python -m facelm.model_card", description=main.__doc__)
    p.add_argument("folders", nargs="*", help="model folders (default: every bundled model)")
    a = p.parse_args(argv)
    folders = a.folders or [str(WEIGHTS_DIR / name) for name in bundled_models()]
    for folder in folders:
        bundled = Path(folder).resolve().parent == WEIGHTS_DIR
        print(write_model_card(folder, repo_id=Path(folder).name if bundled else None))


if __name__ == "__main__":
    main()
