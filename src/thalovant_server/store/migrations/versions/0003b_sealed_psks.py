"""Clients' PSKs sealed with the server key: ``clients.psk`` (raw) becomes ``clients.psk_sealed``.

Each existing PSK is sealed with the data directory's ``server.key``, bound to its client id
(:func:`thalovant_server.store.sealed.seal_psk`), and the raw column is dropped. On SQLite the
store runs with ``secure_delete`` on, so the raw values are overwritten, not merely unlinked.

Revision ID: 0003b_sealed_psks
Revises: 0003a_server_noise_key
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from thalovant_server.store.sealed import open_psk, seal_psk

revision = "0003b_sealed_psks"
down_revision = "0003a_server_noise_key"
branch_labels = None
depends_on = None

_clients = sa.table(
    "clients",
    sa.column("id", sa.String),
    sa.column("psk", sa.LargeBinary),
    sa.column("psk_sealed", sa.LargeBinary),
)


def _sealing():  # type: ignore[no-untyped-def]
    sealing = context.config.attributes.get("sealing_key")
    if sealing is None:
        raise RuntimeError("migration 0003b seals client PSKs: open the store with the data directory's server.key")
    return sealing


def upgrade() -> None:
    op.add_column("clients", sa.Column("psk_sealed", sa.LargeBinary(), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(sa.select(_clients.c.id, _clients.c.psk)).all()
    if rows:
        sealing = _sealing()
        for client_id, psk in rows:
            sealed = seal_psk(sealing, client_id, bytes(psk))
            bind.execute(sa.update(_clients).where(_clients.c.id == client_id).values(psk_sealed=sealed))
    # ``clients`` is referenced by no foreign key, so SQLite's batch rebuild of it is safe
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("psk")
        batch.alter_column("psk_sealed", existing_type=sa.LargeBinary(), nullable=False)


def downgrade() -> None:
    op.add_column("clients", sa.Column("psk", sa.LargeBinary(32), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(sa.select(_clients.c.id, _clients.c.psk_sealed)).all()
    if rows:
        sealing = _sealing()
        for client_id, sealed in rows:
            psk = open_psk(sealing, client_id, bytes(sealed))
            if psk is None:
                raise RuntimeError(f"cannot downgrade 0003b: the PSK of client {client_id} does not open")
            bind.execute(sa.update(_clients).where(_clients.c.id == client_id).values(psk=psk))
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("psk_sealed")
        batch.alter_column("psk", existing_type=sa.LargeBinary(32), nullable=False)
