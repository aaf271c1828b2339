"""Outgoing bus messages: ids, the runtime context (spec 6.1) and utterance contexts (6.2).

Pure functions over plain dicts, so the rules are testable without a hub.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from thalovant.protocol.envelope import HiveMessage, copy_json

UTTERANCE = "recognizer_loop:utterance"
DEFAULT_DESTINATION = "HiveMind"

#: session fields a conversation carries from one turn's ``ovos.utterance.handled`` to the next
CARRIED_SESSION_FIELDS = (
    "converse_handlers",
    "active_handlers",
    "active_skills",
    "context",
    "utterance_states",
    "response_mode",
)


def connection_session_id() -> str:
    """A new connection SID: ``thalovant-python-<32 hex>`` (never ``default``)."""
    return f"thalovant-python-{secrets.token_hex(16)}"


def new_request_id() -> str:
    return f"thalovant-request-{secrets.token_hex(16)}"


def new_conversation_session_id() -> str:
    return f"thalovant-session-{secrets.token_hex(16)}"


def runtime_context(
    context: Mapping[str, Any] | None,
    *,
    useragent: str,
    connection_sid: str,
    site_id: str,
    identity_metadata: Mapping[str, Any] | None = None,
    owned: bool = False,
) -> dict[str, Any]:
    """The context every outgoing bus message gets (spec 6.1); keys are added only when missing.

    ``source`` and ``platform`` default to the user agent, ``destination`` to ``HiveMind``; the
    session gets the connection SID when it has none (or ``default``) and the identity's site id;
    identity metadata is merged under ``metadata`` with the caller's keys winning. The result is
    a deep copy of ``context``, or, when ``owned`` (a dict built for this one message and shared
    with nobody), ``context`` itself completed in place.
    """
    result: dict[str, Any] = context if owned and isinstance(context, dict) else copy_json(dict(context or {}))
    result.setdefault("source", useragent)
    result.setdefault("platform", useragent)
    result.setdefault("destination", DEFAULT_DESTINATION)
    session = result.get("session")
    session = dict(session) if isinstance(session, Mapping) else {}
    top_sid = result.get("session_id")
    if not session.get("session_id") or session.get("session_id") == "default":
        session["session_id"] = (
            top_sid if isinstance(top_sid, str) and top_sid and top_sid != "default" else (connection_sid)
        )
    if not session.get("site_id"):
        session["site_id"] = site_id
    result["session"] = session
    if identity_metadata:
        caller = result.get("metadata")
        merged = dict(identity_metadata)
        if isinstance(caller, Mapping):
            merged.update(caller)
        result["metadata"] = merged
    return result


def utterance_message(
    text: str,
    *,
    lang: str,
    session_id: str | None,
    request_id: str | None,
    context: Mapping[str, Any] | None,
    site_id: str,
    carried: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(request_id, data, context)`` of a ``recognizer_loop:utterance`` (spec 6.2), before the
    runtime context of :func:`runtime_context` is applied.

    ``carried`` holds the conversation fields remembered for this session (spec 6.6); each is
    copied into the session unless the caller's context already sets it.
    """
    rid = request_id or new_request_id()
    data: dict[str, Any] = {"utterances": [text.strip()], "lang": lang}
    ctx: dict[str, Any] = copy_json(dict(context or {}))
    session = ctx.get("session")
    session = dict(session) if isinstance(session, Mapping) else {}
    explicit = session_id or (ctx.get("session_id") if isinstance(ctx.get("session_id"), str) else None)
    if explicit:
        session["session_id"] = explicit
    if not session.get("site_id"):
        session["site_id"] = site_id
    session.setdefault("lang", lang)
    session["request_id"] = rid
    for key, value in (carried or {}).items():
        if key not in session:
            session[key] = copy_json(value)
    ctx["session"] = session
    ctx["request_id"] = rid
    ctx["thalovant_request_id"] = rid
    return rid, data, ctx


def carried_fields(session: Mapping[str, Any]) -> dict[str, Any]:
    """The truthy conversation fields of a handled event's session (spec 6.6)."""
    return {key: copy_json(session[key]) for key in CARRIED_SESSION_FIELDS if session.get(key)}


def query_context(
    context: Mapping[str, Any] | None, *, request_id: str, session_id: str, site_id: str, lang: str
) -> dict[str, Any]:
    """The context of a direct query's inner utterance (spec 6.4): request ids and a session,
    without the runtime context's source, platform and destination."""
    ctx: dict[str, Any] = copy_json(dict(context or {}))
    session = ctx.get("session")
    session = dict(session) if isinstance(session, Mapping) else {}
    session.update(session_id=session_id, request_id=request_id)
    session.setdefault("site_id", site_id)
    session.setdefault("lang", lang)
    ctx.update(session=session, request_id=request_id, thalovant_request_id=request_id)
    return ctx


def nested(
    kind: str, bus_type: str, data: Mapping[str, Any], context: Mapping[str, Any], **metadata: Any
) -> HiveMessage:
    """A hive frame of ``kind`` whose payload is a whole inner ``bus`` envelope (query, mesh)."""
    inner = HiveMessage.bus(bus_type, data, context)
    return HiveMessage(kind, inner.to_dict(), dict(metadata))


def reply_context(request: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The context of a reply to a message with context ``request`` (OVOS-MSG-1 5.2, spec 6.7):
    a deep copy whose destination is the request's source and whose source is the request's
    (first) destination; a request with a destination but no source gets a reply with no
    destination. Session and request id are kept; ``context`` is merged over it."""
    result: dict[str, Any] = copy_json(dict(request))
    source, destination = request.get("source"), request.get("destination")
    if isinstance(destination, list):
        destination = destination[0] if destination else None
    result.pop("destination", None)
    result.pop("source", None)
    if source is not None:
        result["destination"] = source
    if destination is not None:
        result["source"] = destination
    result.update(copy_json(dict(context or {})))
    return result
