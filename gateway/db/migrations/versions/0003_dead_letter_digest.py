"""dead letters know their message again when it is delivered again

A broker redelivers what the gateway had not acknowledged when it stopped, invalid messages
included: each was stored again, and ``dead_letters`` counted one message twice. A digest of
topic and payload finds the row; later deliveries are counted on it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dead_letter", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("duplicates", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_index("ix_dead_letter_digest", ["digest"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dead_letter", schema=None) as batch_op:
        batch_op.drop_index("ix_dead_letter_digest")
        batch_op.drop_column("duplicates")
        batch_op.drop_column("digest")
