"""Every table of the store in one metadata: the core models and the modules with tables of their own.

Use :data:`metadata` wherever the whole schema matters (Alembic's environment, schema checks);
``models.Base.metadata`` alone knows only the tables of the modules imported so far.
"""

from __future__ import annotations

from thalovant_server.store import memory, ratings, request_log, signin
from thalovant_server.store.models import Base

__all__ = ["metadata"]

metadata = Base.metadata
TABLE_MODULES = (memory, ratings, request_log, signin)
