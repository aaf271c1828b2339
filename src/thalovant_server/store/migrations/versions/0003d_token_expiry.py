"""Every API token expires: tokens made without an expiry get one, 365 days from the upgrade.

365 days is the server's default maximum lifetime (``api_token_max_days``); the owner can mint a
new token before then. Session tokens always had an expiry.

Revision ID: 0003d_token_expiry
Revises: 0003c_hub_slugs
Create Date: 2026-12-06
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0003d_token_expiry"
down_revision = "0003c_hub_slugs"
branch_labels = None
depends_on = None

LIFETIME = dt.timedelta(days=365)

_tokens = sa.table("api_tokens", sa.column("expires_at", sa.DateTime(timezone=True)))


def upgrade() -> None:
    bind = op.get_bind()
    expires = dt.datetime.now(dt.UTC) + LIFETIME
    if bind.dialect.name == "sqlite":
        expires = expires.replace(tzinfo=None)
    bind.execute(sa.update(_tokens).where(_tokens.c.expires_at.is_(None)).values(expires_at=expires))


def downgrade() -> None:
    """Expiries stay (a token that expires is never less safe)."""
