"""The client's Noise state on disk: its static key, the hub pins and the PSK cache.

The layout is the one hivemind-bus-client and the public Thalovant SDK use (spec 1.8), so a
device keeps the key its hub pinned whichever of those clients it runs:

- ``_identity.json``: ``{"name": ..., "pinned_noise_keys": {pin_id: "<64 hex>"}}`` (other keys,
  such as ``noise_key``, are kept as found);
- ``<name>_noise.key``: the client's X25519 private key as 64 hex characters, created once;
- ``<name>_noise_psks.json``: ``{"<16 hex of sha256(access_key)>@<node_id>": "<psk hex>"}``,
  at most :data:`MAX_PSK_ENTRIES` entries.

The directory is created 0700 and every file is written 0600, atomically, under a lock file
``.<file>.lock``. Symlinks are refused. Pins are never removed automatically.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from thalovant.errors import ThalovantIdentityError
from thalovant.files import write_private
from thalovant.protocol.noise import KeyPair

STORE_FILE = "_identity.json"
DEFAULT_NODE_NAME = "unnamed-node"
MAX_PSK_ENTRIES = 32
MAX_STATE_FILE_BYTES = 256 * 1024
_DEFAULT_PORTS = {"wss": 443, "https": 443, "ws": 80, "http": 80, "mqtts": 8883, "mqtt": 1883}


class NoiseStateError(ThalovantIdentityError):
    """The Noise state directory or one of its files is unusable (symlink, corrupt, unwritable)."""


# ---------------------------------------------------------------- pin ids and directories


def wss_pin_id(url: str) -> str:
    """Pin id of a WSS endpoint: ``<scheme>://<host>:<port>`` (IPv6 hosts bracketed)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if not scheme or not host:
        raise NoiseStateError("A WSS endpoint needs a scheme and a host to be pinned.")
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 443)
    except ValueError as exc:
        raise NoiseStateError("The WSS endpoint has an invalid port.") from exc
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def https_pin_id(endpoint_base: str) -> str:
    """Pin id of an HTTPS (and MQTT) hub: the identity's ``endpoint_base()`` itself."""
    return endpoint_base.rstrip("/")


def psk_cache_key(access_key: str, node_id: str) -> str:
    """``<first 16 hex of SHA-256(access_key)>@<node_id>``: the PSK cache entry name."""
    digest = hashlib.sha256(access_key.encode("utf-8")).hexdigest()[:16]
    return f"{digest}@{node_id}"


def default_noise_dir() -> Path:
    """``$XDG_CONFIG_HOME/hivemind``, else ``~/.config/hivemind``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "hivemind"


def resolve_noise_dir(noise_state_dir: str | os.PathLike[str] | None, source_path: str | None) -> Path:
    """The state directory: the explicit argument, else ``hivemind`` beside the identity file
    (if it exists or can be created), else :func:`default_noise_dir`."""
    if noise_state_dir is not None:
        return Path(noise_state_dir)
    if source_path:
        beside = Path(source_path).resolve().parent / "hivemind"
        if beside.is_dir() or (beside.parent.is_dir() and os.access(beside.parent, os.W_OK)):
            return beside
    return default_noise_dir()


# ---------------------------------------------------------------- file helpers


def _refuse_symlink(path: Path) -> None:
    if path.is_symlink():
        raise NoiseStateError(f"Refusing to use a symlink for Noise state: {path.name}")


def _ensure_dir(path: Path) -> None:
    _refuse_symlink(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o700)
    except OSError as exc:
        raise NoiseStateError(f"Cannot create the Noise state directory: {exc.strerror}") from exc


def _read_text(path: Path) -> str | None:
    _refuse_symlink(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    if info.st_size > MAX_STATE_FILE_BYTES:
        raise NoiseStateError(f"Noise state file is too large: {path.name}")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NoiseStateError(f"Cannot read Noise state file {path.name}") from exc


def _write_atomic(path: Path, text: str) -> None:
    _refuse_symlink(path)
    try:
        write_private(path, text)
    except OSError as exc:
        raise NoiseStateError(f"Cannot write Noise state file {path.name}: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock_path = path.parent / f".{path.name}.lock"
    _refuse_symlink(lock_path)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise NoiseStateError(f"Cannot lock Noise state file {path.name}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _load_json_object(path: Path) -> dict[str, Any]:
    text = _read_text(path)
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NoiseStateError(f"Noise state file {path.name} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise NoiseStateError(f"Noise state file {path.name} is not a JSON object")
    return value


def _dump(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def _parse_key_hex(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        raw = bytes.fromhex(value.strip())
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


# ---------------------------------------------------------------- the store


class NoiseStore:
    """One Noise state directory. Every method reads the files afresh, so several processes
    sharing a directory see each other's pins; writes are atomic and locked."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    @classmethod
    def for_identity(
        cls,
        noise_state_dir: str | os.PathLike[str] | None,
        source_path: str | None,
        hub_host: str | None = None,
    ) -> NoiseStore:
        """The store a client of this identity uses (spec 1.8), migrating legacy state once."""
        directory = resolve_noise_dir(noise_state_dir, source_path)
        store = cls(directory)
        if noise_state_dir is None and source_path and directory != default_noise_dir() and hub_host:
            store._copy_legacy_state(default_noise_dir(), hub_host)
        return store

    # -- paths

    @property
    def store_path(self) -> Path:
        return self.directory / STORE_FILE

    def _document(self) -> dict[str, Any]:
        return _load_json_object(self.store_path)

    @property
    def name(self) -> str:
        """The node name that prefixes the key and PSK files."""
        return self._name_of(self._document())

    @staticmethod
    def _name_of(document: Mapping[str, Any]) -> str:
        name = document.get("name")
        if isinstance(name, str) and name.strip():
            candidate = name.strip()
        elif isinstance(document.get("key"), str) and document["key"].strip():
            candidate = Path(document["key"].strip()).name
        else:
            candidate = DEFAULT_NODE_NAME
        if "/" in candidate or candidate in (".", "..") or "\x00" in candidate:
            raise NoiseStateError("The Noise store name is not a plain file name.")
        return candidate

    def key_path(self) -> Path:
        document = self._document()
        configured = document.get("noise_key")
        if isinstance(configured, str) and configured.strip():
            path = Path(configured.strip())
            return path if path.is_absolute() else self.directory / path
        return self.directory / f"{self._name_of(document)}_noise.key"

    def psk_path(self) -> Path:
        return self.directory / f"{self.name}_noise_psks.json"

    # -- static key

    def static_key(self) -> KeyPair:
        """The client's static X25519 key pair, created (0600) on first use and never replaced."""
        _ensure_dir(self.directory)
        path = self.key_path()
        existing = self._read_key(path)
        if existing is not None:
            return existing
        with _locked(path):
            existing = self._read_key(path)
            if existing is not None:
                return existing
            pair = KeyPair.generate()
            _write_atomic(path, pair.private.hex() + "\n")
            if not self.store_path.exists():
                self._write_document({"name": self.name, "pinned_noise_keys": {}})
            return pair

    @staticmethod
    def _read_key(path: Path) -> KeyPair | None:
        text = _read_text(path)
        if text is None:
            return None
        raw = _parse_key_hex(text)
        if raw is None:
            raise NoiseStateError(f"Noise key file {path.name} does not hold 32 bytes of hex")
        return KeyPair.from_private(raw)

    # -- hub pins

    def pins(self) -> dict[str, bytes]:
        """Every readable pin: pin id -> 32-byte hub public key."""
        raw = self._document().get("pinned_noise_keys")
        if not isinstance(raw, dict):
            return {}
        pins: dict[str, bytes] = {}
        for pin_id, value in raw.items():
            key = _parse_key_hex(value)
            if isinstance(pin_id, str) and key is not None:
                pins[pin_id] = key
        return pins

    def hub_pin(self, pin_id: str) -> bytes | None:
        return self.pins().get(pin_id)

    def pin_hub(self, pin_id: str, public_key: bytes) -> None:
        """Record the hub key for ``pin_id`` (TOFU). An existing different pin is left alone:
        the caller reports the change instead (pins are never replaced automatically)."""
        if len(public_key) != 32:
            raise NoiseStateError("A hub Noise key is 32 bytes.")
        self._update_pins(lambda pins: pins.setdefault(pin_id, public_key.hex()))

    def remove_pin(self, pin_id: str) -> bool:
        """Forget the pin of ``pin_id`` (an explicit user decision); True when one existed."""
        removed: list[bool] = []
        self._update_pins(lambda pins: removed.append(pins.pop(pin_id, None) is not None))
        return bool(removed and removed[0])

    def _update_pins(self, change: Any) -> None:
        _ensure_dir(self.directory)
        with _locked(self.store_path):
            document = self._document()
            pins = document.get("pinned_noise_keys")
            if not isinstance(pins, dict):
                pins = {}
            change(pins)
            document["pinned_noise_keys"] = pins
            document.setdefault("name", self._name_of(document))
            self._write_document(document)

    def _write_document(self, document: Mapping[str, Any]) -> None:
        _write_atomic(self.store_path, _dump(document))

    # -- PSK cache

    def _psk_entries(self) -> dict[str, str]:
        path = self.psk_path()
        try:
            _refuse_symlink(path)
            info = path.stat()
        except FileNotFoundError:
            return {}
        except NoiseStateError:
            return {}
        if info.st_size > MAX_STATE_FILE_BYTES or stat.S_IMODE(info.st_mode) & 0o077:
            return {}  # oversize or too permissive: ignored, as spec 1.8 says
        try:
            document = _load_json_object(path)
        except NoiseStateError:
            return {}
        return {k: v for k, v in document.items() if isinstance(k, str) and isinstance(v, str)}

    def cached_psk(self, access_key: str, node_id: str) -> bytes | None:
        return _parse_key_hex(self._psk_entries().get(psk_cache_key(access_key, node_id)))

    def store_psk(self, access_key: str, node_id: str, psk: bytes) -> None:
        """Cache a derived PSK; the oldest entries go beyond :data:`MAX_PSK_ENTRIES`."""
        _ensure_dir(self.directory)
        path = self.psk_path()
        with _locked(path):
            entries = self._psk_entries()
            key = psk_cache_key(access_key, node_id)
            entries.pop(key, None)
            entries[key] = psk.hex()
            while len(entries) > MAX_PSK_ENTRIES:
                entries.pop(next(iter(entries)))
            _write_atomic(path, json.dumps(entries, indent=2) + "\n")

    def forget_psk(self, access_key: str, node_id: str) -> None:
        path = self.psk_path()
        if not path.exists():
            return
        with _locked(path):
            entries = self._psk_entries()
            if entries.pop(psk_cache_key(access_key, node_id), None) is not None:
                _write_atomic(path, json.dumps(entries, indent=2) + "\n")

    # -- legacy migration

    def _copy_legacy_state(self, legacy: Path, hub_host: str) -> None:
        """Copy (never move) a legacy key and its pins into a new directory, once, when a
        legacy pin is filed under this identity's hub host."""
        if self.store_path.exists() or legacy.resolve() == self.directory.resolve():
            return
        try:
            old = NoiseStore(legacy)
            pins = old.pins()
            host = hub_host.lower()
            if not any((urlsplit(pin).hostname or "").lower() == host for pin in pins):
                return
            key_file = old.key_path()
            if not key_file.is_file() or key_file.is_symlink():
                return
            _ensure_dir(self.directory)
            name = old.name
            shutil.copyfile(key_file, self.directory / f"{name}_noise.key")
            (self.directory / f"{name}_noise.key").chmod(0o600)
            self._write_document({"name": name, "pinned_noise_keys": {k: v.hex() for k, v in pins.items()}})
        except (NoiseStateError, OSError):
            return  # a legacy folder we cannot read is simply not migrated
