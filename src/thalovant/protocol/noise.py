"""Noise protocol framework, revision 34, for ``XXpsk2`` and ``KKpsk0`` (data-plane spec 3.7).

Written on ``cryptography`` primitives (X25519, ChaCha20-Poly1305, AES-256-GCM) and the
standard library's HMAC-SHA256. Both roles, initiator and responder, are supported, and the
psk modifier rules apply: every ``e`` token mixes the ephemeral key into the chaining key
as well as into the handshake hash.

Contract: every malformed input (wrong length, wrong turn, a message after the end, a bad
tag, a missing remote static key, a bad PSK, an unknown pattern or suite) raises
:class:`~thalovant.protocol.errors.HandshakeError`, or its subclass
:class:`~thalovant.protocol.errors.DecryptError` when authentication fails, and nothing
else. A handshake that raised once is dead: every later call raises too.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from thalovant.protocol.errors import DecryptError, HandshakeError

__all__ = [
    "DHLEN",
    "HASHLEN",
    "MAX_MESSAGE",
    "PATTERNS",
    "SUITES",
    "TAGLEN",
    "CipherState",
    "HandshakeState",
    "KeyPair",
    "SymmetricState",
    "protocol_name",
]

PATTERNS: tuple[str, ...] = ("XXpsk2", "KKpsk0")
SUITES: tuple[str, ...] = ("25519_ChaChaPoly_SHA256", "25519_AESGCM_SHA256")

DHLEN = 32
HASHLEN = 32
KEYLEN = 32
TAGLEN = 16
MAX_MESSAGE = 65535
"""Largest Noise message (handshake or transport), in bytes."""

_CHACHA = "25519_ChaChaPoly_SHA256"
_MAX_NONCE = 2**64 - 1  # reserved by the specification: never used to encrypt
_BYTES_LIKE = (bytes, bytearray, memoryview)

# Message patterns: one tuple of tokens per message, the initiator writing the first.
_MESSAGES: dict[str, tuple[tuple[str, ...], ...]] = {
    "XXpsk2": (("e",), ("e", "ee", "s", "es", "psk"), ("s", "se")),
    "KKpsk0": (("psk", "e", "es", "ss"), ("e", "ee", "se")),
}
# Pre-messages: (initiator sends ``s``, responder sends ``s``), hashed initiator first.
_PRE_MESSAGES: dict[str, tuple[bool, bool]] = {
    "XXpsk2": (False, False),
    "KKpsk0": (True, True),
}

# Nonce layout: 4 zero bytes then the 64-bit counter; the byte order differs per cipher.
_CHACHA_NONCE = struct.Struct("<4xQ").pack
_AESGCM_NONCE = struct.Struct(">4xQ").pack


def protocol_name(pattern: str, suite: str) -> str:
    """The full Noise protocol name, e.g. ``Noise_XXpsk2_25519_ChaChaPoly_SHA256``."""
    if pattern not in PATTERNS:
        raise HandshakeError(f"Unsupported Noise pattern: {pattern!r}")
    if suite not in SUITES:
        raise HandshakeError(f"Unsupported Noise cipher suite: {suite!r}")
    return f"Noise_{pattern}_{suite}"


@dataclass(frozen=True)
class KeyPair:
    """An X25519 key pair as raw 32-byte strings.

    ``public`` must belong to ``private``; :meth:`from_private` and :meth:`generate`
    guarantee it. The loaded private key object is cached, so reusing one ``KeyPair``
    for many handshakes (a hub's static key) costs no key loading per handshake.
    The repr shows the public key only.
    """

    private: bytes
    public: bytes
    _key: X25519PrivateKey | None = field(default=None, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.private, bytes) or len(self.private) != DHLEN:
            raise HandshakeError("An X25519 private key is 32 bytes")
        if not isinstance(self.public, bytes) or len(self.public) != DHLEN:
            raise HandshakeError("An X25519 public key is 32 bytes")

    @classmethod
    def generate(cls) -> KeyPair:
        """A fresh random key pair."""
        key = X25519PrivateKey.generate()
        pair = cls(private=key.private_bytes_raw(), public=key.public_key().public_bytes_raw())
        object.__setattr__(pair, "_key", key)
        return pair

    @classmethod
    def from_private(cls, private: bytes) -> KeyPair:
        """The key pair of a raw 32-byte private key."""
        if not isinstance(private, _BYTES_LIKE) or len(private) != DHLEN:
            raise HandshakeError("An X25519 private key is 32 bytes")
        key = X25519PrivateKey.from_private_bytes(bytes(private))
        pair = cls(private=bytes(private), public=key.public_key().public_bytes_raw())
        object.__setattr__(pair, "_key", key)
        return pair

    def private_key(self) -> X25519PrivateKey:
        """The ``cryptography`` private key object (loaded once, then cached)."""
        key = self._key
        if key is None:
            key = X25519PrivateKey.from_private_bytes(self.private)
            object.__setattr__(self, "_key", key)
        return key

    def __getstate__(self) -> dict[str, bytes]:
        return {"private": self.private, "public": self.public}  # the key object is not picklable

    def __setstate__(self, state: dict[str, bytes]) -> None:
        object.__setattr__(self, "private", state["private"])
        object.__setattr__(self, "public", state["public"])
        object.__setattr__(self, "_key", None)

    def __repr__(self) -> str:
        return f"KeyPair(public={self.public.hex()})"


def _dh(local: KeyPair, remote: bytes) -> bytes:
    try:
        return local.private_key().exchange(X25519PublicKey.from_public_bytes(remote))
    except ValueError:  # all-zero shared secret: a low-order point
        raise HandshakeError("Invalid X25519 public key") from None


def _hkdf2(chaining_key: bytes, material: bytes) -> tuple[bytes, bytes]:
    temp = hmac.digest(chaining_key, material, "sha256")
    out1 = hmac.digest(temp, b"\x01", "sha256")
    return out1, hmac.digest(temp, out1 + b"\x02", "sha256")


def _hkdf3(chaining_key: bytes, material: bytes) -> tuple[bytes, bytes, bytes]:
    temp = hmac.digest(chaining_key, material, "sha256")
    out1 = hmac.digest(temp, b"\x01", "sha256")
    out2 = hmac.digest(temp, out1 + b"\x02", "sha256")
    return out1, out2, hmac.digest(temp, out2 + b"\x03", "sha256")


class CipherState:
    """One AEAD key with its nonce counter (Noise section 5.1).

    ``encrypt`` and ``decrypt`` use strictly sequential nonces starting at ``counter``
    (4 zero bytes and the counter, little-endian for ChaChaPoly, big-endian for AESGCM).
    The AEAD object is built once per key. A failed decryption raises
    :class:`DecryptError` and leaves the counter where it was; a counter that reached
    2**64-1 raises :class:`HandshakeError` (no more messages under this key).
    """

    __slots__ = ("_aead", "_nonce", "counter", "suite")

    def __init__(self, suite: str, key: bytes) -> None:
        if suite not in SUITES:
            raise HandshakeError(f"Unsupported Noise cipher suite: {suite!r}")
        if not isinstance(key, _BYTES_LIKE) or len(key) != KEYLEN:
            raise HandshakeError("A Noise cipher key is 32 bytes")
        self.suite = suite
        self.counter = 0
        if suite == _CHACHA:
            self._aead: ChaCha20Poly1305 | AESGCM = ChaCha20Poly1305(bytes(key))
            self._nonce = _CHACHA_NONCE
        else:
            self._aead = AESGCM(bytes(key))
            self._nonce = _AESGCM_NONCE

    def encrypt(self, plaintext: bytes, ad: bytes = b"") -> bytes:
        """Ciphertext and tag of ``plaintext`` at the current nonce; advances the counter."""
        counter = self.counter
        if counter >= _MAX_NONCE:
            raise HandshakeError("Noise nonce counter exhausted")
        try:
            ciphertext = self._aead.encrypt(self._nonce(counter), plaintext, ad)
        except (TypeError, ValueError, OverflowError) as exc:
            raise HandshakeError(f"Cannot encrypt this plaintext: {exc}") from None
        self.counter = counter + 1
        return ciphertext

    def decrypt(self, ciphertext: bytes, ad: bytes = b"") -> bytes:
        """Plaintext of ``ciphertext`` at the current nonce; advances the counter on success only."""
        counter = self.counter
        if counter >= _MAX_NONCE:
            raise HandshakeError("Noise nonce counter exhausted")
        try:
            plaintext = self._aead.decrypt(self._nonce(counter), ciphertext, ad)
        except InvalidTag:
            raise DecryptError("Noise message failed to authenticate") from None
        except (TypeError, ValueError, OverflowError):
            raise DecryptError("Noise message is not a valid ciphertext") from None
        self.counter = counter + 1
        return plaintext

    def __repr__(self) -> str:
        return f"CipherState(suite={self.suite!r}, counter={self.counter})"


class SymmetricState:
    """Chaining key, handshake hash and the handshake's cipher (Noise section 5.2).

    Before the first MixKey there is no cipher key and EncryptAndHash / DecryptAndHash
    pass the data through (hashing it). The AEAD object for a handshake key is built only
    when that key is used, since most MixKey results are replaced unused.
    """

    __slots__ = ("_cipher", "_key", "ck", "h", "suite")

    def __init__(self, name: str, suite: str) -> None:
        raw = name.encode("ascii")
        self.h = raw.ljust(HASHLEN, b"\x00") if len(raw) <= HASHLEN else hashlib.sha256(raw).digest()
        self.ck = self.h
        self.suite = suite
        self._key: bytes | None = None
        self._cipher: CipherState | None = None

    @property
    def has_key(self) -> bool:
        return self._key is not None

    def _set_key(self, key: bytes) -> None:
        self._key = key
        self._cipher = None

    def _current_cipher(self) -> CipherState | None:
        if self._cipher is None and self._key is not None:
            self._cipher = CipherState(self.suite, self._key)
        return self._cipher

    def mix_key(self, material: bytes) -> None:
        self.ck, key = _hkdf2(self.ck, material)
        self._set_key(key)

    def mix_hash(self, data: bytes) -> None:
        self.h = hashlib.sha256(self.h + data).digest()

    def mix_key_and_hash(self, material: bytes) -> None:
        self.ck, temp_h, key = _hkdf3(self.ck, material)
        self.mix_hash(temp_h)
        self._set_key(key)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        cipher = self._current_cipher()
        ciphertext = bytes(plaintext) if cipher is None else cipher.encrypt(plaintext, self.h)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        cipher = self._current_cipher()
        plaintext = ciphertext if cipher is None else cipher.decrypt(ciphertext, self.h)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """The two transport cipher states: the initiator's send key first."""
        k1, k2 = _hkdf2(self.ck, b"")
        return CipherState(self.suite, k1), CipherState(self.suite, k2)


class HandshakeState:
    """One side of a Noise handshake (Noise section 5.3) for ``XXpsk2`` or ``KKpsk0``.

    The two sides alternate ``write_message`` and ``read_message`` in the pattern's
    order, the initiator writing first (XXpsk2: 3 messages, KKpsk0: 2). After the last
    message ``finished`` is true, ``remote_static`` holds the peer's static key and
    ``split()`` returns ``(send, recv)`` cipher states for this side's role.

    ``remote_static`` is required for KKpsk0 (both roles know the peer's key in advance)
    and ignored-then-replaced for XXpsk2. ``ephemeral`` fixes the ephemeral key (tests).
    """

    def __init__(
        self,
        pattern: str,
        suite: str,
        *,
        initiator: bool,
        prologue: bytes,
        psk: bytes,
        static: KeyPair,
        remote_static: bytes | None = None,
        ephemeral: KeyPair | None = None,
    ) -> None:
        name = protocol_name(pattern, suite)
        if not isinstance(psk, _BYTES_LIKE) or len(psk) != 32:
            raise HandshakeError("The Noise pre-shared key is 32 bytes")
        if not isinstance(static, KeyPair) or (ephemeral is not None and not isinstance(ephemeral, KeyPair)):
            raise HandshakeError("Noise keys must be KeyPair objects")
        if not isinstance(prologue, _BYTES_LIKE):
            raise HandshakeError("The Noise prologue is bytes")
        pre_initiator, pre_responder = _PRE_MESSAGES[pattern]
        if remote_static is not None and (not isinstance(remote_static, _BYTES_LIKE) or len(remote_static) != DHLEN):
            raise HandshakeError("A remote static key is 32 bytes")
        needs_remote = pre_responder if initiator else pre_initiator
        if needs_remote and remote_static is None:
            raise HandshakeError(f"{pattern} needs the remote static key")
        self.pattern = pattern
        self.suite = suite
        self.initiator = bool(initiator)
        self._psk = bytes(psk)
        self._s = static
        self._e = ephemeral
        self._rs: bytes | None = bytes(remote_static) if remote_static is not None else None
        self._re: bytes | None = None
        self._messages = _MESSAGES[pattern]
        self._index = 0
        self._failed = False
        self._split: tuple[CipherState, CipherState] | None = None
        self._ss = SymmetricState(name, suite)
        self._ss.mix_hash(bytes(prologue))
        if pre_initiator:
            self._ss.mix_hash(static.public if initiator else self._rs)  # type: ignore[arg-type]
        if pre_responder:
            self._ss.mix_hash(self._rs if initiator else static.public)  # type: ignore[arg-type]

    @property
    def finished(self) -> bool:
        """True once every handshake message has been written or read."""
        return self._index >= len(self._messages)

    @property
    def remote_static(self) -> bytes | None:
        """The peer's static public key (known in advance for KK, learned during XX)."""
        return self._rs

    @property
    def handshake_hash(self) -> bytes:
        """The handshake hash ``h`` (channel binding once finished)."""
        return self._ss.h

    def _check_turn(self, writing: bool) -> None:
        if self._failed:
            raise HandshakeError("The Noise handshake already failed")
        if self.finished:
            raise HandshakeError("The Noise handshake is already finished")
        if ((self._index % 2 == 0) == self.initiator) != writing:
            verb = "write" if writing else "read"
            raise HandshakeError(f"Not this side's turn to {verb} a Noise handshake message")

    def _message_overhead(self, tokens: tuple[str, ...]) -> int:
        """Bytes a message adds around its payload (keys and tags), computed before writing."""
        has_key = self._ss.has_key
        size = 0
        for token in tokens:
            if token == "e":
                size += DHLEN
                has_key = True  # psk modifier: e does MixKey
            elif token == "s":
                size += DHLEN + (TAGLEN if has_key else 0)
            else:
                has_key = True
        return size + (TAGLEN if has_key else 0)

    def write_message(self, payload: bytes = b"") -> bytes:
        """The next handshake message carrying ``payload`` (encrypted once a key exists)."""
        self._check_turn(writing=True)
        if not isinstance(payload, _BYTES_LIKE):
            raise HandshakeError("A Noise handshake payload is bytes")
        tokens = self._messages[self._index]
        if self._message_overhead(tokens) + len(payload) > MAX_MESSAGE:
            raise HandshakeError("Noise handshake message would exceed 65535 bytes")
        try:
            message = self._write_tokens(tokens, payload)
        except HandshakeError:
            self._failed = True
            raise
        self._index += 1
        return message

    def _write_tokens(self, tokens: tuple[str, ...], payload: bytes) -> bytes:
        ss = self._ss
        out = bytearray()
        for token in tokens:
            if token == "e":
                if self._e is None:
                    self._e = KeyPair.generate()
                public = self._e.public
                out += public
                ss.mix_hash(public)
                ss.mix_key(public)
            elif token == "s":
                out += ss.encrypt_and_hash(self._s.public)
            elif token == "psk":
                ss.mix_key_and_hash(self._psk)
            else:
                ss.mix_key(self._dh_token(token))
        out += ss.encrypt_and_hash(payload)
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        """Process the peer's next handshake message; return its payload."""
        self._check_turn(writing=False)
        if not isinstance(message, _BYTES_LIKE):
            self._failed = True
            raise HandshakeError("A Noise handshake message is bytes")
        tokens = self._messages[self._index]
        size = len(message)
        if size > MAX_MESSAGE or size < self._message_overhead(tokens):
            self._failed = True
            raise HandshakeError(f"Noise handshake message of {size} bytes has the wrong length")
        try:
            payload = self._read_tokens(tokens, bytes(message))
        except HandshakeError:
            self._failed = True
            raise
        self._index += 1
        return payload

    def _read_tokens(self, tokens: tuple[str, ...], message: bytes) -> bytes:
        ss = self._ss
        pos = 0
        for token in tokens:
            if token == "e":
                remote = message[pos : pos + DHLEN]
                pos += DHLEN
                self._re = remote
                ss.mix_hash(remote)
                ss.mix_key(remote)
            elif token == "s":
                size = DHLEN + (TAGLEN if ss.has_key else 0)
                self._rs = ss.decrypt_and_hash(message[pos : pos + size])
                pos += size
            elif token == "psk":
                ss.mix_key_and_hash(self._psk)
            else:
                ss.mix_key(self._dh_token(token))
        return ss.decrypt_and_hash(message[pos:])

    def _dh_token(self, token: str) -> bytes:
        # ee, es, se, ss: the first letter names the initiator's key, the second the responder's.
        mine, theirs = (token[0], token[1]) if self.initiator else (token[1], token[0])
        local = self._e if mine == "e" else self._s
        remote = self._re if theirs == "e" else self._rs
        if local is None or remote is None:
            raise HandshakeError("Noise handshake state is missing a key")
        return _dh(local, remote)

    def split(self) -> tuple[CipherState, CipherState]:
        """``(send, recv)`` transport cipher states for this side (the same pair on every call)."""
        if self._failed:
            raise HandshakeError("The Noise handshake already failed")
        if not self.finished:
            raise HandshakeError("The Noise handshake is not finished")
        if self._split is None:
            c1, c2 = self._ss.split()
            self._split = (c1, c2) if self.initiator else (c2, c1)
        return self._split
