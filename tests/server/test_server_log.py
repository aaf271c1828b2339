"""The server's log: written by a thread of its own, so a stalled reader of stderr never stalls
the code that logs, and every line queued before exit is written."""

from __future__ import annotations

import subprocess
import sys

LOGGING_PROGRAM = """
import logging, sys
from thalovant_server.cli import configure_logging
configure_logging(None)
log = logging.getLogger("thalovant_server.test")
for n in range({count}):
    log.info("line %d %s", n, "x" * 100)
print("logged", flush=True)
"""


def _run(count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", LOGGING_PROGRAM.format(count=count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_logging_returns_while_nobody_reads_stderr_and_every_line_is_written_at_exit() -> None:
    count = 5_000  # ~700 KB: ten times what a pipe holds before a writer blocks
    process = _run(count)
    assert process.stdout is not None and process.stderr is not None
    # stderr is not read until the program says it logged everything: a logger writing in the
    # caller's thread would block on the full pipe and never get there
    assert process.stdout.readline() == "logged\n"
    lines = process.stderr.read().splitlines()
    assert process.wait() == 0
    assert len(lines) == count
    assert lines[0].endswith(f"INFO thalovant_server.test: line 0 {'x' * 100}")
    assert lines[-1].endswith(f"line {count - 1} {'x' * 100}")
