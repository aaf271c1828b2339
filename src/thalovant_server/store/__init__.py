"""The store: SQLAlchemy 2 async models, Alembic migrations, and small repository modules.

``engine.Store`` owns the engine and sessions; ``accounts``, ``hubs``, ``clients`` and
``idempotency`` are the repositories; ``directory`` is the hub runtime's view of the store.
"""

from __future__ import annotations

from thalovant_server.store.engine import Store

__all__ = ["Store"]
