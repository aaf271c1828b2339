"""Server-rendered HTML for the sign-in pages: one page shell, escaping, and strict headers.

Every value placed in a page goes through :func:`esc`. Pages load nothing from elsewhere (no
CDN, no script at all): the only style is inline, allowed by a per-response nonce. The
headers forbid framing, sniffing, caching and cross-site referrers, and limit where forms may post.
"""

from __future__ import annotations

import html
import secrets as _random
from collections.abc import Iterable

from starlette.responses import HTMLResponse

__all__ = ["esc", "hidden", "page"]

_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f5f5f4;color:#1c1917}
main{max-width:32rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:.75rem;
box-shadow:0 1px 3px #0002}
h1{font-size:1.4rem;margin-top:0}label{display:block;margin:.75rem 0 .25rem}
input[type=text],input[type=email],input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;
font-size:1rem;border:1px solid #a8a29e;border-radius:.375rem}
button{font-size:1rem;padding:.5rem 1.25rem;margin:1rem .5rem 0 0;border-radius:.375rem;border:1px solid #57534e;
background:#fff;cursor:pointer}button.primary{background:#1d4ed8;border-color:#1d4ed8;color:#fff}
.code{font-family:ui-monospace,monospace;font-size:1.3rem;letter-spacing:.1rem}
.verified{color:#15803d}.unverified{color:#b45309}.error{color:#b91c1c}ul{padding-left:1.25rem}
"""


def esc(value: object) -> str:
    """``value`` as text safe inside HTML element content and quoted attributes."""
    return html.escape(str(value), quote=True)


def hidden(fields: Iterable[tuple[str, str]]) -> str:
    """Hidden form inputs for ``(name, value)`` pairs."""
    return "".join(f'<input type="hidden" name="{esc(name)}" value="{esc(value)}">' for name, value in fields)


def page(title: str, body: str, *, status: int = 200, form_targets: Iterable[str] = ()) -> HTMLResponse:
    """A complete page. ``body`` must already be escaped HTML; ``form_targets`` are origins,
    besides this one, that a form (or the redirect that answers it) may go to."""
    nonce = _random.token_urlsafe(16)
    document = (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} - Thalovant</title>"
        f'<style nonce="{nonce}">{_STYLE}</style></head>'
        f"<body><main>{body}</main></body></html>\n"
    )
    targets = " ".join(["'self'", *form_targets])
    headers = {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'nonce-{nonce}'; form-action {targets}; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }
    return HTMLResponse(document, status_code=status, headers=headers)
