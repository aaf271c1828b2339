"""Problem+JSON on every error path, the shared error vectors, and secrets kept out of logs."""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

import httpx
import pytest
from tests.fixtures.conformance import load_vectors
from tests.server.conftest import PASSWORD, Api
from tests.server.test_api_clients import sdk_body

UUID_URN = re.compile(r"^urn:problem:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def read_error(status: int, body_text: str) -> dict[str, Any]:
    """What an SDK error exposes, by the rules the vectors describe."""
    try:
        parsed = json.loads(body_text) if body_text.strip() else None
    except ValueError:
        parsed = None
    problem = parsed if isinstance(parsed, dict) else None
    code = detail = None
    if problem is not None:
        nested = problem.get("detail") if isinstance(problem.get("detail"), dict) else {}
        for candidate in (problem.get("code"), nested.get("code")):
            if isinstance(candidate, str) and candidate.strip():
                code = candidate
                break
        for candidate in (problem.get("detail"), nested.get("detail")):
            if isinstance(candidate, str) and candidate.strip():
                detail = candidate
                break
    return {"status": status, "code": code, "detail": detail, "problem": problem}


VECTORS = load_vectors("api-error-vectors.json")["cases"]


@pytest.mark.parametrize("case", VECTORS, ids=[case["name"][:60] for case in VECTORS])
def test_reader_matches_the_vectors(case: dict[str, Any]) -> None:
    response = case["response"]
    assert read_error(response["status"], response["body"]) == case["expect"]


def assert_vector_shape(response: httpx.Response, *, title: str = "HTTPException") -> dict[str, Any]:
    """Our problem has the shape of the vectors' Problem+JSON bodies."""
    shapes = [json.loads(c["response"]["body"]) for c in VECTORS if c["response"]["content_type"].endswith("+json")]
    required = set.intersection(*(set(shape) for shape in shapes))
    assert required == {"type", "title", "status", "instance", "detail"}
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert required <= set(body)
    assert body["type"] == "about:blank" and body["title"] == title and body["status"] == response.status_code
    assert UUID_URN.match(body["instance"])
    seen = read_error(response.status_code, response.text)
    assert seen["problem"] == body and seen["detail"] == body["detail"] and seen["code"] == body.get("code")
    return body


async def test_every_error_path_is_a_problem(api: Api) -> None:
    account = await api.account()
    hub = await api.create_hub(account)
    cases = [
        (await api.http.get("/v1/no/such/route"), 404, "Not Found"),
        (await api.http.get("/nothing-here"), 404, "Not Found"),
        (await api.http.delete("/v1/public/hubs"), 405, "Method Not Allowed"),
        (await api.http.get("/v1/hubs"), 401, "Could not validate credentials"),
        (await api.http.get(f"/v1/hubs/{uuid.uuid4()}", headers=account.headers), 404, "Hub not found"),
        (await api.http.delete(f"/v1/hubs/{hub['id']}", headers=account.headers), 412, "ETag mismatch"),
        (await api.http.get("/v1/clients/not-a-uuid", headers=account.headers), 404, "Client not found"),
    ]
    for response, status, detail in cases:
        assert response.status_code == status
        assert assert_vector_shape(response)["detail"] == detail
    assert cases[2][0].headers["allow"]


async def test_trailing_slashes_are_not_redirected(api: Api) -> None:
    account = await api.account()
    for path in ("/v1/hubs/", "/v1/public/hubs/", "/v1/clients/"):
        response = await api.http.get(path, headers=account.headers)
        assert response.status_code == 404
        assert "location" not in response.headers


async def test_validation_problem_never_echoes_secrets(api: Api) -> None:
    account = await api.account()
    secret_password, secret_key = "pw-ECHOED-" + uuid.uuid4().hex, "key-ECHOED-" + uuid.uuid4().hex
    response = await api.http.post(
        "/v1/clients",
        json={"spec": {"apiKey": secret_key, "password": secret_password}, "hub_id": 5},
        headers=account.headers,
    )
    body = assert_vector_shape(response, title="RequestValidationError")
    assert body["detail"] == "Request validation failed"
    assert {tuple(error["loc"]) for error in body["errors"]} >= {("body", "hub_id"), ("body", "name")}
    assert all(set(error) == {"type", "loc", "msg", "input"} for error in body["errors"])
    assert secret_password not in response.text and secret_key not in response.text
    short = await api.http.post(
        "/v1/clients",
        json={"hub_id": "h", "name": "n", "spec": {"password": "Zq9!x"}},
        headers=account.headers,
    )
    assert short.status_code == 422
    assert short.json()["errors"][0]["input"] == "[omitted]" and "Zq9!x" not in short.text
    login = await api.http.post("/v1/auth/token", json={"email": ["x"], "password": secret_password})
    assert login.status_code == 422 and secret_password not in login.text


async def test_unexpected_errors_are_500_problems_logged_without_secrets(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "tvpat_" + uuid.uuid4().hex

    async def explode() -> dict[str, str]:
        raise RuntimeError(f"database said: password={secret}")

    api.app.add_api_route("/v1/test-explode", explode)
    with caplog.at_level(logging.DEBUG):
        response = await api.http.get("/v1/test-explode")
    body = assert_vector_shape(response, title="Internal Server Error")
    assert body["status"] == 500 and body["detail"] == "Internal Server Error"
    assert "RuntimeError" in caplog.text
    assert secret not in caplog.text and secret not in response.text


async def test_secrets_never_reach_the_logs(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        email = await api.new_user()
        login = await api.http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
        token = login.json()["access_token"]
        headers = {"authorization": f"Bearer {token}"}
        hub = (await api.http.post("/v1/hubs", json={"name": "logs", "spec": {"version": "1"}}, headers=headers)).json()
        body = sdk_body(hub["id"], "logged")
        created = await api.http.post("/v1/clients", json=body, headers=headers)
        pat = (await api.http.post("/v1/auth/api-tokens", json={}, headers=headers)).json()["access_token"]
        await api.http.post("/v1/auth/token", json={"email": email, "password": "wrong-" + PASSWORD})
        await api.http.get("/v1/hubs", headers={"authorization": "Bearer tvpat_guessed-" + PASSWORD})
    assert created.status_code == 201
    spec = body["spec"]
    assert isinstance(spec, dict)
    identify = created.json()["initial_identify"]
    for secret in (PASSWORD, token, pat, spec["apiKey"], spec["password"], identify["password"]):
        assert secret not in caplog.text


async def test_every_success_body_is_a_json_object(api: Api) -> None:
    account = await api.account()
    hub = await api.create_hub(account, visibility="public")
    for path in (
        "/v1/public/hubs",
        f"/v1/public/hubs/{hub['slug']}",
        "/v1/hubs",
        f"/v1/hubs/{hub['id']}",
        "/v1/clients",
        "/v1/users/profile",
        "/v1/auth/api-tokens",
        "/v1/openapi.json",
    ):
        response = await api.http.get(path, headers=account.headers)
        assert response.status_code == 200, path
        assert isinstance(response.json(), dict), path
