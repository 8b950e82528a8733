from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from facelm.errors import UnsafePathError
from facelm.paths import atomic_write_bytes, atomic_write_text, cache_dir, safe_join


@pytest.mark.parametrize("relative", ["a.jpg", "sub/a.jpg", "./a.jpg", "sub/../a.jpg", "sub\\a.jpg"])
def test_safe_join_accepts_paths_inside_root(tmp_path: Path, relative: str) -> None:
    joined = safe_join(tmp_path, relative)
    assert os.path.realpath(joined).startswith(os.path.realpath(tmp_path))


@pytest.mark.parametrize("relative", [
    "/etc/passwd", "\\windows\\system32", "C:\\x.jpg", "C:x.jpg", "\\\\host\\share\\x.jpg",
    "..", "../a.jpg", "sub/../../a.jpg", "..\\a.jpg", "", "a\x00b",
])
def test_safe_join_refuses_escapes(tmp_path: Path, relative: str) -> None:
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path / "root", relative)


def test_safe_join_refuses_symlinks_leading_outside(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"x")
    (root / "link").symlink_to(outside)
    (root / "filelink.jpg").symlink_to(outside / "secret.jpg")
    for relative in ("link/secret.jpg", "filelink.jpg", "link"):
        with pytest.raises(UnsafePathError, match="outside"):
            safe_join(root, relative)
    # A link that stays inside the root is fine.
    (root / "inner").mkdir()
    (root / "inner_link").symlink_to(root / "inner")
    assert safe_join(root, "inner_link/a.jpg") == root / "inner_link" / "a.jpg"


def test_atomic_write_replaces_content_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "ann.xml"
    atomic_write_text(target, "first\n")
    assert target.read_text() == "first\n"
    atomic_write_bytes(target, b"second\r\n")
    assert target.read_bytes() == b"second\r\n"  # bytes as given, no newline translation
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ann.xml"]


def test_atomic_write_keeps_mode_and_honours_umask(tmp_path: Path) -> None:
    new = tmp_path / "new.txt"
    old_mask = os.umask(0o022)
    try:
        atomic_write_text(new, "x")
    finally:
        os.umask(old_mask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o644
    existing = tmp_path / "existing.txt"
    existing.write_text("old")
    existing.chmod(0o600)
    atomic_write_text(existing, "new")
    assert stat.S_IMODE(existing.stat().st_mode) == 0o600


def test_atomic_write_failure_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "ann.json"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ann.json"]


def test_atomic_write_text_encodes(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    atomic_write_text(target, "café", encoding="latin-1")
    assert target.read_bytes() == "café".encode("latin-1")


def test_cache_dir_has_one_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """FACELM_CACHE, else XDG_CACHE_HOME/facelm, else ~/.cache/facelm; read at every call."""
    monkeypatch.setenv("FACELM_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("crops") == tmp_path / "mine" / "crops"
    monkeypatch.delenv("FACELM_CACHE")
    assert cache_dir("crops") == tmp_path / "xdg" / "facelm" / "crops"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "facelm"
    assert not (tmp_path / "home").exists()


def test_the_test_session_keeps_caches_out_of_the_home_folder() -> None:
    assert cache_dir().resolve() != (Path.home() / ".cache" / "facelm").resolve()
