"""The peer systems our tests and benchmarks run beside our own code.

- ``sdk097``: the public Thalovant Python SDK 0.9.7 (``thalovant[mqtt]``), an existing client of
  the platform, used as a black box;
- ``hm5``: hivemind-core 5.3.10a1, an independent hub that speaks the same data-plane protocol,
  with its ws, https and mqtt carriers, an OVOS messagebus, a stand-in responder and Mosquitto.

Each lives in a virtual environment of its own (the public SDK imports as ``thalovant`` too) under
:func:`peers_dir`. ``python -m peers --help`` lists the commands; ``peers/README.md`` says more.
Everything here runs with the repository's own interpreter (standard library plus
``cryptography``), except ``responder.py`` and ``sdk_ask.py``, which run inside the peers' venvs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def peers_dir() -> Path:
    """Where the peers' venvs and state live: ``$THALOVANT_PEERS``, else ``thalovant-peers`` in the temp folder."""
    configured = os.environ.get("THALOVANT_PEERS")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "thalovant-peers"


def sdk097_python() -> Path:
    """The interpreter of the public SDK's venv (built by :func:`peers.venvs.ensure`)."""
    return peers_dir() / "sdk097" / "bin" / "python"


def hm5_venv() -> Path:
    """The hivemind-core venv (built by :func:`peers.venvs.ensure`)."""
    return peers_dir() / "hm5"
