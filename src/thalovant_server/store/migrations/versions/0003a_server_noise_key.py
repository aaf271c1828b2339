"""One Noise static key for the whole server, sealed, instead of one raw key per hub.

Clients pin the hub's Noise key per endpoint (``wss://host:port``), and every hub of a server
shares that endpoint, so every hub must present one and the same key. This adds
``server_keys`` (name, sealed value) and moves into it, sealed with the data directory's
``server.key``, the key of the **oldest** hub: its clients, usually the bulk of a small
deployment (the demo hub comes first), keep their pin. Clients that pinned another pre-existing
hub's key meet a changed key once and must forget that pin. ``hubs.noise_private_key`` goes.

A database without hubs needs no sealing key here; the server creates its key on first start.

Revision ID: 0003a_server_noise_key
Revises: 0002_mqtt_password_hash
Create Date: 2026-12-06
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import context, op

from thalovant_server.store.sealed import NOISE_STATIC, open_server_key, seal_server_key

revision = "0003a_server_noise_key"
down_revision = "0002_mqtt_password_hash"
branch_labels = None
depends_on = None

_server_keys = sa.table(
    "server_keys",
    sa.column("name", sa.String),
    sa.column("sealed", sa.LargeBinary),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def _sealing():  # type: ignore[no-untyped-def]
    sealing = context.config.attributes.get("sealing_key")
    if sealing is None:
        raise RuntimeError(
            "migration 0003a seals existing keys: open the store with the data directory's server.key"
        )
    return sealing


def _now() -> dt.datetime:
    now = dt.datetime.now(dt.UTC)
    return now.replace(tzinfo=None) if op.get_bind().dialect.name == "sqlite" else now


def upgrade() -> None:
    op.create_table(
        "server_keys",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    bind = op.get_bind()
    oldest = bind.execute(
        sa.text("SELECT noise_private_key FROM hubs ORDER BY created_at, id LIMIT 1")
    ).scalar_one_or_none()
    if oldest is not None:
        sealed = seal_server_key(_sealing(), NOISE_STATIC, bytes(oldest))
        bind.execute(sa.insert(_server_keys).values(name=NOISE_STATIC, sealed=sealed, created_at=_now()))
    # A plain ALTER TABLE (SQLite 3.35+ drops a column in place). Never a batch rebuild of
    # ``hubs``: dropping the old table would cascade-delete every client.
    op.drop_column("hubs", "noise_private_key")


def downgrade() -> None:
    bind = op.get_bind()
    sealed = bind.execute(
        sa.select(_server_keys.c.sealed).where(_server_keys.c.name == NOISE_STATIC)
    ).scalar_one_or_none()
    op.add_column("hubs", sa.Column("noise_private_key", sa.LargeBinary(32), nullable=True))
    if sealed is not None:
        private = open_server_key(_sealing(), NOISE_STATIC, bytes(sealed))
        update = sa.text("UPDATE hubs SET noise_private_key = :key")
        bind.execute(update.bindparams(sa.bindparam("key", private, sa.LargeBinary)))
    else:
        hub_ids = bind.execute(sa.text("SELECT id FROM hubs")).scalars().all()
        if hub_ids:
            raise RuntimeError("cannot downgrade 0003a: hubs exist but the server has no Noise key")
    op.drop_table("server_keys")
