"""withdraw the quotes and close the transfer requests of leads already closed or in the pool

Closing a lead (won, lost) or handing it to the pool now withdraws its pending quotes and closes its
open transfer request. Quotes left pending on such leads before this rule existed would otherwise
be reminded of and escalated forever; they are settled here the same way, dated when the lead was
closed (or now, for a lead in the pool).

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SETTLED_LEADS = "SELECT id FROM lead WHERE status IN ('won', 'lost') OR owner_id IS NULL"
BECAUSE = (
    "'lead:' || (SELECT CASE WHEN lead.status = 'open' THEN 'pool' ELSE lead.status END "
    "FROM lead WHERE lead.id = {table}.lead_id)"
)
CLOSED_AT = "SELECT lead.closed_at FROM lead WHERE lead.id = {table}.lead_id"
WHEN = f"COALESCE(({CLOSED_AT}), CURRENT_TIMESTAMP)"


def upgrade() -> None:
    op.execute(
        "UPDATE approval_step SET status = 'withdrawn' WHERE status IN ('waiting', 'queued') "
        "AND quote_id IN (SELECT id FROM quote WHERE status = 'pending' "
        f"AND lead_id IN ({SETTLED_LEADS}))"
    )
    op.execute(
        f"UPDATE quote SET status = 'withdrawn', decision_note = {BECAUSE.format(table='quote')}, "
        f"decided_at = {WHEN.format(table='quote')}, version = version + 1 "
        f"WHERE status = 'pending' AND lead_id IN ({SETTLED_LEADS})"
    )
    op.execute(
        "UPDATE transfer_request SET status = 'stale', "
        f"decision_note = {BECAUSE.format(table='transfer_request')}, "
        f"decided_at = {WHEN.format(table='transfer_request')}, version = version + 1 "
        f"WHERE status = 'pending' AND lead_id IN ({SETTLED_LEADS})"
    )


def downgrade() -> None:
    # Nothing to undo in the schema; a withdrawn quote stays withdrawn.
    pass
