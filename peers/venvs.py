"""Build the peers' virtual environments, pinned, once.

:func:`ensure` makes ``sdk097`` and ``hm5`` under :func:`peers.peers_dir` when they are missing or
were built from other inputs (interpreter version, requirements, constraints), and otherwise only
checks that they import. Every distribution is pinned by ``constraints-<name>.txt`` beside this
file. Concurrent callers (several test runs on one machine) serialise on a lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from peers import HERE, peers_dir

INSTALL_TIMEOUT = 1200


@dataclass(frozen=True)
class Venv:
    """One peer's environment: what to install and how to check it imports."""

    name: str
    requirements: tuple[str, ...]
    check: str
    pre: bool = False

    @property
    def constraints(self) -> Path:
        return HERE / f"constraints-{self.name}.txt"

    def path(self) -> Path:
        return peers_dir() / self.name

    def python(self) -> Path:
        return self.path() / "bin" / "python"

    def fingerprint(self, python: str) -> str:
        """What the venv is built from; a change means a rebuild."""
        version = subprocess.run(
            [python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        inputs = [version, str(self.pre), *self.requirements, self.constraints.read_text(encoding="utf-8")]
        return hashlib.sha256("\n".join(inputs).encode()).hexdigest()[:24]


SDK097 = Venv(
    "sdk097",
    ("thalovant[mqtt]==0.9.7",),
    "import thalovant, paho.mqtt, aiohttp; assert thalovant.__version__ == '0.9.7', thalovant.__version__",
)
HM5 = Venv(
    "hm5",
    (
        "hivemind-core==5.3.10a1",
        "hivemind-http-protocol==0.0.20a2",
        "hivemind-mqtt-protocol==0.2.5a2",
        "ovos-messagebus==0.2.1a6",
    ),
    "import hivemind_core, hivemind_http_protocol, hivemind_mqtt_protocol, hivemind_websocket_protocol, "
    "ovos_messagebus, ovos_bus_client; from importlib.metadata import version; "
    "assert version('hivemind-core') == '5.3.10a1'",
    pre=True,
)
ALL = (SDK097, HM5)


def isolated_env(scratch: Path) -> dict[str, str]:
    """An environment with nothing of the caller's: no THALOVANT_*/PYTHON* settings, private XDG folders."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(scratch / "home"),
        "XDG_CONFIG_HOME": str(scratch / "config"),
        "XDG_DATA_HOME": str(scratch / "data"),
        "XDG_STATE_HOME": str(scratch / "state"),
        "XDG_CACHE_HOME": str(scratch / "cache"),
    }


def _imports(venv: Venv) -> bool:
    scratch = peers_dir() / ".scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [str(venv.python()), "-c", venv.check],
            capture_output=True,
            env=isolated_env(scratch),
            cwd=scratch,
            timeout=180,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _build(venv: Venv, python: str, say: Say) -> None:
    target = venv.path()
    shutil.rmtree(target, ignore_errors=True)
    started = time.monotonic()
    say(f"{venv.name}: building {target}")
    subprocess.run([python, "-m", "venv", str(target)], check=True, timeout=300)
    pip = [str(venv.python()), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], capture_output=True, timeout=600)  # best effort: an old pip works too
    flags = ["--pre"] if venv.pre else []
    done = subprocess.run(
        [*pip, *flags, "-c", str(venv.constraints), *venv.requirements],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{venv.name}: pip install failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    if not _imports(venv):
        raise RuntimeError(f"{venv.name}: built, but the import check failed: {venv.check}")
    say(f"{venv.name}: built in {time.monotonic() - started:.0f} s")


class Say:
    """Progress lines on stderr (quiet when ``quiet``)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(f"[peers] {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    root = peers_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".build.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure(*, force: bool = False, quiet: bool = False, python: str | None = None) -> None:
    """Build whichever of the venvs is missing or stale (all with ``force``); check the rest import."""
    say = Say(quiet)
    interpreter = python or os.environ.get("PEERS_PYTHON") or shutil.which("python3") or sys.executable
    with _locked():
        for venv in ALL:
            stamp = venv.path() / ".peers-stamp"
            want = venv.fingerprint(interpreter)
            have = stamp.read_text(encoding="utf-8").strip() if stamp.is_file() else ""
            if not force and have == want and _imports(venv):
                say(f"{venv.name}: up to date")
                continue
            _build(venv, interpreter, say)
            stamp.write_text(want + "\n", encoding="utf-8")
