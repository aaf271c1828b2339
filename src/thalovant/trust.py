"""TLS trust for every connection the SDK makes (control plane, WSS, HTTPS, MQTT): one rule.

- ``verify=True`` (the default): the CA bundle named by the first of ``REQUESTS_CA_BUNDLE``,
  ``CURL_CA_BUNDLE`` and ``SSL_CERT_FILE`` that is set, else the system's default store; a
  variable naming a file that cannot be loaded is an error that names the variable;
- ``verify="<path>"``: that CA bundle;
- ``verify=<ssl.SSLContext>``: used as is;
- ``verify=False``: no verification (development only: ``self_signed=True``).
"""

from __future__ import annotations

import os
import ssl

TRUST_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")

Verify = bool | str | ssl.SSLContext | None


class TrustStoreError(OSError):
    """The CA bundle named by a trust variable (or passed as ``verify``) cannot be loaded."""


def trust_store_variable() -> tuple[str, str] | None:
    """``(variable, path)`` of the first trust variable that is set, if any."""
    for variable in TRUST_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value:
            return variable, value
    return None


def trust_store_file() -> str | None:
    """The CA bundle in force (``None``: the system's default store)."""
    named = trust_store_variable()
    return named[1] if named else None


def describe_trust_store() -> str:
    """Where certificates are verified against, for messages."""
    named = trust_store_variable()
    return f"{named[1]} (from {named[0]})" if named else "the system's default trust store"


def client_ssl_context(verify: Verify = True) -> ssl.SSLContext:
    """A TLS client context following the rule of this module."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str):
        source, path = "verify", verify
    else:
        named = trust_store_variable()
        if named is None:
            return ssl.create_default_context()
        source, path = named
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise TrustStoreError(f"Cannot load the CA bundle {path} named by {source}: {exc}") from None
