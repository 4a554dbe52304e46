"""inbound commands: what a platform was told we received, kept until run and answered

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.tables

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_command",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("invocation", sa.JSON(), nullable=False),
        sa.Column("answer_to", sa.JSON(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("reply", sa.JSON(), nullable=True),
        sa.Column("received_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "key", name="uq_inbound_command"),
    )
    op.create_index("ix_inbound_command_due", "inbound_command", ["claimed_until"])


def downgrade() -> None:
    op.drop_index("ix_inbound_command_due", table_name="inbound_command")
    op.drop_table("inbound_command")
