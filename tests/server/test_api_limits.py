"""Request limits of ``/v1`` through a real ``serve``: body size, requests in progress, hub spec size."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable, Iterator

import httpx
import pytest
from tests.fixtures.server import RunningServer, new_server

PATIENCE = 30.0


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = new_server(
        tmp_path_factory.mktemp("limited"),
        extra_env={"THALOVANT_API_MAX_BODY": "4096", "THALOVANT_API_MAX_CONCURRENCY": "2"},
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def open_tls(server: RunningServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    return await asyncio.open_connection("127.0.0.1", server.port, ssl=context)


async def response_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    async with asyncio.timeout(PATIENCE):
        status = int((await reader.readline()).split()[1])
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def test_a_declared_body_over_the_limit_is_refused_unread(limited: RunningServer) -> None:
    reader, writer = await open_tls(limited)
    try:
        writer.write(
            b"POST /v1/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        await writer.drain()
        status, headers = await response_head(reader)
        assert status == 413
        assert headers["content-type"].startswith("application/problem+json")
    finally:
        writer.transport.abort()


def test_a_streamed_body_over_the_limit_is_refused(limited: RunningServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b" " * 1024

    with httpx.Client(verify=ssl.create_default_context(cafile=str(limited.ca_file))) as http:
        response = http.post(
            f"{limited.api_url}/v1/auth/token", content=chunks(), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert "larger than 4096 bytes" in response.json()["detail"]


async def test_requests_beyond_the_concurrency_limit_get_503(limited: RunningServer) -> None:
    held = []
    try:
        for _ in range(2):  # two requests in progress: their bodies never finish
            reader, writer = await open_tls(limited)
            writer.write(
                b"POST /v1/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{"
            )
            await writer.drain()
            held.append(writer)
        async with asyncio.timeout(PATIENCE):
            while True:  # until the server has both in progress
                reader, writer = await open_tls(limited)
                try:
                    writer.write(b"GET /v1/public/hubs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    status, headers = await response_head(reader)
                finally:
                    writer.transport.abort()
                if status == 503:
                    break
        assert headers["retry-after"] == "1"
    finally:
        for writer in held:
            writer.transport.abort()


def test_a_hub_spec_over_the_size_limit_is_refused(server_factory: Callable[..., RunningServer]) -> None:
    server = server_factory()
    context = ssl.create_default_context(cafile=str(server.ca_file))
    with httpx.Client(base_url=server.api_url, verify=context) as http:
        token = http.post("/v1/auth/token", json={"email": server.demo_email, "password": server.demo_password})
        headers = {"authorization": f"Bearer {token.json()['access_token']}", "Idempotency-Key": "big-spec"}
        spec = {"version": "1", "notes": "x" * (70 * 1024)}
        response = http.post("/v1/hubs", json={"name": "big-spec", "spec": spec}, headers=headers)
        assert response.status_code == 422, response.text
        assert "the limit is 65536" in json.dumps(response.json())
        spec["notes"] = "fits"
        headers["Idempotency-Key"] = "small-spec"
        ok = http.post("/v1/hubs", json={"name": "small-spec", "spec": spec}, headers=headers)
        assert ok.status_code == 201, ok.text
