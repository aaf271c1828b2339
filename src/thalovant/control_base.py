"""What the control plane's groups of methods share.

:class:`ApiCalls` is the base of each group of async methods (sign-in, hub extras, memory,
analytics): they call :meth:`ApiCalls.request`, which
:class:`~thalovant.control.AsyncThalovantControlPlane` implements. The synchronous client's
twins of them are generated in :class:`~thalovant.control.ThalovantControlPlane`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ParamSpec, TypeVar

__all__ = ["ApiCalls"]

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
    ) -> dict[str, Any]:
        """One API call returning its JSON object; implemented by the control-plane client."""
        raise NotImplementedError
