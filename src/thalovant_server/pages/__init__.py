"""The server's own HTML pages: device verification (``/activate``), native sign-in consent
(``/authorize``) and the sign-in form they share (``POST /sign-in``). Not part of ``/v1``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from thalovant_server.pages import activate, authorize
from thalovant_server.pages.browser import FormRefused, refused_page, sign_in

__all__ = ["pages_router"]


async def _sign_in(request: Request) -> Response:
    try:
        return await sign_in(request)
    except FormRefused:
        return refused_page()


def pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    router.include_router(activate.router)
    router.include_router(authorize.router)
    router.add_api_route("/sign-in", _sign_in, methods=["POST"], include_in_schema=False)
    return router
