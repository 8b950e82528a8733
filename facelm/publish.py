"""Publish the bundled models as Hugging Face Hub model repos (``ORG/facelm-ibug68``, ...), each with
its weights, config, evaluation and a model card the Hub reads (``facelm.model_card``), so that
``FaceLandmarker.from_pretrained("ORG/facelm-ibug68")`` or a Space's ``FACELM_MODEL`` can load them.

    python -m facelm publish --org ORG                    # create or update the repos (needs a token)
    python -m facelm publish --org ORG --out DIR          # write each repo's files to DIR/<repo> instead
    python -m facelm publish --org ORG --dry-run          # list what would be uploaded, upload nothing
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from .errors import FacelmError
from .hub import WEIGHTS_DIR, bundled_models
from .model_card import build_model_card

FILES = ("config.json", "model.safetensors", "eval.json", "ced.png")
"""What a published repo holds besides its README.md (the model card)."""


def repo_name(model: str) -> str:
    """The Hub repo name of a bundled model: ``ibug68_fast`` -> ``facelm-ibug68-fast``."""
    return "facelm-" + model.replace("_", "-")


def stage(model: str, repo_id: str, folder: Path) -> list[Path]:
    """Write the files of ``model``'s repo ``repo_id`` into ``folder``; returns them."""
    src = WEIGHTS_DIR / model
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FILES:
        if (src / name).is_file():
            written.append(Path(shutil.copy2(src / name, folder / name)))
    build_model_card(src, repo_id=repo_id).save(folder / "README.md")
    return [*written, folder / "README.md"]


def publish(org: str, models: list[str] | None = None, out: str | Path | None = None,
            dry_run: bool = False) -> dict[str, list[Path]]:
    """Stage each bundled model (default: all) as ``org/facelm-<name>``: into ``out/<repo name>``
    when ``out`` is given, else into a temporary folder that is uploaded (``dry_run``: not uploaded).
    Returns repo id -> the files staged (under ``out``; gone after the call without it)."""
    known = bundled_models()
    unknown = sorted(set(models or []) - set(known))
    if unknown:
        raise FacelmError(f"no bundled model {', '.join(unknown)}; bundled: {', '.join(known)}")
    if not org or "/" in org or " " in org:
        raise FacelmError(f"--org {org!r}: give a Hub user or organisation name, e.g. my-org")
    staged: dict[str, list[Path]] = {}
    with tempfile.TemporaryDirectory(prefix="facelm-publish-") as tmp:
        root = Path(out) if out is not None else Path(tmp)
        for model in models or known:
            repo_id = f"{org}/{repo_name(model)}"
            folder = root / repo_name(model)
            staged[repo_id] = stage(model, repo_id, folder)
            if out is None and not dry_run:
                from huggingface_hub import HfApi
                api = HfApi()
                api.create_repo(repo_id, exist_ok=True)
                api.upload_folder(folder_path=str(folder), repo_id=repo_id,
                                  commit_message=f"facelm {model}: weights, config, evaluation, model card")
    return staged


def add_publish_parser(sub: argparse._SubParsersAction) -> None:
    """The ``publish`` subcommand of ``python -m facelm``."""
    q = sub.add_parser("publish", help="publish the bundled models to Hub repos ORG/facelm-<model>",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--org", required=True, help="Hub user or organisation that gets the repos")
    q.add_argument("--model", action="append", default=None, choices=bundled_models(),
                   help="publish only this bundled model (repeat for several; default: all)")
    q.add_argument("--out", default=None, metavar="DIR",
                   help="write each repo's files to DIR/<repo name> instead of uploading them")
    q.add_argument("--dry-run", action="store_true", help="list what would be uploaded; upload nothing")
    q.set_defaults(func=cmd_publish)


def cmd_publish(a: argparse.Namespace) -> int:
    staged = publish(a.org, a.model, a.out, a.dry_run)
    uploading = a.out is None and not a.dry_run
    for repo_id, files in staged.items():
        where = f"https://huggingface.co/{repo_id}" if uploading else (files[0].parent if a.out else "(dry run)")
        print(f"{repo_id}: {where}")
        for f in files:
            print(f"  {f.name:20s} {f.stat().st_size / 1e6 if f.exists() else 0:8.2f} MB" if a.out else f"  {f.name}")
    return 0
