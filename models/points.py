"""Process points (过程积分): what each person earned for the work the audit trail shows.

Nothing is stored. Points are scored on demand from the audit events (and, for a follow-up, the
note that the event points at: the follow-up row written in the same instant by the same person on
the same lead), under the team's current `points` settings. So a ranking can always be recomputed,
and changing a setting re-scores every period the same way.

Rules (settings in `TeamConfig.points`):
- follow-up logged: `followup` points, unless the note is empty (weight below `min_note`: letters
  and digits count 1, Chinese characters 2; fewer than three different characters is empty), or it
  repeats one by the same person on the same lead less than `burst_seconds` before, or it starts a
  burst (`burst_count` or more on one lead within `burst_seconds`: none of them earn);
- follow-up on time: `on_time` more for an earning follow-up made by the planned day, on a plan
  made on an earlier day (a plan made and kept the same day earns nothing extra);
- stage advanced: `stage` points, the first time a lead reaches a stage further along (moving back
  and forth earns once);
- quote approved: `quote_approved` points to the person who asked, when someone else approves it
  finally (automatic approvals earn nothing);
- deal won: `won` points to whoever closed it.
Events of the bot itself (no actor) and of imports earn nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from models.config import TeamConfig
from models.tables import AuditEvent, FollowUp, Member

ACTIONS = ("followup", "on_time", "stage", "quote_approved", "won")
_CHUNK = 500


@dataclass(frozen=True)
class Award:
    """Points one person earned for one action."""

    member_id: int
    action: str
    points: int
    at: datetime
    event_id: int


@dataclass
class PointsLine:
    """One person's total in a period, and how many awards of each action made it."""

    member: Member
    points: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ACTIONS, 0))


def note_weight(note: str) -> int:
    """How much a note says: letters and digits count 1, CJK characters 2; repeats say nothing."""
    meaningful = [char for char in note if char.isalnum()]
    if len(set(meaningful)) < 3:
        return 0
    return sum(2 if "\u3400" <= char <= "\u9fff" else 1 for char in meaningful)


def awards(
    session: Session, *, team_id: int, config: TeamConfig, start: datetime, end: datetime
) -> list[Award]:
    """Every award earned in [start, end), oldest first."""
    rules = config.points
    window = timedelta(seconds=rules.burst_seconds)
    lead_actions = or_(
        and_(AuditEvent.entity == "lead", col(AuditEvent.action).in_(("followup", "stage", "won"))),
        and_(AuditEvent.entity == "quote", AuditEvent.action == "approve"),
    )
    # Follow-ups just outside the period decide whether those inside it repeat or start a burst.
    events = list(
        session.exec(
            select(AuditEvent)
            .where(
                AuditEvent.team_id == team_id,
                lead_actions,
                col(AuditEvent.at) >= start - window,
                col(AuditEvent.at) < end + window,
            )
            .order_by(col(AuditEvent.at), col(AuditEvent.id))
        )
    )
    inside = [e for e in events if start <= e.at < end and e.actor_id is not None]
    found: list[Award] = []
    found += _followup_awards(
        session, team_id, config, [e for e in events if e.action == "followup"], start, end
    )
    found += _stage_awards(session, team_id, config, [e for e in inside if e.action == "stage"])
    found += _quote_awards(
        session, team_id, rules.quote_approved, [e for e in inside if e.action == "approve"]
    )
    found += [
        Award(e.actor_id, "won", rules.won, e.at, e.id or 0)
        for e in inside
        if e.action == "won" and e.actor_id is not None and rules.won
    ]
    found.sort(key=lambda award: (award.at, award.event_id, ACTIONS.index(award.action)))
    return found


def ranking(
    session: Session,
    *,
    team_id: int,
    config: TeamConfig,
    start: datetime,
    end: datetime,
    member_ids: Iterable[int] | None = None,
) -> list[PointsLine]:
    """People who earned points in [start, end), most first (then by name)."""
    wanted = set(member_ids) if member_ids is not None else None
    members = {m.id: m for m in session.exec(select(Member).where(Member.team_id == team_id))}
    lines: dict[int, PointsLine] = {}
    for award in awards(session, team_id=team_id, config=config, start=start, end=end):
        member = members.get(award.member_id)
        if member is None or (wanted is not None and award.member_id not in wanted):
            continue
        line = lines.setdefault(award.member_id, PointsLine(member=member))
        line.points += award.points
        line.counts[award.action] += 1
    return sorted(
        (line for line in lines.values() if line.points),
        key=lambda line: (-line.points, line.member.name.casefold(), line.member.id or 0),
    )


def _followup_awards(
    session: Session,
    team_id: int,
    config: TeamConfig,
    events: list[AuditEvent],
    start: datetime,
    end: datetime,
) -> list[Award]:
    rules = config.points
    if not events or not (rules.followup or rules.on_time):
        return []
    notes = _notes(session, team_id, events)
    window = timedelta(seconds=rules.burst_seconds)
    by_thread: dict[tuple[int | None, int], list[AuditEvent]] = defaultdict(list)
    for event in events:
        by_thread[(event.actor_id, event.entity_id)].append(event)
    tz = config.tz
    found = []
    for (actor_id, _lead), thread in by_thread.items():
        for index, event in enumerate(thread):
            if actor_id is None or not start <= event.at < end:
                continue
            if index and thread[index - 1].at > event.at - window:
                continue  # a repeat within the window
            burst = sum(1 for later in thread[index:] if later.at <= event.at + window)
            if rules.burst_seconds and burst >= rules.burst_count:
                continue  # the first of a burst: padding, not work
            if note_weight(notes.get(event.id or 0, "")) < max(rules.min_note, 1):
                continue
            if rules.followup:
                found.append(Award(actor_id, "followup", rules.followup, event.at, event.id or 0))
            if rules.on_time and _on_time(event, tz):
                found.append(Award(actor_id, "on_time", rules.on_time, event.at, event.id or 0))
    return found


def _notes(session: Session, team_id: int, events: list[AuditEvent]) -> dict[int, str]:
    """The note of each follow-up event: the follow-up row of the same lead, author and instant."""
    first, last = min(e.at for e in events), max(e.at for e in events)
    rows = session.exec(
        select(FollowUp)
        .where(
            FollowUp.team_id == team_id,
            col(FollowUp.created_at) >= first,
            col(FollowUp.created_at) <= last,
        )
        .order_by(col(FollowUp.id))
    )
    pending: dict[tuple[int, int, datetime], list[str]] = defaultdict(list)
    for row in rows:
        pending[(row.lead_id, row.author_id, row.created_at)].append(row.note)
    notes = {}
    for event in sorted(events, key=lambda e: e.id or 0):
        queue = pending.get((event.entity_id, event.actor_id or 0, event.at))
        if queue:
            notes[event.id or 0] = queue.pop(0)
    return notes


def _on_time(event: AuditEvent, tz: Any) -> bool:
    before = event.before or {}
    planned, touched = before.get("next_followup_on"), before.get("last_activity_at")
    if not planned or not touched:
        return False
    today = event.at.astimezone(tz).date()
    try:
        planned_on = date.fromisoformat(str(planned)[:10])
        touched_on = datetime.fromisoformat(str(touched)).astimezone(tz).date()
    except ValueError:
        return False
    return touched_on < today <= planned_on


def _stage_awards(
    session: Session, team_id: int, config: TeamConfig, events: list[AuditEvent]
) -> list[Award]:
    points = config.points.stage
    if not events or not points:
        return []
    lead_ids = sorted({e.entity_id for e in events})
    last = max(e.at for e in events)
    history: dict[int, list[AuditEvent]] = defaultdict(list)
    for chunk in _chunks(lead_ids):
        for event in session.exec(
            select(AuditEvent)
            .where(
                AuditEvent.team_id == team_id,
                AuditEvent.entity == "lead",
                col(AuditEvent.action).in_(("stage", "import")),
                col(AuditEvent.entity_id).in_(chunk),
                col(AuditEvent.at) <= last,
            )
            .order_by(col(AuditEvent.at), col(AuditEvent.id))
        ):
            history[event.entity_id].append(event)
    scored = {e.id for e in events}
    found = []
    for thread in history.values():
        reached = -1
        for event in thread:
            before = config.stage_index(str((event.before or {}).get("stage", "")))
            after = config.stage_index(str((event.after or {}).get("stage", "")))
            reached = max(reached, before)
            if after > reached and event.id in scored and event.actor_id is not None:
                found.append(Award(event.actor_id, "stage", points, event.at, event.id or 0))
            reached = max(reached, after)
    return found


def _quote_awards(
    session: Session, team_id: int, points: int, events: list[AuditEvent]
) -> list[Award]:
    final = [e for e in events if (e.after or {}).get("status") == "approved"]
    if not final or not points:
        return []
    requesters: dict[int, int | None] = {}
    for chunk in _chunks(sorted({e.entity_id for e in final})):
        for event in session.exec(
            select(AuditEvent).where(
                AuditEvent.team_id == team_id,
                AuditEvent.entity == "quote",
                AuditEvent.action == "create",
                col(AuditEvent.entity_id).in_(chunk),
            )
        ):
            requesters[event.entity_id] = event.actor_id
    found = []
    for event in final:
        requester = requesters.get(event.entity_id)
        if requester is not None and event.actor_id is not None and event.actor_id != requester:
            found.append(Award(requester, "quote_approved", points, event.at, event.id or 0))
    return found


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for index in range(0, len(ids), _CHUNK):
        yield ids[index : index + _CHUNK]
