"""Safe file names, crash-safe writes and facelm's cache folder.

Annotation files name images by relative path, and the app autosaves annotations; both are places
where a hostile or damaged file could make us read or clobber something outside the data folder,
or leave a half-written file behind after a crash.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path, PurePosixPath, PureWindowsPath

from .errors import UnsafePathError

__all__ = ["safe_join", "atomic_write_bytes", "atomic_write_text", "cache_dir"]


def cache_dir() -> Path:
    """The folder facelm caches derived files in (e.g. ONNX exports): ``$FACELM_CACHE``, else
    ``~/.cache/facelm``. Not created here."""
    return Path(os.environ.get("FACELM_CACHE") or Path.home() / ".cache" / "facelm").expanduser()


def safe_join(root: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """``root / relative``, refusing anything that could end up outside ``root``.

    Refused (``UnsafePathError``): absolute paths (POSIX or Windows style, drive letters, UNC),
    ``..`` components that climb out of ``root``, and paths whose existing symlinks resolve outside
    ``root``. The result is not resolved: it keeps the caller's spelling of ``root``.
    """
    rel = os.fspath(relative)
    if not rel or "\x00" in rel:
        raise UnsafePathError(f"empty or NUL-containing path {rel!r}")
    # Check both flavours: an annotation file written on Windows can carry "C:\\x" or "\\\\host\\x".
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive \
            or rel.startswith(("/", "\\")):
        raise UnsafePathError(f"absolute path {rel!r} is not allowed here (must be relative to {os.fspath(root)})")
    parts = PureWindowsPath(rel).parts if "\\" in rel else PurePosixPath(rel).parts
    depth = 0
    for part in parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                raise UnsafePathError(f"path {rel!r} escapes its folder {os.fspath(root)}")
        elif part not in (".", ""):
            depth += 1
    root_path = Path(root)
    joined = root_path.joinpath(*parts)
    # Lexically fine; now make sure no symlink on the way points elsewhere.
    real_root = os.path.realpath(root_path)
    real = os.path.realpath(joined)
    if os.path.commonpath([real_root, real]) != real_root:
        raise UnsafePathError(f"path {rel!r} resolves to {real}, outside {real_root}")
    return joined


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers (and a crash) see the old or the new file, never half.

    Writes a temporary file in the same folder (``os.replace`` is atomic only within one file system),
    fsyncs it, renames it over ``path`` and fsyncs the folder so the rename itself survives a crash.
    """
    target = Path(path)
    folder = target.parent
    # os.open with 0o666 lets the kernel apply the umask, as for a plain open(); mkstemp would give 0600.
    for _ in range(100):
        tmp = folder / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise FileExistsError(f"cannot create a temporary file beside {target}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o7777)  # keep what the user had
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(folder)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """``atomic_write_bytes`` of ``text`` encoded as given; newlines are written as they are in ``text``."""
    atomic_write_bytes(path, text.encode(encoding))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
