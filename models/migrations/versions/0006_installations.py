"""installations: credentials granted through a platform's OAuth flow (sealed), and OAuth states

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.tables

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "installation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("team_key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("enterprise_key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("installer_key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("installed_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "team_key", name="uq_installation_team"),
    )
    op.create_table(
        "oauth_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nonce", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("expires_at", models.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("nonce", name="uq_oauth_state_nonce"),
    )
    op.create_index("ix_oauth_state_expires", "oauth_state", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_oauth_state_expires", table_name="oauth_state")
    op.drop_table("oauth_state")
    op.drop_table("installation")
