"""``write_private``: the one atomic, owner-only file write of the SDK and the server."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from thalovant.files import write_private


def test_replaces_atomically_with_mode_0600(tmp_path: Path) -> None:
    target = tmp_path / "secret.json"
    target.write_text("old")
    target.chmod(0o644)
    write_private(target, '{"new": true}')
    assert target.read_text() == '{"new": true}'
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["secret.json"]


def test_public_mode_on_request(tmp_path: Path) -> None:
    target = write_private(tmp_path / "ca.pem", b"cert", mode=0o644)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_refuses_a_symlink_and_leaves_nothing_behind(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(elsewhere)
    with pytest.raises(OSError, match="symlink"):
        write_private(link, "x")
    assert elsewhere.read_text() == "keep"
    with pytest.raises(OSError):
        write_private(tmp_path / "missing-dir" / "f", "x")
    assert sorted(os.listdir(tmp_path)) == ["elsewhere", "link"]
