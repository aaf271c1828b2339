"""What the store keeps sealed, and the one place that seals and opens it.

Secrets the server must be able to use again (not merely verify) are stored sealed with the
data directory's ``server.key`` (:class:`~thalovant_server.secrets.SealingKey`, AES-256-GCM). The
associated data binds each blob to its place, so a sealed value copied into another row or
column does not open:

- ``server_keys.sealed`` of ``noise_static``: the Noise static private key of the server, the one
  every hub presents on every carrier (clients pin it per endpoint: created once, kept for ever);
- ``clients.psk_sealed``: the client's derived Noise pre-shared key, bound to the client id.

A blob that does not open means the database and the data directory's ``server.key`` do not
belong together: :class:`SealedSecretUnreadable`, raised at startup for the server key, so a
misconfigured server refuses to run rather than present a new key to pinned clients.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from thalovant.protocol.noise import KeyPair
from thalovant_server.secrets import SealingKey
from thalovant_server.store.engine import Store
from thalovant_server.store.models import ServerKey

__all__ = [
    "NOISE_STATIC",
    "SealedSecretUnreadable",
    "noise_static_key",
    "open_psk",
    "open_server_key",
    "seal_psk",
    "seal_server_key",
]

NOISE_STATIC = "noise_static"


class SealedSecretUnreadable(RuntimeError):
    """A sealed value does not open with this server's ``server.key`` (wrong data directory?)."""


def _server_key_context(name: str) -> bytes:
    return f"server_keys:{name}".encode()


def _psk_context(client_id: str) -> bytes:
    return f"clients.psk:{client_id}".encode()


def seal_server_key(sealing: SealingKey, name: str, private: bytes) -> bytes:
    return sealing.seal(private, context=_server_key_context(name))


def open_server_key(sealing: SealingKey, name: str, sealed: bytes) -> bytes:
    opened = sealing.open(bytes(sealed), context=_server_key_context(name))
    if opened is None:
        raise SealedSecretUnreadable(
            f"the server key {name!r} in the database does not open with this data directory's server.key"
        )
    return opened


def seal_psk(sealing: SealingKey, client_id: str, psk: bytes) -> bytes:
    return sealing.seal(psk, context=_psk_context(client_id))


def open_psk(sealing: SealingKey, client_id: str, sealed: bytes) -> bytes | None:
    """The client's PSK, or ``None`` when the blob does not open (the client is then refused)."""
    return sealing.open(bytes(sealed), context=_psk_context(client_id))


async def noise_static_key(store: Store, sealing: SealingKey) -> KeyPair:
    """The server's Noise static key, created on first use (two racing first starts agree).

    Raises :class:`SealedSecretUnreadable` when the stored key does not open.
    """
    async with store.session() as session:
        row = await session.get(ServerKey, NOISE_STATIC)
        if row is not None:
            return KeyPair.from_private(open_server_key(sealing, NOISE_STATIC, row.sealed))
    candidate = KeyPair.generate()
    try:
        async with store.session() as session:
            session.add(ServerKey(name=NOISE_STATIC, sealed=seal_server_key(sealing, NOISE_STATIC, candidate.private)))
    except IntegrityError:
        pass  # another process stored its key first: use that one
    async with store.session() as session:
        row = await session.get(ServerKey, NOISE_STATIC)
        if row is None:
            raise SealedSecretUnreadable("the server's Noise key could not be stored")
        return KeyPair.from_private(open_server_key(sealing, NOISE_STATIC, row.sealed))
