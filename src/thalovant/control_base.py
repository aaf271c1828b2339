"""What the control plane's groups of methods share.

:class:`ApiCalls` is the base of each group of async methods (sign-in, hub extras, memory,
analytics): they call :meth:`ApiCalls.request`, which
:class:`~thalovant.control.AsyncThalovantControlPlane` implements. The synchronous client's
twins of them are generated in :class:`~thalovant.control.ThalovantControlPlane`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ParamSpec, TypeVar

__all__ = ["ApiCalls", "release_body"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class ApiCalls:
    """The request primitive and token state every group of control-plane methods uses."""

    access_token: str | None
    token_id: str | None

    async def request(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One API call returning its JSON object; implemented by the control-plane client."""
        raise NotImplementedError


def release_body(
    *,
    channel: str | None,
    mode: str | None,
    version: str | None,
    images: Mapping[str, str] | None,
    reason: str | None,
) -> dict[str, Any]:
    """The body of a release request (a hub's or a runtime group's): the options given."""
    options = {"channel": channel, "mode": mode, "version": version, "reason": reason}
    body: dict[str, Any] = {key: value for key, value in options.items() if value is not None}
    if images is not None:
        body["images"] = dict(images)
    return body
