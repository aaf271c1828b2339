"""Thalovant server: the control plane API (``/v1``), the store, and the hub runtime.

``thalovant-server serve`` runs one TLS port for the API and every hub's data plane;
``create_app(config)`` builds the same application for in-process use and tests.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
