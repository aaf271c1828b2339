"""Sign-in grants, browser sessions, memory items, the hubs' request log and hub ratings.

- ``device_grants``: RFC 8628 device authorizations (the device code only as SHA-256);
- ``authorization_codes``: native sign-in (authorization code with PKCE) codes, as SHA-256;
- ``browser_sessions``: the cookie sessions of the server's own sign-in pages;
- ``memory_items``: what a workspace (or one hub, or one client identity) asked to keep;
- ``request_log``: one row per request a hub answered, written in batches off the hot path;
- ``hub_ratings``: one 1-5 rating per user and public hub.

Revision ID: 0004_signin_memory_analytics
Revises: 0002_mqtt_password_hash
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_signin_memory_analytics"
down_revision = "0002_mqtt_password_hash"
branch_labels = None
depends_on = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _user_fk(nullable: bool = False) -> sa.Column[str]:
    return sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "device_grants",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("device_code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user_code", sa.String(16), nullable=False, unique=True),
        sa.Column("app_id", sa.String(64), nullable=True),
        sa.Column("client_name", sa.String(200), nullable=True),
        sa.Column("device_name", sa.String(200), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("last_polled_at", _ts(), nullable=True),
        _user_fk(nullable=True),
        sa.Column("token_id", sa.String(36), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("expires_at", _ts(), nullable=False),
        sa.Column("decided_at", _ts(), nullable=True),
    )
    op.create_index("ix_device_grants_expires_at", "device_grants", ["expires_at"])
    op.create_table(
        "authorization_codes",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("app_id", sa.String(64), nullable=False),
        sa.Column("redirect_uri", sa.String(2048), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        _user_fk(),
        sa.Column("token_id", sa.String(36), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("expires_at", _ts(), nullable=False),
        sa.Column("used_at", _ts(), nullable=True),
    )
    op.create_index("ix_authorization_codes_expires_at", "authorization_codes", ["expires_at"])
    op.create_table(
        "browser_sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        _user_fk(),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("expires_at", _ts(), nullable=False),
    )
    op.create_index("ix_browser_sessions_expires_at", "browser_sessions", ["expires_at"])
    op.create_table(
        "memory_items",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("owner_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("hub_id", sa.String(36), sa.ForeignKey("hubs.id", ondelete="CASCADE"), nullable=True),
        sa.Column("client_id", sa.String(36), sa.ForeignKey("clients.id", ondelete="CASCADE"), nullable=True),
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(200), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("consent_scope", sa.String(64), nullable=True),
        sa.Column("consent_version", sa.String(32), nullable=True),
        sa.Column("retention_policy", sa.String(32), nullable=False),
        sa.Column("expires_at", _ts(), nullable=True),
        sa.Column("deleted_at", _ts(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
    )
    op.create_index("ix_memory_items_workspace_page", "memory_items", ["workspace_id", "created_at", "id"])
    op.create_index("ix_memory_items_client_subject", "memory_items", ["client_id", "subject"])
    op.create_table(
        "request_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("hub_id", sa.String(36), sa.ForeignKey("hubs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("workspace_id", sa.String(36), nullable=False),
        sa.Column("client_id", sa.String(36), nullable=True),
        sa.Column("carrier", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("skill", sa.String(64), nullable=True),
        sa.Column("intent", sa.String(128), nullable=True),
        sa.Column("handled", sa.Boolean(), nullable=False),
        sa.Column("lang", sa.String(32), nullable=False),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("utterance", sa.Text(), nullable=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=False),
        sa.Column("hour", sa.SmallInteger(), nullable=False),
    )
    op.create_index("ix_request_log_workspace_at", "request_log", ["workspace_id", "at"])
    op.create_index("ix_request_log_hub_at", "request_log", ["hub_id", "at"])
    op.create_table(
        "hub_ratings",
        sa.Column("hub_id", sa.String(36), sa.ForeignKey("hubs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "hub_ratings",
        "request_log",
        "memory_items",
        "browser_sessions",
        "authorization_codes",
        "device_grants",
    ):
        op.drop_table(table)
