"""Caller context for bus messages (dataplane.md 6.1).

:func:`build_client_context` builds the plain context keys a client may attach to a request
(``client.ask(text, context=...)``): who the user is, where the request comes from, locale,
device, trace metadata and the session. The hub may read them; the transport adds its own keys
(``source``, ``platform``, ``destination``, ``session``) only where these are missing.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["build_client_context"]


def _merge_into(target: dict[str, Any], key: str, values: Mapping[str, Any]) -> None:
    """Update the mapping at ``target[key]`` (created when absent or not a mapping)."""
    if not values:
        return
    current = target.get(key)
    merged = dict(current) if isinstance(current, Mapping) else {}
    merged.update(values)
    target[key] = merged


def build_client_context(
    base: Mapping[str, Any] | None = None,
    *,
    user_id: str | None = None,
    user_name: str | None = None,
    roles: Iterable[str] | None = None,
    auth_token: str | None = None,
    auth_provider: str | None = None,
    auth_claims: Mapping[str, Any] | None = None,
    source: str | None = None,
    destination: str | None = None,
    platform: str | None = None,
    locale: str | None = None,
    channel: str | None = None,
    device_id: str | None = None,
    device_platform: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    session_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A context dict: a deep copy of ``base`` with the given fields set.

    - ``user = {id, name, roles}`` plus top-level ``user_id``, ``user_name``, ``roles``;
    - ``auth = {token, provider, claims}`` plus top-level ``auth_token``;
    - ``platform``, ``source``, ``destination``, ``channel``, ``locale`` at the top level;
    - ``device = {id, platform}`` (the device platform defaults to ``platform``);
    - ``metadata`` merged into the base's metadata (the new keys win);
    - ``session_id`` at the top level and in ``session.session_id``;
    - ``extra``: any other keys, set as given.

    Arguments left as None change nothing, so contexts compose:
    ``build_client_context(build_client_context(user_id="u"), locale="en-US")``.
    """
    if base is not None and not isinstance(base, Mapping):
        raise TypeError("base must be a mapping (a dict) or None")
    context: dict[str, Any] = copy.deepcopy(dict(base)) if base else {}

    role_list = None if roles is None else [str(role) for role in ([roles] if isinstance(roles, str) else roles)]
    user = {k: v for k, v in (("id", user_id), ("name", user_name), ("roles", role_list)) if v is not None}
    _merge_into(context, "user", user)
    for key, value in (("user_id", user_id), ("user_name", user_name), ("roles", role_list)):
        if value is not None:
            context[key] = value

    claims = dict(auth_claims) if auth_claims is not None else None
    auth = {k: v for k, v in (("token", auth_token), ("provider", auth_provider), ("claims", claims)) if v is not None}
    _merge_into(context, "auth", auth)
    if auth_token is not None:
        context["auth_token"] = auth_token

    for key, value in (
        ("platform", platform),
        ("source", source),
        ("destination", destination),
        ("channel", channel),
        ("locale", locale),
    ):
        if value is not None:
            context[key] = value

    device_plat = device_platform if device_platform is not None else (platform if device_id is not None else None)
    device = {k: v for k, v in (("id", device_id), ("platform", device_plat)) if v is not None}
    _merge_into(context, "device", device)

    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError("metadata must be a mapping")
        _merge_into(context, "metadata", copy.deepcopy(dict(metadata)))

    if session_id is not None:
        context["session_id"] = session_id
        _merge_into(context, "session", {"session_id": session_id})

    if extra:
        for key, value in extra.items():
            context[key] = copy.deepcopy(value)
    return context
