"""appraisal VINs as read, whatever their length

The kiosk reports the VIN as it read it and says whether it is valid; a clone adapter's extra
frame makes one longer than 17 characters. PostgreSQL refused such an appraisal at commit.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("appraisal", "appraisal_photo")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                "vin", existing_type=sa.String(length=17), type_=sa.String(), existing_nullable=True
            )


def downgrade() -> None:
    # Longer VINs are cut to 17 characters: the column cannot hold them any more.
    for table in _TABLES:
        rows = sa.table(table, sa.column("vin", sa.String()))
        op.execute(
            rows.update()
            .where(sa.func.length(rows.c.vin) > 17)
            .values(vin=sa.func.substr(rows.c.vin, 1, 17))
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                "vin", existing_type=sa.String(), type_=sa.String(length=17), existing_nullable=True
            )
