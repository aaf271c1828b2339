"""What every hub carrier does around the negotiation engine, written once.

The engine (:class:`~thalovant.protocol.negotiation.HubNegotiation`) decides whether a
client key contradicts a pin it was given; persisting a key seen for the first time is the
runtime's job. :func:`pin_new_client_key` joins the two: call it after every
``receive_text`` of the handshake.
"""

from __future__ import annotations

from thalovant.protocol.errors import ClientKeyRejected
from thalovant.protocol.negotiation import HubNegotiation
from thalovant_server.hub.directory import ClientCredentials
from thalovant_server.hub.runtime import HubRuntime

__all__ = ["pin_new_client_key"]


async def pin_new_client_key(negotiation: HubNegotiation, runtime: HubRuntime, creds: ClientCredentials) -> None:
    """Pin the client key of a just completed XX handshake (TOFU, spec 3.9).

    Does nothing until the handshake is complete, or when the client key was already pinned
    (KK, or XX with the pinned key). Otherwise the key is persisted through
    :meth:`HubRuntime.pin` as soon as the handshake completes, so a concurrent session with
    another key loses at once. Raises :class:`ClientKeyRejected` when another key won that
    race: the carrier must abort the session. Idempotent: a second call for the same key
    finds it pinned and returns.
    """
    key = negotiation.key_to_pin
    if key is None or not negotiation.complete:
        return
    if not await runtime.pin(creds, key):
        raise ClientKeyRejected("client static key contradicts the pinned key")
