"""pace windows: the send moments booked per platform scope, shared by every delivering process

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.tables

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pace_window",
        sa.Column("platform", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=140), nullable=False),
        sa.Column("booked", sa.JSON(), nullable=False),
        sa.Column("held_until", models.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("tickets", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "scope"),
    )


def downgrade() -> None:
    op.drop_table("pace_window")
