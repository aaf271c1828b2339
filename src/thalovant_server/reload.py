"""Telling a running ``serve`` that another process changed the store (``admin`` commands).

The API keeps the running MQTT broker's accounts in step with the store itself; the ``admin``
commands write the database directly, from another process. They reach the server this way:

1. ``serve`` writes its process id to ``DATA_DIR/serve.pid`` and handles SIGHUP by reloading
   what it keeps in memory from the store (today: the broker's accounts), then writing the
   request's token to ``DATA_DIR/serve.reloaded``;
2. an ``admin`` command that changed something writes a fresh token to
   ``DATA_DIR/serve.reload``, sends SIGHUP to the recorded process, and waits until
   ``serve.reloaded`` holds that token (:func:`notify_server`).

The pid file holds the process id and the process's start time (``/proc/<pid>/stat``, in
clock ticks since boot). It is trusted only while a process with that id and that start time
exists, so a stale file never signals an unrelated process that reused the id, whatever its name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from thalovant.files import write_private

__all__ = ["notify_server", "process_start_time", "running_server", "serving_reloads"]

log = logging.getLogger(__name__)

PID_FILE = "serve.pid"
REQUEST_FILE = "serve.reload"
DONE_FILE = "serve.reloaded"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def process_start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or ``None`` if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")"
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])  # field 22 of the line; the 20th after the comm
    except (IndexError, ValueError):
        return None


def running_server(data_dir: Path) -> int | None:
    """The pid of the live server recorded in ``data_dir`` (same pid, same start time, so a
    reused pid is never taken for the server), else ``None``."""
    text = _read(data_dir / PID_FILE)
    parts = (text or "").split()
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        return None
    pid, started = int(parts[0]), int(parts[1])
    return pid if process_start_time(pid) == started else None


@contextlib.asynccontextmanager
async def serving_reloads(data_dir: Path, reload: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """While inside: record this process in ``data_dir`` and run ``reload`` on every SIGHUP.

    A reload that fails is logged and still acknowledged (the waiting command then reports
    success of the signal only; the server's log says what went wrong).
    """
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    pid_file = data_dir / PID_FILE
    record = f"{os.getpid()} {process_start_time(os.getpid())}"
    write_private(pid_file, record + "\n")
    try:
        loop.add_signal_handler(signal.SIGHUP, wake.set)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
        log.warning("reload on SIGHUP is not available in this process")

    async def worker() -> None:
        while True:
            await wake.wait()
            wake.clear()
            token = _read(data_dir / REQUEST_FILE) or ""
            try:
                await reload()
                log.info("reloaded from the store on request")
            except Exception:
                log.exception("reload from the store failed")
            write_private(data_dir / DONE_FILE, token)

    task = asyncio.create_task(worker(), name="thalovant-reload")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
        if _read(pid_file) == record:
            with contextlib.suppress(OSError):
                pid_file.unlink()


def notify_server(data_dir: Path, timeout: float = 15.0) -> bool | None:
    """Ask the server running on ``data_dir`` to reload; ``None`` when none runs there.

    Returns ``True`` once it acknowledged, ``False`` if it did not within ``timeout`` seconds.
    """
    pid = running_server(data_dir)
    if pid is None:
        return None
    token = secrets.token_hex(16)
    write_private(data_dir / REQUEST_FILE, token)
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError:
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = _read(data_dir / DONE_FILE)
        if done == token:
            return True
        # a later command's request replaced ours; the reload that served it started after ours
        later = _read(data_dir / REQUEST_FILE)
        if later != token and done is not None and done == later:
            return True
        time.sleep(0.02)
    return False
