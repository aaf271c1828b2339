"""The client's Noise state on disk (spec 1.8): layout, modes, pins, PSK cache, directories."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from thalovant.noise_store import (
    MAX_PSK_ENTRIES,
    NoiseStateError,
    NoiseStore,
    https_pin_id,
    psk_cache_key,
    resolve_noise_dir,
    wss_pin_id,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_static_key_is_created_once_with_private_modes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = NoiseStore(state)
    first = store.static_key()
    again = NoiseStore(state).static_key()
    assert first.private == again.private and first.public == again.public
    key_file = state / "unnamed-node_noise.key"
    assert key_file.read_text().strip() == first.private.hex()
    assert mode(state) == 0o700
    assert mode(key_file) == 0o600
    document = json.loads((state / "_identity.json").read_text())
    assert document["name"] == "unnamed-node"
    assert document["pinned_noise_keys"] == {}


def test_existing_store_name_and_key_are_used(tmp_path: Path) -> None:
    from thalovant.protocol.noise import KeyPair

    pair = KeyPair.generate()
    tmp_path.chmod(0o700)
    (tmp_path / "_identity.json").write_text(json.dumps({"name": "kiosk", "pinned_noise_keys": {}}))
    (tmp_path / "kiosk_noise.key").write_text(pair.private.hex())
    store = NoiseStore(tmp_path)
    assert store.name == "kiosk"
    assert store.static_key().public == pair.public
    assert store.psk_path().name == "kiosk_noise_psks.json"


def test_pins_are_tofu_and_never_replaced(tmp_path: Path) -> None:
    store = NoiseStore(tmp_path / "s")
    pin = "wss://hub.example.com:443"
    assert store.hub_pin(pin) is None
    store.pin_hub(pin, b"\x01" * 32)
    store.pin_hub(pin, b"\x02" * 32)
    assert store.hub_pin(pin) == b"\x01" * 32
    document = json.loads(store.store_path.read_text())
    assert document["pinned_noise_keys"] == {pin: "01" * 32}
    assert mode(store.store_path) == 0o600
    assert store.remove_pin(pin) is True
    assert store.hub_pin(pin) is None
    assert store.remove_pin(pin) is False


def test_pins_keep_unknown_fields(tmp_path: Path) -> None:
    (tmp_path / "_identity.json").write_text(json.dumps({"name": "n", "extra": 7, "pinned_noise_keys": {}}))
    store = NoiseStore(tmp_path)
    store.pin_hub("https://h:443", b"\x03" * 32)
    document = json.loads(store.store_path.read_text())
    assert document["extra"] == 7
    assert document["pinned_noise_keys"]["https://h:443"] == "03" * 32


def test_psk_cache_entries_and_limit(tmp_path: Path) -> None:
    store = NoiseStore(tmp_path / "s")
    store.store_psk("access-key", "node-1", b"\x11" * 32)
    assert store.cached_psk("access-key", "node-1") == b"\x11" * 32
    assert store.cached_psk("access-key", "node-2") is None
    raw = json.loads(store.psk_path().read_text())
    expected_key = hashlib.sha256(b"access-key").hexdigest()[:16] + "@node-1"
    assert raw == {expected_key: "11" * 32}
    assert psk_cache_key("access-key", "node-1") == expected_key
    assert mode(store.psk_path()) == 0o600
    for i in range(MAX_PSK_ENTRIES + 5):
        store.store_psk(f"k{i}", "node", bytes([i]) * 32)
    assert len(json.loads(store.psk_path().read_text())) == MAX_PSK_ENTRIES
    assert store.cached_psk(f"k{MAX_PSK_ENTRIES + 4}", "node") is not None
    assert store.cached_psk("access-key", "node-1") is None  # the oldest went first
    store.forget_psk(f"k{MAX_PSK_ENTRIES + 4}", "node")
    assert store.cached_psk(f"k{MAX_PSK_ENTRIES + 4}", "node") is None


def test_permissive_psk_file_is_ignored(tmp_path: Path) -> None:
    store = NoiseStore(tmp_path / "s")
    store.store_psk("key", "node", b"\x22" * 32)
    store.psk_path().chmod(0o644)
    assert store.cached_psk("key", "node") is None


def test_corrupt_files_raise_typed_errors(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    (tmp_path / "_identity.json").write_text("{not json")
    with pytest.raises(NoiseStateError):
        NoiseStore(tmp_path).hub_pin("x")
    (tmp_path / "_identity.json").write_text(json.dumps({"name": "n"}))
    (tmp_path / "n_noise.key").write_text("zz")
    with pytest.raises(NoiseStateError):
        NoiseStore(tmp_path).static_key()


def test_symlinked_directory_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(NoiseStateError):
        NoiseStore(link).static_key()


@pytest.mark.parametrize(
    ("url", "pin"),
    [
        ("wss://hub.example.com/hubs/abc", "wss://hub.example.com:443"),
        ("ws://127.0.0.1:15680/", "ws://127.0.0.1:15680"),
        ("WSS://Hub.Example.com:8443/x?y=1", "wss://hub.example.com:8443"),
        ("wss://[::1]:9000/p", "wss://[::1]:9000"),
        ("ws://[::1]/", "ws://[::1]:80"),
    ],
)
def test_wss_pin_ids(url: str, pin: str) -> None:
    assert wss_pin_id(url) == pin


def test_https_pin_id_is_the_endpoint_base() -> None:
    assert (
        https_pin_id("https://hub.example.com:443/hivemind/public/")
        == "https://hub.example.com:443/hivemind/public"
    )


def test_directory_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert resolve_noise_dir(tmp_path / "explicit", "/nowhere/identity.json") == tmp_path / "explicit"
    identity_file = tmp_path / "conf" / "identity.json"
    identity_file.parent.mkdir()
    identity_file.write_text("{}")
    assert resolve_noise_dir(None, str(identity_file)) == identity_file.parent.resolve() / "hivemind"
    assert resolve_noise_dir(None, None) == tmp_path / "xdg" / "hivemind"


def test_legacy_state_is_copied_for_the_same_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    legacy = NoiseStore(tmp_path / "xdg" / "hivemind")
    legacy_key = legacy.static_key()
    legacy.pin_hub("wss://hub.example.com:443", b"\x05" * 32)
    identity_file = tmp_path / "dev" / "identity.json"
    identity_file.parent.mkdir()
    identity_file.write_text("{}")
    store = NoiseStore.for_identity(None, str(identity_file), "hub.example.com")
    assert store.directory == identity_file.parent.resolve() / "hivemind"
    assert store.static_key().public == legacy_key.public
    assert store.hub_pin("wss://hub.example.com:443") == b"\x05" * 32
    assert (tmp_path / "xdg" / "hivemind" / "_identity.json").exists()  # copied, not moved
    other_file = tmp_path / "other" / "identity.json"
    other_file.parent.mkdir()
    other_file.write_text("{}")
    other = NoiseStore.for_identity(None, str(other_file), "elsewhere.example.com")
    assert other.static_key().public != legacy_key.public
    assert os.listdir(other.directory)
