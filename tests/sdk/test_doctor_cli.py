"""``thalovant doctor`` prints its check table with the failing check and a hint, also when the
hub cannot be reached (it used to print one error line)."""

from __future__ import annotations

import io
import socket
from pathlib import Path

from thalovant.cli import main
from thalovant.identity import ThalovantIdentity


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_doctor_prints_the_table_with_the_failing_check_and_a_hint(tmp_path: Path) -> None:
    port = unused_port()
    identity = ThalovantIdentity.from_mapping(
        {
            "access_key": "key-" + "k" * 30,
            "password": "password-" + "p" * 30,
            "site_id": "doctor-test",
            "default_master": f"http://127.0.0.1:{port}",
            "data_plane_endpoints": {"wss": f"ws://127.0.0.1:{port}/hubs/h"},
        }
    )
    path = identity.save(tmp_path / "identity.json")
    out, err = io.StringIO(), io.StringIO()
    status = main(["doctor", "--identity", str(path), "--protocol", "wss"], out=out, err=err)
    printed = out.getvalue()
    assert status == 1, err.getvalue()
    assert "[  ok] identity" in printed
    assert "[FAIL] handshake" in printed
    assert "hint: the hub did not answer: is the server running" in printed
    assert "doctor: some checks failed" in printed
