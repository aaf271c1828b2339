"""The pre-shared key of a client identity (data-plane spec 3.5).

``derive_psk`` costs about 0.1 s of CPU and 64 MiB of memory: derive once (at provisioning
on the hub, cached per (access key, node_id) on the client) and never on an event loop.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from thalovant.protocol.errors import HandshakeError

__all__ = ["ARGON2_ITERATIONS", "ARGON2_LANES", "ARGON2_MEMORY_KIB", "PSK_LENGTH", "derive_psk"]

PSK_LENGTH = 32
ARGON2_ITERATIONS = 3
ARGON2_MEMORY_KIB = 65536
ARGON2_LANES = 1


def derive_psk(password: str, node_id: str) -> bytes:
    """argon2id(UTF-8 password, salt=SHA-256(UTF-8 node_id), t=3, m=64 MiB, p=1) -> 32 bytes.

    Raises :class:`TypeError` for non-string arguments and
    :class:`~thalovant.protocol.errors.HandshakeError` for strings that are not valid
    Unicode (lone surrogates), which no peer could reproduce.
    """
    if not isinstance(password, str) or not isinstance(node_id, str):
        raise TypeError("derive_psk takes the password and the node_id as str")
    try:
        secret = password.encode("utf-8")
        salt = hashlib.sha256(node_id.encode("utf-8")).digest()
    except UnicodeEncodeError:
        raise HandshakeError("The password and node_id must be valid Unicode") from None
    kdf = Argon2id(
        salt=salt,
        length=PSK_LENGTH,
        iterations=ARGON2_ITERATIONS,
        lanes=ARGON2_LANES,
        memory_cost=ARGON2_MEMORY_KIB,
    )
    return kdf.derive(secret)
