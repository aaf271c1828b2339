"""Private files of the server: the data directory (0700) and files written 0600 from the first byte.

Every file the server writes into its data directory goes through :func:`write_private` (the
SDK's :func:`thalovant.files.write_private`, re-exported here) or :func:`create_private`, or is
created by a library and then passed to :func:`restrict`. A file planted under a predictable
temporary name never receives a secret, and a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from thalovant.files import exclusive_temp, write_private

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "create_private",
    "ensure_private_dir",
    "restrict",
    "secure_tree",
    "touch_private",
    "write_private",
]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) if missing and make ``path`` itself mode 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    if stat.S_IMODE(path.stat().st_mode) != PRIVATE_DIR_MODE:
        path.chmod(PRIVATE_DIR_MODE)
    return path


def create_private(path: Path, data: bytes | str) -> bool:
    """Create ``path`` (0600) with ``data`` unless it exists; ``False`` when it already did.

    The complete file appears at once (written beside it, then hard-linked into place), so a
    concurrent reader or creator sees either no file or the whole of one.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, temp = exclusive_temp(path.parent, path.name, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, PRIVATE_FILE_MODE)
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()


def touch_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist; make an existing one 0600."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    os.close(os.open(path, flags, PRIVATE_FILE_MODE))
    restrict(path)


def secure_tree(root: Path) -> None:
    """Make ``root`` and every directory under it 0700 and every regular file 0600.

    Symbolic links are neither followed nor changed. Run at startup, it brings a data directory
    written by an older server (a database 0644 in a directory 0755) to the modes this one keeps.
    """
    ensure_private_dir(root)
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder)
        for name in dirs:
            path = base / name
            if not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) != PRIVATE_DIR_MODE:
                path.chmod(PRIVATE_DIR_MODE)
        for name in files:
            restrict(base / name)


def restrict(path: Path) -> None:
    """Make an existing regular file 0600 (a file some library created); missing files are skipped."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_symlink() or not path.is_file():
            return
        if stat.S_IMODE(path.stat().st_mode) != PRIVATE_FILE_MODE:
            path.chmod(PRIVATE_FILE_MODE)
