"""Noise protocol framework, revision 34, for ``XXpsk2`` and ``KKpsk0``.

Written on ``cryptography`` primitives. Both roles (initiator and responder) are supported;
the psk modifier rules apply (every ``e`` token also mixes the ephemeral key into the chaining
key). Every malformed input raises :class:`~thalovant.protocol.errors.HandshakeError` (or its
subclass :class:`~thalovant.protocol.errors.DecryptError` for an authentication failure).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from thalovant.protocol.errors import DecryptError, HandshakeError

PATTERNS: tuple[str, ...] = ("XXpsk2", "KKpsk0")
SUITES: tuple[str, ...] = ("25519_ChaChaPoly_SHA256", "25519_AESGCM_SHA256")

DHLEN = 32
HASHLEN = 32
TAGLEN = 16
MAX_MESSAGE = 65535
_MAX_NONCE = 2**64 - 1
_EMPTY_KEY = b""

# Message patterns: each message is a tuple of tokens; pre-messages are (initiator, responder).
_MESSAGES: dict[str, tuple[tuple[str, ...], ...]] = {
    "XXpsk2": (("e",), ("e", "ee", "s", "es", "psk"), ("s", "se")),
    "KKpsk0": (("psk", "e", "es", "ss"), ("e", "ee", "se")),
}
_PRE_MESSAGES: dict[str, tuple[bool, bool]] = {
    "XXpsk2": (False, False),
    "KKpsk0": (True, True),
}


def protocol_name(pattern: str, suite: str) -> str:
    """The full Noise protocol name, e.g. ``Noise_XXpsk2_25519_ChaChaPoly_SHA256``."""
    if pattern not in PATTERNS:
        raise HandshakeError(f"Unsupported Noise pattern: {pattern!r}")
    if suite not in SUITES:
        raise HandshakeError(f"Unsupported Noise cipher suite: {suite!r}")
    return f"Noise_{pattern}_{suite}"


@dataclass(frozen=True)
class KeyPair:
    """An X25519 key pair as raw 32-byte strings."""

    private: bytes
    public: bytes

    @classmethod
    def generate(cls) -> KeyPair:
        return cls.from_private(X25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def from_private(cls, private: bytes) -> KeyPair:
        if len(private) != DHLEN:
            raise HandshakeError("An X25519 private key is 32 bytes")
        key = X25519PrivateKey.from_private_bytes(private)
        return cls(private=bytes(private), public=key.public_key().public_bytes_raw())

    def __repr__(self) -> str:
        return f"KeyPair(public={self.public.hex()})"


def _dh(private: bytes, public: bytes) -> bytes:
    if len(public) != DHLEN:
        raise HandshakeError("An X25519 public key is 32 bytes")
    try:
        return X25519PrivateKey.from_private_bytes(private).exchange(
            X25519PublicKey.from_public_bytes(public)
        )
    except ValueError as exc:  # all-zero shared secret (low-order point)
        raise HandshakeError("Invalid X25519 public key") from exc


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _hkdf(chaining_key: bytes, material: bytes, outputs: int) -> tuple[bytes, ...]:
    temp = _hmac(chaining_key, material)
    out1 = _hmac(temp, b"\x01")
    out2 = _hmac(temp, out1 + b"\x02")
    if outputs == 2:
        return out1, out2
    return out1, out2, _hmac(temp, out2 + b"\x03")


_ChaChaNonce = struct.Struct("<4xQ")
_AesNonce = struct.Struct(">4xQ")


class CipherState:
    """An AEAD key with its nonce counter (Noise section 5.1).

    ``encrypt``/``decrypt`` use strictly sequential nonces; a failed decryption raises
    :class:`DecryptError` and does not advance the counter.
    """

    __slots__ = ("_aead", "_key", "_nonce", "counter", "suite")

    def __init__(self, suite: str, key: bytes | None = None) -> None:
        if suite not in SUITES:
            raise HandshakeError(f"Unsupported Noise cipher suite: {suite!r}")
        self.suite = suite
        self.counter = 0
        self._nonce: Callable[[int], bytes] = (
            _ChaChaNonce.pack if suite == "25519_ChaChaPoly_SHA256" else _AesNonce.pack
        )
        self._key = _EMPTY_KEY
        self._aead: ChaCha20Poly1305 | AESGCM | None = None
        if key is not None:
            self.initialize_key(key)

    def initialize_key(self, key: bytes) -> None:
        if len(key) != 32:
            raise HandshakeError("A cipher key is 32 bytes")
        self._key = bytes(key)
        self._aead = ChaCha20Poly1305(key) if self.suite == "25519_ChaChaPoly_SHA256" else AESGCM(key)
        self.counter = 0

    @property
    def has_key(self) -> bool:
        return self._aead is not None

    def encrypt(self, plaintext: bytes, ad: bytes = b"") -> bytes:
        aead = self._aead
        if aead is None:
            return bytes(plaintext)
        counter = self.counter
        if counter >= _MAX_NONCE:
            raise HandshakeError("Noise nonce exhausted")
        self.counter = counter + 1
        return aead.encrypt(self._nonce(counter), plaintext, ad)

    def decrypt(self, ciphertext: bytes, ad: bytes = b"") -> bytes:
        aead = self._aead
        if aead is None:
            return bytes(ciphertext)
        counter = self.counter
        if counter >= _MAX_NONCE:
            raise HandshakeError("Noise nonce exhausted")
        if len(ciphertext) < TAGLEN:
            raise DecryptError("Noise ciphertext shorter than its tag")
        try:
            plaintext = aead.decrypt(self._nonce(counter), ciphertext, ad)
        except InvalidTag:
            raise DecryptError("Noise message failed to authenticate") from None
        self.counter = counter + 1
        return plaintext


class SymmetricState:
    """Chaining key, handshake hash and the handshake cipher (Noise section 5.2)."""

    def __init__(self, name: str, suite: str) -> None:
        raw = name.encode("ascii")
        self.h = raw.ljust(HASHLEN, b"\x00") if len(raw) <= HASHLEN else hashlib.sha256(raw).digest()
        self.ck = self.h
        self.cipher = CipherState(suite)
        self.suite = suite

    def mix_key(self, material: bytes) -> None:
        self.ck, temp_k = _hkdf(self.ck, material, 2)
        self.cipher.initialize_key(temp_k)

    def mix_hash(self, data: bytes) -> None:
        self.h = hashlib.sha256(self.h + data).digest()

    def mix_key_and_hash(self, material: bytes) -> None:
        self.ck, temp_h, temp_k = _hkdf(self.ck, material, 3)
        self.mix_hash(temp_h)
        self.cipher.initialize_key(temp_k)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt(plaintext, self.h)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt(ciphertext, self.h)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        k1, k2 = _hkdf(self.ck, b"", 2)
        return CipherState(self.suite, k1), CipherState(self.suite, k2)


class HandshakeState:
    """One side of a Noise handshake (Noise section 5.3) for the supported patterns.

    The caller alternates ``write_message`` and ``read_message`` in the pattern's order
    (the initiator writes first). After the last message ``finished`` is true and
    ``split()`` returns ``(send, recv)`` cipher states for this side.
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
        if len(psk) != 32:
            raise HandshakeError("The pre-shared key is 32 bytes")
        pre_initiator, pre_responder = _PRE_MESSAGES[pattern]
        if (pre_responder if initiator else pre_initiator) and remote_static is None:
            raise HandshakeError(f"{pattern} needs the remote static key")
        if remote_static is not None and len(remote_static) != DHLEN:
            raise HandshakeError("A remote static key is 32 bytes")
        self.pattern = pattern
        self.suite = suite
        self.initiator = initiator
        self._psk = bytes(psk)
        self._s = static
        self._e = ephemeral
        self._rs = remote_static
        self._re: bytes | None = None
        self._messages = _MESSAGES[pattern]
        self._index = 0
        self._ss = SymmetricState(name, suite)
        self._ss.mix_hash(prologue)
        if pre_initiator:
            self._ss.mix_hash(static.public if initiator else remote_static)  # type: ignore[arg-type]
        if pre_responder:
            self._ss.mix_hash(remote_static if initiator else static.public)  # type: ignore[arg-type]

    @property
    def finished(self) -> bool:
        return self._index >= len(self._messages)

    @property
    def remote_static(self) -> bytes | None:
        return self._rs

    @property
    def handshake_hash(self) -> bytes:
        return self._ss.h

    def _my_turn(self) -> bool:
        return (self._index % 2 == 0) == self.initiator

    def write_message(self, payload: bytes = b"") -> bytes:
        if self.finished:
            raise HandshakeError("The Noise handshake is already finished")
        if not self._my_turn():
            raise HandshakeError("Not this side's turn to write a Noise handshake message")
        ss = self._ss
        out = bytearray()
        for token in self._messages[self._index]:
            if token == "e":
                if self._e is None:
                    self._e = KeyPair.generate()
                out += self._e.public
                ss.mix_hash(self._e.public)
                ss.mix_key(self._e.public)
            elif token == "s":
                out += ss.encrypt_and_hash(self._s.public)
            elif token == "psk":
                ss.mix_key_and_hash(self._psk)
            else:
                ss.mix_key(self._dh_token(token))
        out += ss.encrypt_and_hash(payload)
        self._index += 1
        if len(out) > MAX_MESSAGE:
            raise HandshakeError("Noise handshake message exceeds 65535 bytes")
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        if self.finished:
            raise HandshakeError("The Noise handshake is already finished")
        if self._my_turn():
            raise HandshakeError("Not this side's turn to read a Noise handshake message")
        if len(message) > MAX_MESSAGE:
            raise HandshakeError("Noise handshake message exceeds 65535 bytes")
        ss = self._ss
        view = memoryview(message)
        pos = 0
        for token in self._messages[self._index]:
            if token == "e":
                if len(view) - pos < DHLEN:
                    raise HandshakeError("Noise handshake message too short")
                self._re = bytes(view[pos : pos + DHLEN])
                pos += DHLEN
                ss.mix_hash(self._re)
                ss.mix_key(self._re)
            elif token == "s":
                size = DHLEN + (TAGLEN if ss.cipher.has_key else 0)
                if len(view) - pos < size:
                    raise HandshakeError("Noise handshake message too short")
                self._rs = ss.decrypt_and_hash(bytes(view[pos : pos + size]))
                pos += size
            elif token == "psk":
                ss.mix_key_and_hash(self._psk)
            else:
                ss.mix_key(self._dh_token(token))
        rest = bytes(view[pos:])
        if ss.cipher.has_key and len(rest) < TAGLEN:
            raise HandshakeError("Noise handshake message too short")
        payload = ss.decrypt_and_hash(rest)
        self._index += 1
        return payload

    def _dh_token(self, token: str) -> bytes:
        # token is one of ee, es, se, ss: first letter is the initiator's key, second the responder's
        first, second = token[0], token[1]
        if self.initiator:
            mine, theirs = first, second
        else:
            mine, theirs = second, first
        local = self._e if mine == "e" else self._s
        remote = self._re if theirs == "e" else self._rs
        if local is None or remote is None:
            raise HandshakeError("Noise handshake state is missing a key")
        return _dh(local.private, remote)

    def split(self) -> tuple[CipherState, CipherState]:
        """``(send, recv)`` transport cipher states for this side."""
        if not self.finished:
            raise HandshakeError("The Noise handshake is not finished")
        c1, c2 = self._ss.split()
        return (c1, c2) if self.initiator else (c2, c1)
