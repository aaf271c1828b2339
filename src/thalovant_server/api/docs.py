"""The API docs at ``/v1/docs``, with every asset served by the server itself (no CDN): the
Swagger UI files come from the ``swagger-ui-bundle`` package, under ``/v1/docs-assets/``."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_URL = "/v1/docs"
ASSETS_URL = "/v1/docs-assets"


def mount_api_docs(app: FastAPI) -> None:
    """Serve the Swagger UI page for ``app.openapi_url`` and its assets."""
    app.mount(ASSETS_URL, StaticFiles(directory=swagger_ui_path), name="docs-assets")
    openapi_url = app.openapi_url or "/v1/openapi.json"
    title = f"{app.title} - API docs"

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
        )

    app.add_api_route(DOCS_URL, docs, methods=["GET"], include_in_schema=False)
