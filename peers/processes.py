"""Child processes of the peers' stacks: started in a session of their own, tied to their parent.

A :class:`Child` runs one command with its output in a log file. It is the leader of a new process
group, gets ``SIGTERM`` when the process that started it dies (``PR_SET_PDEATHSIG``, Linux), and
:meth:`Child.stop` signals the whole group: nothing of a stack outlives the test or benchmark that
started it, even after ``kill -9`` of that process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def free_ports(count: int) -> list[int]:
    """``count`` different TCP ports on 127.0.0.1 that nothing listens on right now (bound all at
    once while they are chosen: ports asked for one after another may come back the same)."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_ports(1)[0]


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class Child:
    """One process of a stack, its log file and its process group."""

    def __init__(self, name: str, argv: Sequence[str], *, log: Path, env: Mapping[str, str], cwd: Path) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        """Poll ``ready`` until it holds; raise with the log's tail if the child dies or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not ready():
            if not self.alive():
                raise RuntimeError(f"{self.name} exited while waiting for {what}:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no {what} after {timeout:.0f} s:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)

    def wait_for_port(self, port: int, timeout: float = 60) -> None:
        self.wait_until(lambda: listening(port), f"listener on 127.0.0.1:{port}", timeout)

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        self.wait_until(lambda: text in self.log_text(), f"log line {text!r}", timeout)

    def stop(self, grace: float = 3.0) -> None:
        """SIGINT, then SIGTERM, then SIGKILL to the process group, ``grace`` seconds each."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
            break
        # the leader is gone; take any straggler of its group with it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
