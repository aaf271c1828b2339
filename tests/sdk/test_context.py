"""build_client_context (dataplane.md 6.1)."""

from __future__ import annotations

import pytest

from thalovant import build_client_context


def test_guide_example() -> None:
    context = build_client_context(
        user_id="user-42",
        user_name="Ada",
        source="checkout-kiosk",
        platform="kiosk",
        locale="en-US",
        metadata={"trace_id": "req-2026-06-10-001"},
    )
    assert context == {
        "user": {"id": "user-42", "name": "Ada"},
        "user_id": "user-42",
        "user_name": "Ada",
        "source": "checkout-kiosk",
        "platform": "kiosk",
        "locale": "en-US",
        "metadata": {"trace_id": "req-2026-06-10-001"},
    }


def test_all_fields() -> None:
    context = build_client_context(
        user_id="u",
        roles=["admin", "ops"],
        auth_token="tok",
        auth_provider="oidc",
        auth_claims={"sub": "u"},
        destination="HiveMind",
        channel="chat",
        device_id="dev-1",
        platform="kiosk",
        session_id="sess-1",
        extra={"custom": {"a": 1}},
    )
    assert context["user"] == {"id": "u", "roles": ["admin", "ops"]}
    assert context["roles"] == ["admin", "ops"]
    assert context["auth"] == {"token": "tok", "provider": "oidc", "claims": {"sub": "u"}}
    assert context["auth_token"] == "tok"
    assert context["device"] == {"id": "dev-1", "platform": "kiosk"}
    assert context["destination"] == "HiveMind"
    assert context["channel"] == "chat"
    assert context["session_id"] == "sess-1"
    assert context["session"] == {"session_id": "sess-1"}
    assert context["custom"] == {"a": 1}


def test_base_is_copied_and_merged() -> None:
    base = {"metadata": {"a": 1, "b": 2}, "session": {"site_id": "kitchen"}, "user": {"id": "old", "name": "Old"}}
    context = build_client_context(base, user_id="new", metadata={"b": 3}, session_id="s")
    assert context["metadata"] == {"a": 1, "b": 3}
    assert context["session"] == {"site_id": "kitchen", "session_id": "s"}
    assert context["user"] == {"id": "new", "name": "Old"}
    assert base == {
        "metadata": {"a": 1, "b": 2},
        "session": {"site_id": "kitchen"},
        "user": {"id": "old", "name": "Old"},
    }
    assert build_client_context() == {}
    assert build_client_context(roles="admin")["roles"] == ["admin"]


def test_bad_input_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        build_client_context(["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        build_client_context(metadata="nope")  # type: ignore[arg-type]
