"""Operations, runtime groups, their desired skills and skill history; hubs name their group.

``hubs.runtime_group_id`` is a plain nullable column (``NULL``: the workspace's default group,
created on first use). It has no foreign key on purpose: adding one on SQLite means rebuilding
``hubs``, and dropping the old table would cascade to ``clients``. The API refuses to delete a
group that hubs still use.

Revision ID: 0005_skills_on_hubs
Revises: 0004_signin_memory_analytics
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_skills_on_hubs"
down_revision = "0004_signin_memory_analytics"
branch_labels = None
depends_on = None


def _time(name: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "operations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("aggregate_type", sa.String(32), nullable=False),
        sa.Column("aggregate_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(36), nullable=True),
        _time("deadline_at"),
        _time("created_at"),
        _time("updated_at"),
        _time("committed_at", nullable=True),
        _time("applied_at", nullable=True),
        _time("ready_at", nullable=True),
        _time("terminal_at", nullable=True),
    )
    op.create_index("ix_operations_status", "operations", ["status"])
    op.create_index("ix_operations_workspace_page", "operations", ["workspace_id", "created_at", "id"])

    op.create_table(
        "runtime_groups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("default_for", sa.String(36), nullable=True, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("environment", sa.String(32), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("personas", sa.JSON(), nullable=False),
        sa.Column("config_revision", sa.String(64), nullable=False),
        sa.Column("inventory", sa.JSON(), nullable=True),
        _time("inventory_observed_at", nullable=True),
        sa.Column("created_by", sa.String(36), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.UniqueConstraint("workspace_id", "slug", name="uq_runtime_groups_workspace_slug"),
    )
    op.create_index("ix_runtime_groups_workspace_id", "runtime_groups", ["workspace_id"])

    op.create_table(
        "runtime_group_skills",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "runtime_group_id", sa.String(36), sa.ForeignKey("runtime_groups.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("skill_id", sa.String(64), nullable=False),
        sa.Column("source_type", sa.String(32), nullable=False),
        sa.Column("source_ref", sa.String(512), nullable=False),
        sa.Column("marketplace_skill_id", sa.String(36), nullable=True),
        sa.Column("version_pin", sa.String(64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("installed_version", sa.String(64), nullable=True),
        sa.Column("previous_version", sa.String(64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _time("last_transition_at"),
        _time("created_at"),
        _time("updated_at"),
        sa.UniqueConstraint("runtime_group_id", "skill_id", name="uq_runtime_group_skills_skill"),
    )
    op.create_index("ix_runtime_group_skills_runtime_group_id", "runtime_group_skills", ["runtime_group_id"])

    op.create_table(
        "skill_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "runtime_group_id", sa.String(36), sa.ForeignKey("runtime_groups.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("hub_id", sa.String(36), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("skill", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("actor_email", sa.String(320), nullable=True),
        sa.Column("operation_id", sa.String(36), nullable=True),
        _time("created_at"),
    )
    op.create_index("ix_skill_history_group", "skill_history", ["runtime_group_id", "id"])

    op.add_column("hubs", sa.Column("runtime_group_id", sa.String(36), nullable=True))
    op.create_index("ix_hubs_runtime_group_id", "hubs", ["runtime_group_id"])


def downgrade() -> None:
    op.drop_index("ix_hubs_runtime_group_id", table_name="hubs")
    op.drop_column("hubs", "runtime_group_id")  # SQLite 3.35+ drops it in place (no table rebuild)
    op.drop_table("skill_history")
    op.drop_table("runtime_group_skills")
    op.drop_table("runtime_groups")
    op.drop_table("operations")
