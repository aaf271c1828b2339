"""``doctor()``: step-by-step diagnostics of a client's identity and link (spec 9).

Checks, in order, each stopping the later ones only when they cannot run:

1. ``identity``: the identity has a site id, an access key and a password;
2. ``endpoint``: the chosen protocol and the endpoint it dials;
3. ``tls``: the hub certificate verifies against the trust store in force (skipped for ws://);
4. ``handshake``: a full connect (carrier, Noise handshake, encrypted HELLO);
5. ``round trip``: the link is alive after connect plus a healthcheck, with their time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from thalovant.errors import (
    ThalovantClientKeyRejectedError,
    ThalovantError,
    ThalovantHubKeyChangedError,
    ThalovantHubRefusedError,
)
from thalovant.models import ThalovantDoctorCheck, ThalovantDoctorReport
from thalovant.trust import client_ssl_context, describe_trust_store

if TYPE_CHECKING:
    from thalovant.client import AsyncThalovantClient


HINTS = {
    "identity": "check the identity file (or the THALOVANT_* variables); re-create the identity if fields are lost",
    "endpoint": "the identity has no endpoint for this protocol: pick another with --protocol, or re-create it",
    "tls": "set SSL_CERT_FILE to the CA that signed the hub's certificate (a local server's DATA_DIR/ca.pem)",
    "round trip": "the link dropped right after connecting: see the server's log",
}


def _handshake_hint(error: ThalovantError) -> str:
    if isinstance(error, ThalovantHubKeyChangedError):
        return "the hub's Noise key differs from the pinned one: stop, check, and remove the pin only if you trust it"
    if isinstance(error, ThalovantClientKeyRejectedError):
        return "the hub has another client key pinned for this identity: use that key folder, or a new identity"
    if isinstance(error, ThalovantHubRefusedError):
        return "the hub refused these credentials: the identity was deleted or revoked, or its password is wrong"
    return "the hub did not answer: is the server running, and is the endpoint reachable from here?"


def _check(name: str, ok: bool, detail: str) -> ThalovantDoctorCheck:
    return ThalovantDoctorCheck(name=name, ok=ok, detail=detail)


def _report(checks: list[ThalovantDoctorCheck], hints: dict[str, str] | None = None) -> ThalovantDoctorReport:
    """The report, with a hint for every failed check (``hints`` first, else the default)."""
    chosen = {**HINTS, **(hints or {})}
    return ThalovantDoctorReport(
        checks=checks, hints={c.name: chosen[c.name] for c in checks if not c.ok and c.name in chosen}
    )


async def _tls_check(url: str, timeout: float, verify: bool) -> ThalovantDoctorCheck:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    store = describe_trust_store()
    if not verify:
        return _check("tls", True, "certificate verification is OFF (self_signed=True, development only)")
    try:
        context = client_ssl_context(True)
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=host), timeout
        )
    except ssl.SSLCertVerificationError as exc:
        return _check(
            "tls",
            False,
            f"certificate of {host}:{port} does not verify against {store}: {exc.verify_message}",
        )
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        return _check("tls", False, f"cannot open TLS to {host}:{port}: {type(exc).__name__}: {exc}")
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        version = ssl_object.version() if ssl_object is not None else "?"
        cert = ssl_object.getpeercert() if ssl_object is not None else None
        issuer = ""
        if cert:
            issuer_parts = dict(item[0] for item in cert.get("issuer", ()) if item)
            issuer = f", issued by {issuer_parts.get('commonName') or issuer_parts.get('organizationName') or '?'}"
        return _check("tls", True, f"{version} to {host}:{port}, certificate verified against {store}{issuer}")
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(writer.wait_closed(), 2)


async def run_doctor(client: AsyncThalovantClient) -> ThalovantDoctorReport:
    """Run the checks and return the report (never raises for a failed check)."""
    identity = client.identity
    checks: list[ThalovantDoctorCheck] = []

    missing = [name for name in ("site_id", "access_key", "password") if not getattr(identity, name, None)]
    if missing:
        checks.append(_check("identity", False, "missing " + ", ".join(missing)))
    else:
        checks.append(_check("identity", True, f"site_id={identity.site_id}"))

    endpoint: str | None = None
    try:
        endpoint = client.endpoint
        master = str(getattr(identity, "default_master", "") or "")
        note = ""
        if master and not master.lower().startswith(("http://", "https://")):
            note = f" (note: default_master {master} is not http(s)://)"
        checks.append(_check("endpoint", True, f"{client.protocol} {endpoint}{note}"))
    except ThalovantError as exc:
        checks.append(_check("endpoint", False, f"{client.protocol}: {exc}"))

    if endpoint is not None:
        scheme = urlsplit(endpoint).scheme.lower()
        if scheme in ("wss", "https", "mqtts"):
            checks.append(await _tls_check(endpoint, client.connect_timeout, not client.self_signed))
        else:
            checks.append(_check("tls", True, f"not used: {scheme}:// is plain text"))

    can_connect = all(check.ok for check in checks)
    if not can_connect:
        checks.append(_check("handshake", False, "skipped: fix the checks above first"))
        return _report(checks, {"handshake": "fix the failed check above"})

    started = time.perf_counter()
    try:
        await client.connect()
    except ThalovantError as exc:
        checks.append(_check("handshake", False, f"{type(exc).__name__}: {exc}"))
        checks.append(_check("round trip", False, "skipped: not connected"))
        return _report(checks, {"handshake": _handshake_hint(exc), "round trip": "fix the handshake first"})
    info = client.connection_info()
    pattern = info.noise_pattern or "?"
    connect_ms = info.connect_ms if info.connect_ms is not None else (time.perf_counter() - started) * 1000
    checks.append(_check("handshake", True, f"Noise {pattern} in {connect_ms:.0f} ms (session {info.session_id})"))
    health = await client.healthcheck()
    total_ms = (time.perf_counter() - started) * 1000
    if health.ok:
        checks.append(_check("round trip", True, f"link alive; connect + healthcheck {total_ms:.0f} ms"))
    else:
        checks.append(_check("round trip", False, f"link not healthy: {health.last_error or 'transport down'}"))
    return _report(checks)
