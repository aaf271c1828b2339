"""Secret material of the control plane: random tokens, hashes, and the server sealing key.

- API and session tokens are random strings; only their SHA-256 hex is stored.
- Client access keys are likewise looked up by SHA-256 hex.
- User passwords are argon2id hashes (argon2-cffi); verification is CPU-heavy, so callers
  run :func:`verify_password` off the event loop.
- The sealing key (``DATA_DIR/server.key``, 0600) encrypts the few secrets that must be kept
  to be replayed (the stored answer of an idempotent client creation) with AES-256-GCM.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import secrets as _random
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from thalovant_server.files import create_private, ensure_private_dir

API_TOKEN_PREFIX = "tvpat_"
SESSION_TOKEN_PREFIX = "tvst_"
SEALING_KEY_FILE = "server.key"
_BASE32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"

_hasher = PasswordHasher()
# A valid hash of a random password: verifying against it costs the same as a real check,
# so an unknown e-mail address answers in the same time as a wrong password.
_DUMMY_HASH = _hasher.hash(_random.token_urlsafe(16))


def sha256_hex(value: str) -> str:
    """SHA-256 of the UTF-8 text, as lowercase hex (the stored form of tokens and access keys)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def new_api_token() -> str:
    return API_TOKEN_PREFIX + _random.token_urlsafe(32)


def new_session_token() -> str:
    return SESSION_TOKEN_PREFIX + _random.token_urlsafe(32)


def new_client_secret() -> str:
    """32 random bytes, URL-safe base64 without padding (43 characters), like the SDK mints."""
    return _random.token_urlsafe(32)


def new_etag() -> str:
    return _random.token_hex(12)


def new_public_ref() -> str:
    """``hub_`` and ten base32 characters: short, unique enough, never needs escaping."""
    return "hub_" + "".join(_random.choice(_BASE32_ALPHABET) for _ in range(10))


def new_node_id() -> str:
    return "node-" + _random.token_hex(16)


def new_password() -> str:
    return _random.token_urlsafe(18)


ACCOUNT_PASSWORD_RULE = (12, 64.0)
"""An account password: at least 12 characters and about 64 bits by :func:`password_weakness`."""

CLIENT_PASSWORD_RULE = (16, 80.0)
"""A client password chosen by the caller: it derives the Noise PSK, which an attacker who takes
part in a handshake can try guesses against offline, so it must be strong: at least 16
characters and about 80 bits (the SDK mints 43 random characters, about 256 bits)."""


def password_weakness(password: str, rule: tuple[int, float]) -> str | None:
    """Why ``password`` is too weak for ``rule`` (minimum length, minimum estimated bits), or None.

    The estimate is deliberately coarse and conservative: length times log2 of the alphabet
    the password draws from (lowercase, uppercase, digits, other), counted over its distinct
    characters only, so repeats and short cycles ("aaaa...", "abcabc...") score low.
    """
    min_length, min_bits = rule
    if len(password) < min_length:
        return f"must be at least {min_length} characters"
    classes = (str.islower, str.isupper, str.isdigit)
    alphabet = sum(size for size, test in zip((26, 26, 10), classes, strict=True) if any(map(test, password)))
    if any(not (ch.islower() or ch.isupper() or ch.isdigit()) for ch in password):
        alphabet += 33
    distinct = len(set(password))
    bits = min(len(password), 2 * distinct) * math.log2(max(alphabet, 2))
    if bits < min_bits:
        return "is too easy to guess: use a longer, random password"
    return None


def hash_password(password: str) -> str:
    """argon2id hash of a user password (CPU-heavy: run off the event loop)."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; a missing hash still costs one full verification."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def constant_time_equal(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode("utf-8"), right.encode("utf-8"))


class SealingKey:
    """AES-256-GCM over small blobs, with the key kept in the data directory."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a sealing key is 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def load_or_create(cls, data_dir: Path) -> SealingKey:
        """Read ``data_dir/server.key``, creating it (mode 0600, data directory 0700) on first use.

        Two processes starting on a fresh directory at once end up with the same key.
        """
        path = data_dir / SEALING_KEY_FILE
        if not path.is_file():
            ensure_private_dir(data_dir)
            create_private(path, base64.b64encode(AESGCM.generate_key(bit_length=256)) + b"\n")
        try:
            raw = base64.b64decode(path.read_bytes().strip(), validate=True)
        except ValueError:
            raise ValueError(f"{path} does not hold a base64 key") from None
        return cls(raw)

    def seal(self, plaintext: bytes, *, context: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, *, context: bytes) -> bytes | None:
        """The plaintext, or None when the blob was not sealed by this key for ``context``."""
        if len(sealed) < 12 + 16:
            return None
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], context)
        except InvalidTag:
            return None
