"""Carrier-independent steps of the hub's negotiation that touch the runtime.

The negotiation itself is the engine's (:class:`~thalovant.protocol.negotiation.HubNegotiation`);
what carriers share here is the TOFU pin of spec 3.9, done the moment an XX handshake completes,
and the session's link, built from the completed negotiation and the client's encrypted HELLO.
"""

from __future__ import annotations

from thalovant.protocol.errors import NegotiationAborted
from thalovant.protocol.negotiation import ClientHello, HubNegotiation
from thalovant_server.hub.directory import ClientCredentials
from thalovant_server.hub.link import HubLink
from thalovant_server.hub.router import ClientOrigin
from thalovant_server.hub.runtime import HubHost, HubRuntime

__all__ = ["link_for", "pin_when_complete"]


async def pin_when_complete(runtime: HubRuntime, creds: ClientCredentials, negotiation: HubNegotiation) -> None:
    """Pin the client's static key once the handshake completed with a key not yet pinned.

    Does nothing before completion or when the client already had a pin (KK, or an XX the
    engine checked against the pin). Calling it again after a successful pin is harmless.
    Raises :class:`NegotiationAborted` when another key was pinned for this client meanwhile
    (a concurrent session with a different key won the race): the caller must abort.
    """
    key = negotiation.key_to_pin
    if key is None or not negotiation.complete:
        return
    if not await runtime.pin(creds, key):
        raise NegotiationAborted("client static key contradicts the pinned key")


def link_for(
    negotiation: HubNegotiation, hello: ClientHello, creds: ClientCredentials, host: HubHost, *, carrier: str
) -> HubLink:
    """The live session's link once ``negotiation`` completed and ``hello`` (the client's
    encrypted HELLO) arrived: its session id, and its site id unless empty (then the identity's).
    ``carrier`` is the hub spec's name of the carrier (``wss``, ``http`` or ``mqtt``)."""
    origin = ClientOrigin(
        client_id=creds.client_id,
        hub_id=host.hub_id,
        site_id=hello.site_id or creds.site_id,
        connection_session_id=hello.session_id,
        allowed_types=creds.allowed_types,
        carrier=carrier,
    )
    return HubLink(negotiation.channel, origin, host, negotiation.pattern or "")
