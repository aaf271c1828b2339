"""Writing a file so that no reader ever sees it half written or more open than it should be.

:func:`write_private` is the one implementation, used by the SDK (identity files, Noise state)
and by the server (its data directory): the new content goes to a temporary file created
exclusively beside the target, with its final mode from the first byte, flushed to disk, then
renamed over the target (atomic on POSIX). A symlink at the target is refused.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PRIVATE = 0o600


def write_private(path: str | os.PathLike[str], data: bytes | str, *, mode: int = PRIVATE) -> Path:
    """Replace ``path`` with ``data`` (text is UTF-8) atomically; the file has ``mode`` (default
    0600) from its creation. Raises :class:`OSError` (nothing is left behind on failure)."""
    target = Path(path)
    if target.is_symlink():
        raise OSError(f"refusing to write through the symlink {target}")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    directory = target.parent if str(target.parent) else Path(".")
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    return target
