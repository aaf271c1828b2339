"""Client-side carriers: I/O adapters between a transport and the protocol engine.

Adding a carrier is adding a module that subclasses :class:`~thalovant.carriers.base.Carrier`
and registering its factory in :data:`CARRIER_FACTORIES` (see :func:`carrier_for`).
"""

from __future__ import annotations

from collections.abc import Callable

from thalovant.carriers.base import Carrier, CarrierClosed, CarrierError, CarrierOpenError, CarrierRefused
from thalovant.carriers.https import HTTPSCarrier
from thalovant.carriers.mqtt import MQTTCarrier, MqttSettings, load_paho
from thalovant.carriers.wss import WSSCarrier
from thalovant.errors import ThalovantUnsupportedProtocolError
from thalovant.identity import ThalovantIdentity
from thalovant.noise_store import https_pin_id

PROTOCOLS = ("wss", "https", "mqtt")


def _wss(identity: ThalovantIdentity, useragent: str, verify_tls: bool) -> Carrier:
    endpoint = identity.endpoint_for("wss")
    if not endpoint:
        raise ThalovantUnsupportedProtocolError("This identity has no WSS endpoint.")
    return WSSCarrier(endpoint, access_key=identity.access_key, useragent=useragent, verify_tls=verify_tls)


def _https(identity: ThalovantIdentity, useragent: str, verify_tls: bool) -> Carrier:
    # An http:// base is refused when the carrier opens (a connection error at connect, spec 1.6).
    return HTTPSCarrier(
        identity.endpoint_base(), access_key=identity.access_key, useragent=useragent, verify_tls=verify_tls
    )


def _mqtt(identity: ThalovantIdentity, useragent: str, verify_tls: bool) -> Carrier:
    settings = MqttSettings.from_credentials(identity.mqtt)
    load_paho()  # the optional dependency: fail here, with the install hint
    return MQTTCarrier(
        settings,
        pin_id=https_pin_id(identity.endpoint_base()),  # MQTT shares the HTTPS pin (spec 1.8)
        site_id=identity.site_id,
        verify_tls=verify_tls,
    )


CarrierFactory = Callable[[ThalovantIdentity, str, bool], Carrier]

#: protocol name -> factory(identity, useragent, verify_tls)
CARRIER_FACTORIES: dict[str, CarrierFactory] = {"wss": _wss, "https": _https, "mqtt": _mqtt}


def carrier_for(protocol: str, identity: ThalovantIdentity, *, useragent: str, verify_tls: bool = True) -> Carrier:
    """A fresh carrier of ``protocol`` for ``identity``; raises
    :class:`ThalovantUnsupportedProtocolError` when the SDK or the identity lacks it."""
    factory = CARRIER_FACTORIES.get("https" if protocol == "http" else protocol)
    if factory is None:
        raise ThalovantUnsupportedProtocolError(f"Unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}.")
    return factory(identity, useragent, verify_tls)


__all__ = [
    "CARRIER_FACTORIES",
    "PROTOCOLS",
    "Carrier",
    "CarrierClosed",
    "CarrierError",
    "CarrierOpenError",
    "CarrierRefused",
    "HTTPSCarrier",
    "MQTTCarrier",
    "WSSCarrier",
    "carrier_for",
]
