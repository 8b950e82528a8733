"""The registry of bundled pretrained models, their Hub model cards, and publishing them (to a local
folder: no network)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

import facelm
from facelm.cli import main as cli_main
from facelm.errors import FacelmError
from facelm.hub import WEIGHTS_DIR, load_model
from facelm.model_card import build_model_card
from facelm.publish import publish


def test_list_models_describes_every_bundled_model() -> None:
    names = facelm.list_models()
    assert names == sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / "config.json").is_file())
    assert {"ibug68", "ibug68_fast", "celeba5"} <= set(names)
    assert facelm.list_models("ibug68*") == ["ibug68", "ibug68_fast"]
    for info in facelm.list_models(details=True):
        model = facelm.load_model(info.name)
        assert (info.scheme, info.num_points, info.input_size) == (model.scheme, model.num_points, model.input_size)
        assert info.description and info.description == ModelCard.load(info.path / "README.md").data.description
    with pytest.raises(KeyError, match="bundled: celeba5"):
        facelm.model_registry.model_info("nope")


def test_model_config_rebuilds_the_same_network() -> None:
    model = load_model("ibug68")
    copy = type(model)(**model.config)
    assert model.config == json.loads((WEIGHTS_DIR / "ibug68" / "config.json").read_text())
    assert {k: v.shape for k, v in copy.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["ibug68", "ibug68_fast", "celeba5"])
def test_bundled_cards_are_generated_from_their_eval_json(name: str) -> None:
    """The committed README.md is what ``python -m facelm.model_card`` writes, and its model-index
    holds each validation subset's NME from eval.json."""
    folder = WEIGHTS_DIR / name
    card = build_model_card(folder, repo_id=name)
    assert str(card) == ModelCard.load(folder / "README.md").content, "run python -m facelm.model_card"
    report = json.loads((folder / "eval.json").read_text())
    data = card.data
    assert data.library_name == "facelm" and "face-landmarks" in data.tags
    got = {r.dataset_name: r.metric_value for r in data.eval_results}
    assert got == {k: round(100 * r["nme_mean"], 2) for k, r in report["results"].items()}
    assert all(r.metric_type == "nme" and r.dataset_split == "validation" for r in data.eval_results)


def test_publish_to_a_local_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["publish", "--org", "someone", "--out", str(tmp_path)]) == 0
    assert "someone/facelm-ibug68-fast" in capsys.readouterr().out
    for name in facelm.list_models():
        repo = tmp_path / ("facelm-" + name.replace("_", "-"))
        assert (repo / "model.safetensors").read_bytes() == (WEIGHTS_DIR / name / "model.safetensors").read_bytes()
        card = ModelCard.load(repo / "README.md")
        assert f'from_pretrained("someone/{repo.name}")' in card.text
        assert card.data.eval_results and card.data.model_name == repo.name
        assert load_model(repo).config == load_model(name).config


def test_publish_dry_run_writes_and_uploads_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    import huggingface_hub

    def no_upload(*args, **kwargs):
        raise AssertionError("a dry run must not upload")
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", no_upload)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", no_upload)
    monkeypatch.chdir(tmp_path)
    staged = publish("someone", ["celeba5"], dry_run=True)
    assert list(staged) == ["someone/facelm-celeba5"] and not any(p.exists() for p in staged["someone/facelm-celeba5"])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FacelmError, match="no bundled model"):
        publish("someone", ["nope"], dry_run=True)
    assert cli_main(["publish", "--org", "a/b", "--dry-run"]) == 2
    assert "organisation" in capsys.readouterr().err
