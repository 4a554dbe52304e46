"""Follow-ups: what happened with a customer, how, and when to talk next."""

from __future__ import annotations

from datetime import date

from models.errors import DomainError
from models.horizon import require_plannable
from models.leads import guarded_update
from models.permissions import require_change
from models.scope import Scope
from models.tables import FollowUp, Lead

CHANNELS = ("call", "visit", "wechat", "email", "meeting")


def log_followup(scope: Scope, lead: Lead, *, note: str, via: str | None, next_on: date | None,
                 clear_next: bool = False) -> FollowUp:
    """Record a follow-up; it becomes the lead's last activity. A `next_on` plans the next date;
    without one the planned date stays, unless `clear_next` clears it."""
    require_change(scope.session, scope.actor, lead)
    if lead.status != "open":
        raise DomainError("lead.closed", lead=lead.number, status=lead.status)
    if via is not None and via not in CHANNELS:
        raise DomainError("followup.bad_via", via=via)
    if next_on is not None and next_on < scope.today:
        raise DomainError("followup.next_in_past", date=next_on)
    if next_on is not None:
        require_plannable(next_on, scope.today)
    # Kept as the database has it (not as we read it, which a racing plan may have changed); named
    # all the same, so that the audit trail records the plan this follow-up met.
    kept = next_on is None and not clear_next
    planned = {"next_followup_on": Lead.next_followup_on if kept else next_on}
    # Conditional on the version read, so a follow-up racing `/lead won` cannot reopen a next date.
    guarded_update(scope, lead, action="followup", extra_where=Lead.status == "open", same_version=False,
                   **planned, snoozed_until=None, last_activity_at=scope.now)
    followup = FollowUp(team_id=scope.team.id or 0, lead_id=lead.id or 0, author_id=scope.actor.id or 0,
                        note=note, via=via, next_on=next_on, created_at=scope.now)
    scope.session.add(followup)
    scope.session.flush()
    return followup


def plan_next(scope: Scope, lead: Lead, next_on: date | None) -> None:
    """Plan the next follow-up (None: clear it) without logging one (nothing happened with the
    customer yet)."""
    require_change(scope.session, scope.actor, lead)
    if lead.status != "open":
        raise DomainError("lead.closed", lead=lead.number, status=lead.status)
    if next_on is not None and next_on < scope.today:
        raise DomainError("followup.next_in_past", date=next_on)
    guarded_update(scope, lead, action="plan", extra_where=Lead.status == "open",
                   same_version=False, next_followup_on=next_on, last_activity_at=scope.now)
