"""messages about a decision, and edits of them: every card is kept true

`outbox_subject` remembers what each pushed message is about (a quote, a transfer request), so
that once it is decided every message about it is found and edited; `outbox.edit_of` makes an
outbox row an edit of the message another row sent.

Revision ID: 0007
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Each step only if missing: a database stamped back to an older revision (to replay a data
    # migration before it) may already have them.
    inspector = sa.inspect(op.get_bind())
    if "edit_of" not in {column["name"] for column in inspector.get_columns("outbox")}:
        op.add_column("outbox", sa.Column("edit_of", sa.Integer(), nullable=True))
        op.create_index("ix_outbox_edit_of", "outbox", ["edit_of"])
    if inspector.has_table("outbox_subject"):
        return
    op.create_table(
        "outbox_subject",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"]),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("outbox_id", "subject", name="uq_outbox_subject"),
    )
    op.create_index("ix_outbox_subject", "outbox_subject", ["team_id", "subject"])


def downgrade() -> None:
    op.drop_index("ix_outbox_subject", table_name="outbox_subject")
    op.drop_table("outbox_subject")
    op.drop_index("ix_outbox_edit_of", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("edit_of")
