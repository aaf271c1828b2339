"""Request limits of the ``/v1`` API (ASGI middleware, outermost): body size and requests in progress.

- a body larger than ``max_body`` bytes is refused with 413: at once when ``Content-Length``
  says so, else as soon as the bytes read pass the limit (nothing more is buffered);
- while ``max_concurrency`` ``/v1`` requests are in progress, a new one gets 503 with
  ``Retry-After: 1`` before anything of it is read.

Both answers are Problem+JSON like every other refusal of the API.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from thalovant_server.api.problems import problem_response

API_PREFIX = "/v1/"


class ApiLimits:
    def __init__(self, app: ASGIApp, *, max_body: int, max_concurrency: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_concurrency = max_concurrency
        self.in_progress = 0

    def _too_large(self) -> str:
        return f"The request body is larger than {self.max_body} bytes."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await problem_response(413, self._too_large(), headers={"Connection": "close"})(scope, receive, send)
            return
        if self.in_progress >= self.max_concurrency:
            busy = problem_response(503, "The API is busy; retry shortly.", headers={"Retry-After": "1"})
            await busy(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise HTTPException(413, self._too_large(), headers={"Connection": "close"})
            return message

        self.in_progress += 1
        try:
            await self.app(scope, limited_receive, send)
        finally:
            self.in_progress -= 1


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
