"""Hub slugs never spelled like a hub id: existing ones that are get ``hub-`` in front.

A slug equal to another hub's id (or any run of 32 hex digits and hyphens) made ``/v1/hubs/{id}`` ambiguous:
account A could name a hub after B's hub id and catch B's lookups. Slugs are now refused in that
shape (:func:`thalovant_server.store.hubs.valid_slug`); a hub that already has such a slug is renamed
``hub-<slug>`` (with ``-2``, ``-3``... if that is taken). Its id and public_ref do not change.

Revision ID: 0003c_hub_slugs
Revises: 0003b_sealed_psks
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from thalovant_server.store.hubs import valid_slug

revision = "0003c_hub_slugs"
down_revision = "0003b_sealed_psks"
branch_labels = None
depends_on = None

_hubs = sa.table("hubs", sa.column("id", sa.String), sa.column("slug", sa.String))


def _free_slug(base: str, taken: set[str]) -> str:
    candidate, number = base, 1
    while candidate in taken or not valid_slug(candidate):
        number += 1
        suffix = f"-{number}"
        candidate = base[: 63 - len(suffix)].rstrip("-") + suffix
    return candidate


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_hubs.c.id, _hubs.c.slug)).all()
    taken = {slug for _, slug in rows}
    for hub_id, slug in rows:
        if valid_slug(slug):
            continue
        renamed = _free_slug(f"hub-{slug}"[:63].rstrip("-"), taken)
        taken.add(renamed)
        bind.execute(sa.update(_hubs).where(_hubs.c.id == hub_id).values(slug=renamed))


def downgrade() -> None:
    """Renamed slugs keep their new name (the old one was the ambiguity this removed)."""
