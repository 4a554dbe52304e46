"""covering indexes for the digest's team-wide counts

The funnel (leads per stage and status, with their value), the stuck count (stage by stage-changed
time) and follow-ups per author in a period read only their index, not the rows (on SQLite, a
100k-lead team's digest fell from ~670 to ~400 ms).

Revision ID: 0003
Revises: 0002
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_lead_funnel', 'lead', ['team_id', 'stage', 'status', 'value'])
    op.drop_index('ix_lead_scan_stage', table_name='lead')
    op.create_index('ix_lead_scan_stage', 'lead', ['team_id', 'status', 'stage_changed_at', 'stage'])
    op.drop_index('ix_followup_team_created', table_name='followup')
    op.create_index('ix_followup_team_created', 'followup', ['team_id', 'created_at', 'author_id'])


def downgrade() -> None:
    op.drop_index('ix_followup_team_created', table_name='followup')
    op.create_index('ix_followup_team_created', 'followup', ['team_id', 'created_at'])
    op.drop_index('ix_lead_scan_stage', table_name='lead')
    op.create_index('ix_lead_scan_stage', 'lead', ['team_id', 'status', 'stage_changed_at'])
    op.drop_index('ix_lead_funnel', table_name='lead')
