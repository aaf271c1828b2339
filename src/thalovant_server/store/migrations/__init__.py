"""Alembic migrations of the store, run programmatically at startup (no alembic.ini on disk)."""
