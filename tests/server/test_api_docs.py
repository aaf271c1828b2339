"""The API docs work without internet: the page loads every asset from the server itself."""

from __future__ import annotations

import re

import httpx
from tests.fixtures.server import RunningServer


def test_the_docs_page_and_its_assets_come_from_the_server(server: RunningServer) -> None:
    with httpx.Client(base_url=server.api_url, verify=str(server.ca_file)) as http:
        page = http.get("/v1/docs")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page.text)
        urls += re.findall(r"""url:\s*["']([^"']+)["']""", page.text)
        assert urls, page.text
        assert all(url.startswith("/v1/") for url in urls), urls
        assert "cdn" not in page.text.lower()
        for url in urls:
            asset = http.get(url)
            assert asset.status_code == 200, url
        assert "SwaggerUIBundle" in http.get("/v1/docs-assets/swagger-ui-bundle.js").text
