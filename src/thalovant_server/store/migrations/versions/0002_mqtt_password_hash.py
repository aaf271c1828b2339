"""Widen ``clients.mqtt_password_hash`` to hold Mosquitto's ``$7$`` PBKDF2 hashes.

Until now the column held a SHA-256 hex digest (64 characters), which Mosquitto cannot verify.
Provisioning now stores Mosquitto 2's own format (``$7$<iterations>$<salt>$<digest>``, about
120 characters), so one stored value serves the embedded broker and a Mosquitto password file.
Rows written before keep their SHA-256 digest: the embedded broker still verifies them, a
Mosquitto broker leaves them out of its password file (those identities need re-provisioning
to use Mosquitto).

Revision ID: 0002_mqtt_password_hash
Revises: 0001_initial
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_mqtt_password_hash"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode rebuilds the table on SQLite (which cannot ALTER a column type) and is a plain
    # ALTER TABLE on PostgreSQL.
    with op.batch_alter_table("clients") as batch:
        batch.alter_column(
            "mqtt_password_hash",
            existing_type=sa.String(64),
            type_=sa.String(255),
            existing_nullable=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.alter_column(
            "mqtt_password_hash",
            existing_type=sa.String(255),
            type_=sa.String(64),
            existing_nullable=True,
        )
