"""Initial schema: users, workspaces, memberships, tokens, hubs, clients, idempotency records.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
    )
    op.create_table(
        "workspaces",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
    )
    op.create_table(
        "memberships",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.UniqueConstraint("user_id", "workspace_id", name="uq_membership"),
    )
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])
    op.create_index("ix_memberships_workspace_id", "memberships", ["workspace_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("expires_at", _ts(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
    )
    op.create_index("ix_api_tokens_user_created", "api_tokens", ["user_id", "created_at", "id"])
    op.create_table(
        "hubs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("slug", sa.String(63), nullable=False, unique=True),
        sa.Column("public_ref", sa.String(32), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("visibility", sa.String(20), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("owner_id", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("domain", sa.String(253), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False, unique=True),
        sa.Column("noise_private_key", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
    )
    op.create_index("ix_hubs_owner_id", "hubs", ["owner_id"])
    op.create_index("ix_hubs_public_page", "hubs", ["visibility", "active", "created_at", "id"])
    op.create_index("ix_hubs_workspace_page", "hubs", ["workspace_id", "created_at", "id"])
    op.create_table(
        "clients",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("hub_id", sa.String(36), sa.ForeignKey("hubs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("owner_id", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("site_id", sa.String(200), nullable=False),
        sa.Column("access_key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("psk", sa.LargeBinary(32), nullable=False),
        sa.Column("pinned_client_key", sa.LargeBinary(32), nullable=True),
        sa.Column("allowed_types", sa.JSON(), nullable=False),
        sa.Column("connection_type", sa.String(64), nullable=True),
        sa.Column("spec_extras", sa.JSON(), nullable=False),
        sa.Column("mqtt_username", sa.String(128), nullable=True, unique=True),
        sa.Column("mqtt_password_hash", sa.String(64), nullable=True),
        sa.Column("mqtt_topic_prefix", sa.String(256), nullable=True),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.UniqueConstraint("hub_id", "name", name="uq_clients_hub_name"),
    )
    op.create_index("ix_clients_owner_id", "clients", ["owner_id"])
    op.create_index("ix_clients_workspace_page", "clients", ["workspace_id", "created_at", "id"])
    op.create_index("ix_clients_hub_page", "clients", ["hub_id", "created_at", "id"])
    op.create_table(
        "idempotency_records",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("scope", sa.String(40), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.UniqueConstraint("user_id", "scope", "key", name="uq_idempotency_user_key"),
    )
    op.create_index("ix_idempotency_records_created_at", "idempotency_records", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_records")
    op.drop_table("clients")
    op.drop_table("hubs")
    op.drop_table("api_tokens")
    op.drop_table("memberships")
    op.drop_table("workspaces")
    op.drop_table("users")
