"""The pre-shared key of a client identity (data-plane spec 3.5).

``derive_psk`` costs about 0.1 s of CPU and 64 MiB of memory: derive once (at provisioning
on the hub, cached on the client) and never on an event loop.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

PSK_LENGTH = 32
ARGON2_ITERATIONS = 3
ARGON2_MEMORY_KIB = 65536
ARGON2_LANES = 1


def derive_psk(password: str, node_id: str) -> bytes:
    """argon2id(password, salt=SHA-256(node_id), t=3, m=64 MiB, p=1) -> 32 bytes."""
    salt = hashlib.sha256(node_id.encode("utf-8")).digest()
    kdf = Argon2id(
        salt=salt,
        length=PSK_LENGTH,
        iterations=ARGON2_ITERATIONS,
        lanes=ARGON2_LANES,
        memory_cost=ARGON2_MEMORY_KIB,
    )
    return kdf.derive(password.encode("utf-8"))
