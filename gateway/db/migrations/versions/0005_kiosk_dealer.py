"""a kiosk's dealer: only that dealer may start appraisals on it

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("kiosk", sa.Column("dealer_org", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("kiosk") as batch:
        batch.drop_column("dealer_org")
