"""How train/ is put together: its command line documents every option, and its modules import each
other without a cycle (so each can be read, imported and tested on its own)."""
from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from train.config import TrainConfig
from train.dataclass_cli import build_parser, field_docs, parse_dataclass

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "train"


def _help_entries(text: str) -> dict[str, str]:
    """Each option of an argparse help text (after "options:") -> its help, lines joined."""
    entries: dict[str, str] = {}
    current = None
    for line in text.split("options:", 1)[1].splitlines():
        m = re.match(r"^  (-[-\w]+)(?:, (--[-\w]+))?((?: [^ ]+)*?)(?:\s{2,}(.*))?$", line)
        if m and not line.startswith("   "):
            current = m.group(2) or m.group(1)
            entries[current] = m.group(4) or ""
        elif current and line.strip():
            entries[current] = (entries[current] + " " + line.strip()).strip()
    return entries


def test_train_help_documents_every_config_field() -> None:
    out = subprocess.run([sys.executable, "-m", "train.train", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    entries = _help_entries(out)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.metadata.get("flag", f.name.replace("_", "-"))
        assert flag in entries, f"{flag} ({f.name}) missing from python -m train.train --help"
        text = re.sub(r"\(default: [^)]*\)", "", entries[flag]).strip()
        assert len(text) > 10, f"{flag} has no help: {entries[flag]!r}"
    assert entries["--source-weight"].startswith("sample faces of a source")


def test_command_line_fills_the_config() -> None:
    cfg = parse_dataclass(TrainConfig, ["--data", "a", "b", "--source-weight", "afw=2", "--source-weight",
                                        "helen=4", "--resume", "--distill", "0.3", "--width", "48"])
    assert cfg.data == ["a", "b"] and cfg.val_data == []
    assert cfg.source_weights == {"afw": 2.0, "helen": 4.0}
    assert cfg.resume is True and cfg.distill == 0.3 and cfg.width == 48 and cfg.depth is None
    assert parse_dataclass(TrainConfig, ["--data", "x"]) == TrainConfig(data=["x"])
    for bad in (["--out", "x"], ["--data", "x", "--mixed-precision", "fp8"], ["--data", "x", "--source-weight", "afw"]):
        with pytest.raises(SystemExit):
            parse_dataclass(TrainConfig, bad)


def test_an_undocumented_field_is_refused() -> None:
    @dataclasses.dataclass
    class Config:
        documented: int = 1
        """a number"""
        bare: str = "x"

    assert field_docs(Config) == {"documented": "a number"}
    with pytest.raises(TypeError, match="bare has no docstring"):
        build_parser(Config)


def _train_imports() -> dict[str, set[str]]:
    """train module -> the train modules it imports, wherever in the file (deferred imports too)."""
    graph = {}
    for path in TRAIN.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    names = [node.module] if node.module else [a.name for a in node.names]
                    deps.update(n.split(".")[0] for n in names)
                elif node.level == 0 and (node.module or "").startswith("train."):
                    deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[1] for a in node.names if a.name.startswith("train."))
        graph[path.stem] = deps - {path.stem}
    return graph


def test_train_modules_import_each_other_without_a_cycle() -> None:
    graph = _train_imports()
    assert graph["train"] >= {"crop_eval", "distill", "label_judge"}  # the graph is read, not empty
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        for dep in sorted(graph.get(module, ())):
            visit(dep, path + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_train_modules_import_in_any_order() -> None:
    """Each module imported in a fresh interpreter, leaves of the import graph last: nothing relies on
    another module having been imported first."""
    modules = sorted((p.stem for p in TRAIN.glob("*.py") if p.stem != "__init__"), reverse=True)
    code = "; ".join(f"import train.{m}" for m in modules)
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)
