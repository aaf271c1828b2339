"""Control-plane error reading (controlplane.md 12) against the api-error vectors of ``conformance/``, and the
data-plane error types."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.fixtures.conformance import load_vectors

from thalovant.errors import (
    ThalovantAlreadyLinkedError,
    ThalovantAPIError,
    ThalovantAPIUnreachableError,
    ThalovantAuthError,
    ThalovantClientKeyRejectedError,
    ThalovantConnectionError,
    ThalovantError,
    ThalovantHubKeyChangedError,
    ThalovantHubRefusedError,
    ThalovantIdentityError,
    ThalovantPlanError,
    ThalovantPolicyDeniedError,
    ThalovantRuntimeError,
    ThalovantTimeoutError,
    ThalovantUnansweredError,
    ThalovantUnsupportedProtocolError,
    api_error_from_response,
    display_message,
)
from thalovant.events import EVENT_POLICY_DENIED, ThalovantEvent


def _vector_cases() -> list[dict[str, Any]]:
    cases = load_vectors("api-error-vectors.json")["cases"]
    assert cases, "the vector file has no cases"
    return list(cases)


def test_every_api_error_vector() -> None:
    cases = _vector_cases()
    for case in cases:
        response = case["response"]
        headers = {"content-type": response["content_type"]}
        error = api_error_from_response(response["status"], response["body"], headers)
        expect = case["expect"]
        name = case["name"]
        assert isinstance(error, ThalovantAPIError), name
        assert error.status_code == expect["status"], name
        assert error.code == expect["code"], name
        assert error.detail == expect["detail"], name
        assert error.problem == expect["problem"], name
        for secret in case.get("message_excludes", []):
            assert secret not in str(error), name
            assert secret not in error.message, name
            assert secret not in repr(error), name
        assert str(error).startswith(f"Thalovant API request failed with HTTP {expect['status']}"), name


def test_vector_classes() -> None:
    by_name = {case["name"]: case for case in _vector_cases()}
    plan = by_name["a plan limit keeps its numbers beside its sentence"]["response"]
    error = api_error_from_response(plan["status"], plan["body"])
    assert isinstance(error, ThalovantPlanError)
    assert error.problem is not None and error.problem["limit"] == 1
    nested = by_name[
        "FastAPI's own envelope: a structured detail the API did not lift still gives its code and sentence"
    ]["response"]
    assert isinstance(api_error_from_response(nested["status"], nested["body"]), ThalovantPlanError)
    image = by_name["a refused custom image keeps its code, its whole sentence and every list"]["response"]
    image_error = api_error_from_response(image["status"], image["body"])
    assert type(image_error) is ThalovantAPIError
    # the display sentence is cut at 200 characters, the detail never is
    assert image_error.detail is not None and len(image_error.detail) > 200
    assert "..." in image_error.message
    assert image_error.message.endswith("(platform_image_required)")


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (401, {"detail": "Could not validate credentials"}, ThalovantAuthError),
        (423, {"detail": "Account locked"}, ThalovantAuthError),
        (403, {"detail": "Insufficient scopes"}, ThalovantAuthError),
        (403, {"detail": "Ownership required"}, ThalovantAPIError),
        (402, {"detail": "API access requires a paid plan."}, ThalovantPlanError),
        (403, {"detail": "Free plan allows up to 1 connection.", "code": "plan_limit"}, ThalovantPlanError),
        (
            409,
            {"detail": "Linked.", "code": "home_assistant_already_linked", "client_id": "c-1"},
            ThalovantAlreadyLinkedError,
        ),
        (404, {"detail": "Hub not found"}, ThalovantAPIError),
        (412, {"detail": "ETag mismatch"}, ThalovantAPIError),
        (429, {"detail": "Slow down"}, ThalovantAPIError),
        (500, {"detail": "Boom"}, ThalovantAPIError),
    ],
)
def test_status_mapping(status: int, body: dict[str, Any], cls: type[ThalovantAPIError]) -> None:
    error = api_error_from_response(status, json.dumps(body))
    assert type(error) is cls
    assert error.status_code == status
    if cls is ThalovantAlreadyLinkedError:
        assert isinstance(error, ThalovantAlreadyLinkedError)
        assert error.client_id == "c-1"


def test_display_message_rules() -> None:
    assert (
        display_message(404, {"detail": "Hub not found"}) == "Thalovant API request failed with HTTP 404: Hub not found"
    )
    assert (
        display_message(409, {"detail": "Taken", "code": "name_taken"})
        == "Thalovant API request failed with HTTP 409: Taken (name_taken)"
    )
    assert display_message(409, {"code": "x_y"}) == "Thalovant API request failed with HTTP 409: (x_y)"
    assert display_message(500, None) == "Thalovant API request failed with HTTP 500."
    # whitespace collapsed; message and error keys are read too; a code equal to the sentence is not repeated
    assert display_message(400, {"message": "a \n  b"}) == "Thalovant API request failed with HTTP 400: a b"
    assert display_message(400, {"error": "oops", "code": "oops"}) == "Thalovant API request failed with HTTP 400: oops"
    # a malformed code is never echoed
    assert "(" not in display_message(400, {"detail": "d", "code": "has spaces and secrets"})


def test_retry_after_sources() -> None:
    body = {"detail": {"code": "token_rate_limited", "message": "Retry later.", "retry_after_seconds": 7}}
    error = api_error_from_response(429, json.dumps(body), {"Retry-After": "30"})
    assert error.retry_after_seconds == 7
    assert error.code == "token_rate_limited"
    top = api_error_from_response(429, json.dumps({"detail": "x", "retry_after_seconds": 3}))
    assert top.retry_after_seconds == 3
    plain = api_error_from_response(429, "Too Many Requests", {"RateLimit-Reset": "12"})
    assert plain.retry_after_seconds == 12
    assert plain.problem is None
    header = api_error_from_response(429, "", {"Retry-After": "5"})
    assert header.retry_after_seconds == 5
    dated = api_error_from_response(429, "", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert dated.retry_after_seconds is None


def test_redirect_is_an_error() -> None:
    error = api_error_from_response(302, "")
    assert type(error) is ThalovantAPIError
    assert "redirects are disabled" in str(error)


def test_hierarchy() -> None:
    assert issubclass(ThalovantAPIUnreachableError, ThalovantAPIError)
    assert issubclass(ThalovantAPIUnreachableError, ThalovantConnectionError)
    assert issubclass(ThalovantClientKeyRejectedError, ThalovantHubRefusedError)
    assert issubclass(ThalovantHubRefusedError, ThalovantConnectionError)
    assert issubclass(ThalovantHubKeyChangedError, ThalovantConnectionError)
    assert issubclass(ThalovantPolicyDeniedError, ThalovantRuntimeError)
    assert issubclass(ThalovantUnansweredError, ThalovantRuntimeError)
    for cls in (
        ThalovantAPIError,
        ThalovantConnectionError,
        ThalovantIdentityError,
        ThalovantTimeoutError,
        ThalovantRuntimeError,
        ThalovantUnsupportedProtocolError,
    ):
        assert issubclass(cls, ThalovantError)
    unreachable = ThalovantAPIUnreachableError()
    assert str(unreachable) == "Could not reach the Thalovant API."
    assert unreachable.status_code is None and unreachable.problem is None


def test_policy_denied_from_event() -> None:
    event = ThalovantEvent(
        EVENT_POLICY_DENIED,
        {
            "denied_type": "recognizer_loop:utterance",
            "code": "intent_quota_exceeded",
            "reason": "Daily intent quota reached",
            "data": {"period": "daily", "limit": 100, "used": 2**60, "reset_after": 3600},
        },
    )
    error = ThalovantPolicyDeniedError.from_event(event)
    assert error.denied_type == "recognizer_loop:utterance"
    assert error.code == "intent_quota_exceeded"
    assert error.reason == "Daily intent quota reached"
    assert error.quota == {"period": "daily", "limit": 100, "used": 0, "reset_after": 3600}
    assert "Daily intent quota reached" in str(error)
    acl = ThalovantPolicyDeniedError.from_event(
        ThalovantEvent(EVENT_POLICY_DENIED, {"code": "acl_disallowed_type", "data": {"allowed": ["speak"]}})
    )
    assert acl.allowed == ["speak"]
    assert acl.quota is None
    assert "speak" in str(acl)
