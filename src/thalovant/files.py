"""Writing a file so that no reader ever sees it half written or more open than it should be.

:func:`write_private` is the one implementation, used by the SDK (identity files, Noise state)
and by the server (its data directory): the new content goes to a temporary file created
exclusively beside the target (:func:`exclusive_temp`: ``O_CREAT | O_EXCL | O_NOFOLLOW``, a
random name, so a file planted under a guessable name never receives the content), with its
final mode from the first byte, flushed to disk, then renamed over the target (atomic on POSIX).
A symlink at the target is refused.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["PRIVATE", "exclusive_temp", "write_private"]

PRIVATE = 0o600
_TEMP_ATTEMPTS = 16


def exclusive_temp(directory: Path, name: str, mode: int) -> tuple[int, Path]:
    """A new file beside ``directory / name``, created exclusively with ``mode``: its descriptor and path."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_TEMP_ATTEMPTS):
        candidate = directory / f".{name}.{secrets.token_hex(8)}.tmp"
        try:
            return os.open(candidate, flags, mode), candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {directory / name}")


def write_private(path: str | os.PathLike[str], data: bytes | str, *, mode: int = PRIVATE) -> Path:
    """Replace ``path`` with ``data`` (text is UTF-8) atomically; the file has ``mode`` (default
    0600) from its creation. Raises :class:`OSError` (nothing is left behind on failure)."""
    target = Path(path)
    if target.is_symlink():
        raise OSError(f"refusing to write through the symlink {target}")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    directory = target.parent if str(target.parent) else Path(".")
    fd, temp = exclusive_temp(directory, target.name, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # the umask may have narrowed it; never wider than asked
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return target
