"""TLS trust for every connection the SDK makes (control plane, WSS, HTTPS, MQTT): one rule.

- ``verify=True`` (the default): the CA bundle named by the first of ``REQUESTS_CA_BUNDLE``,
  ``CURL_CA_BUNDLE`` and ``SSL_CERT_FILE`` that is set, else the system's default store; a
  variable naming a file that cannot be loaded is an error that names the variable;
- ``verify="<path>"``: that CA bundle;
- ``verify=<ssl.SSLContext>``: used as is;
- ``verify=False``: no verification (development only: ``self_signed=True``).

A context is built once per CA bundle and shared by every connection while the bundle file
stays the same (same size, modification time and inode); a changed file is loaded again on the
next connect. Callers must not modify the contexts this module returns.
"""

from __future__ import annotations

import os
import ssl
import threading

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


_Stamp = tuple[int, int, int] | None

_contexts: dict[str | None, tuple[_Stamp, ssl.SSLContext]] = {}
_contexts_lock = threading.Lock()


def _stamp(path: str | None) -> _Stamp:
    """What identifies the version of a CA bundle file (``None``: it cannot be read)."""
    if path is None:
        path = ssl.get_default_verify_paths().cafile
        if path is None:
            return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns, info.st_ino


def _verifying(path: str | None) -> ssl.SSLContext:
    """The shared context verifying against ``path`` (``None``: the system's store), rebuilt
    when the file changed since it was built."""
    stamp = _stamp(path)
    with _contexts_lock:
        cached = _contexts.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    context = ssl.create_default_context(cafile=path) if path is not None else ssl.create_default_context()
    with _contexts_lock:
        _contexts[path] = (stamp, context)
    return context


def client_ssl_context(verify: Verify = True) -> ssl.SSLContext:
    """A TLS client context following the rule of this module (shared: do not modify it)."""
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
            return _verifying(None)
        source, path = named
    try:
        return _verifying(path)
    except (OSError, ssl.SSLError) as exc:
        raise TrustStoreError(f"Cannot load the CA bundle {path} named by {source}: {exc}") from None
