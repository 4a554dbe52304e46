"""On Postgres with a million leads, no reminder scan and no lead list query reads the whole lead
table: each is answered through an index.

The SQL is not copied here: the real scan functions and the real `/lead …` commands run against the
big database while every SELECT they issue is captured, compiled with literal binds, and explained.
Runs only when DEALBOT_TEST_DATABASE_URL is set; it creates dealbot_scale_explain_* and drops it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ORMExecuteState, Session
from sqlmodel import Session as ModelSession
from sqlmodel import select

from commands import Dispatcher
from commands.types import Invocation
from models.clock import FixedClock
from models.config import DEFAULT_STAGES
from models.db import create_schema
from models.tables import Member, Team
from reminders.scans import run_scans
from tests.databases import POSTGRES_URL, scratch_postgres

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="DEALBOT_TEST_DATABASE_URL is not set")

LEADS = 1_000_000
TEAMS = 20  # the team under test holds 1/20 of the leads; the other 19 hold the rest
NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # Thursday 10:00 in Shanghai
REPS = ("carol", "dan", "erin", "frank")


@dataclass
class Captured:
    origin: str  # what issued it: a scan, or the command typed
    sql: str


@pytest.fixture(scope="module")
def big() -> Iterator[Engine]:
    """A fresh database migrated to head, one team (`acme`: alice admin, bob manager, four reps
    under him) among twenty, and a million leads spread over them."""
    with scratch_postgres("scale_explain") as (_url, engine):
        create_schema(engine)  # the models' tables and indexes (test_migrations: the same as head's)
        started = time.perf_counter()
        load(engine)
        print(f"\nloaded {LEADS:,} leads and analyzed in {time.perf_counter() - started:.1f} s")
        yield engine


def load(engine: Engine) -> None:
    with ModelSession(engine) as session, session.begin():
        config = {"locale": "en", "pool_return_days": 30}
        teams = [
            Team(
                platform="console",
                key="acme" if i == 0 else f"other-{i}",
                name=f"Team {i}",
                config=config if i == 0 else {},
                created_at=NOW,
            )
            for i in range(TEAMS)
        ]
        session.add_all(teams)
        session.flush()
        acme = teams[0]
        session.add(
            Member(team_id=acme.id, user_key="alice", name="alice", role="admin", created_at=NOW)
        )
        bob = Member(team_id=acme.id, user_key="bob", name="bob", role="manager", created_at=NOW)
        session.add(bob)
        session.flush()
        reps = [
            Member(team_id=acme.id, user_key=key, name=key, manager_id=bob.id, created_at=NOW)
            for key in REPS
        ]
        others = [
            Member(team_id=team.id, user_key=f"rep-{team.id}", name="rep", created_at=NOW)
            for team in teams[1:]
        ]
        session.add_all([*reps, *others])
        session.flush()
        # Four owner slots per team: acme's four reps, and each other team's one rep four times.
        slots = [(0, slot, rep.id) for slot, rep in enumerate(reps)]
        slots += [
            (index, slot, member.id)
            for index, member in enumerate(others, start=1)
            for slot in range(4)
        ]
        session.execute(
            text(
                "CREATE TEMP TABLE scale_owner (team_idx int, slot int, team_id int, member_id int)"
            )
        )
        for team_idx, slot, member_id in slots:
            session.execute(
                text("INSERT INTO scale_owner VALUES (:t, :s, :team, :m)"),
                {"t": team_idx, "s": slot, "team": teams[team_idx].id, "m": member_id},
            )
        stages = "ARRAY[" + ",".join(f"'{stage.key}'" for stage in DEFAULT_STAGES) + "]"
        # The rows are valid by construction: skip the per-row foreign-key triggers (superuser).
        session.execute(text("SET LOCAL session_replication_role = replica"))
        # Mostly not due: follow-ups ahead, recent stage changes and activity; a thin slice of
        # each team overdue (1 in 1,000 of its leads), stuck (1 in 997), untouched for 45 days
        # (1 in 500). The other teams are 60 % open; acme, the team under test, 99 %: each won
        # customer gets a care schedule on the first scan (reminders/aftersale.py), which is not
        # the point here and would take a minute.
        h = f"(g / {TEAMS})"  # the lead's number within its team, less one
        session.execute(
            text(f"""
            INSERT INTO lead (team_id, number, name, owner_id, created_by_id, stage, status,
                              next_followup_on, last_activity_at, stage_changed_at, closed_at,
                              created_at, version, norm_phone, norm_email, norm_company)
            SELECT o.team_id, {h} + 1, 'Lead ' || g,
                   CASE WHEN {h} % 23 = 0 THEN NULL ELSE o.member_id END, o.member_id,
                   ({stages})[1 + {h} % {len(DEFAULT_STAGES)}],
                   CASE WHEN g % {TEAMS} = 0 THEN
                            CASE {h} % 200 WHEN 1 THEN 'won' WHEN 2 THEN 'lost' ELSE 'open' END
                        WHEN (g * 7919) % 100 < 60 THEN 'open' WHEN (g * 7919) % 100 < 80 THEN 'won'
                        ELSE 'lost' END,
                   CASE WHEN {h} % 1000 = 0 THEN DATE '2026-11-23'
                        ELSE DATE '2026-11-27' + (g % 60)::int END,
                   CASE WHEN {h} % 500 = 3 THEN :now - interval '45 days'
                        ELSE :now - make_interval(secs => (g * 37) % (20 * 86400)) END,
                   CASE WHEN {h} % 997 = 5 THEN :now - interval '30 days'
                        ELSE :now - make_interval(secs => (g * 53) % (3 * 86400)) END,
                   NULL, :now - interval '90 days', 1,
                   '1380' || lpad(g::text, 7, '0'), 'lead' || g || '@example.com', 'company ' || g
            FROM generate_series(0::bigint, {LEADS - 1}) AS g
            JOIN scale_owner o ON o.team_idx = g % {TEAMS} AND o.slot = (g / {TEAMS}) % 4
        """),
            {"now": NOW},
        )
        session.execute(text(f"UPDATE team SET lead_seq = {LEADS // TEAMS}"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))


class Capture:
    """Every SELECT any session issues while listening, with its parameters bound into the text."""

    def __init__(self) -> None:
        self.items: list[Captured] = []
        self.origin = "?"
        self.took: dict[str, float] = {}  # origin → milliseconds it ran

    def under(self, origin: str) -> None:
        self.origin = origin

    def __call__(self, state: ORMExecuteState) -> None:
        if not state.is_select:
            return
        statement = (
            state.statement.params(state.parameters) if state.parameters else state.statement
        )
        sql = str(
            statement.compile(
                dialect=state.session.get_bind().dialect, compile_kwargs={"literal_binds": True}
            )
        )
        self.items.append(Captured(self.origin, sql))


@pytest.fixture
def captured() -> Iterator[Capture]:
    capture = Capture()
    event.listen(Session, "do_orm_execute", capture)
    try:
        yield capture
    finally:
        event.remove(Session, "do_orm_execute", capture)


def reads_lead(sql: str) -> bool:
    flat = " ".join(sql.split())
    return " FROM lead" in flat or " JOIN lead" in flat


def plan_of(engine: Engine, sql: str) -> dict[str, Any]:
    with engine.connect() as connection:
        document = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql).scalar_one()
        connection.rollback()
    return (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def lead_access(plan: dict[str, Any]) -> list[str]:
    """How the plan reads the lead table: `Index Scan ix_…`, `Bitmap Heap Scan`, `Seq Scan`."""
    found = []
    for node in nodes(plan):
        if node.get("Relation Name") == "lead" or str(node.get("Index Name", "")).startswith(
            ("ix_lead", "uq_lead", "lead_pkey")
        ):
            found.append(f"{node['Node Type']} {node.get('Index Name', '')}".strip())
    return found


def run_commands(engine: Engine, lines: list[tuple[str, str]], captured: Capture) -> None:
    dispatcher = Dispatcher(engine, FixedClock(NOW))
    for user, line in lines:
        captured.under(f"{user}: {line}")
        started = time.perf_counter()
        reply = dispatcher.dispatch(
            Invocation(
                platform="console",
                team_key="acme",
                team_name="acme",
                channel="console",
                user_key=user,
                user_name=user,
                text=line,
                received_at=NOW,
            )
        )
        captured.took[captured.origin] = (time.perf_counter() - started) * 1000
        assert reply.ok, f"{line!r} as {user} failed: {reply.text}"


def test_no_scan_or_list_query_seq_scans_a_million_leads(big: Engine, captured: Capture) -> None:
    started = time.perf_counter()
    captured.under("reminder scans (run_scans)")
    with ModelSession(big, expire_on_commit=False) as session:
        transaction = session.begin()
        team = session.exec(select(Team).where(Team.key == "acme")).one()
        report = run_scans(session, team, NOW)  # rolled back: the commands below see the same rows
        transaction.rollback()
    captured.took[captured.origin] = (time.perf_counter() - started) * 1000
    assert report.overdue > 0 and report.stuck > 0 and report.pool_warned + report.pool_returned > 0

    lists = [
        "/lead list",
        "/lead list team",
        "/lead list pool",
        "/lead list overdue",
        "/lead list won",
        "/lead list lost",
        "/lead list stage=proposal",
        "/lead list team page=3",
    ]
    run_commands(
        big,
        [
            *(("alice", line) for line in lists),
            *(("bob", line) for line in lists),
            *(
                ("carol", line)
                for line in [
                    "/lead list",
                    "/lead list mine",
                    "/lead list pool",
                    "/lead list overdue",
                    "/lead list won",
                    "/lead list stage=contacted",
                ]
            ),
            ("alice", "/lead show L7"),
            (
                "carol",
                "/lead add Fresh Co phone=13900000040 email=fresh@example.com company=Fresh",
            ),
        ],
        captured,
    )

    ran = time.perf_counter()
    checked, failures, report_lines = 0, [], []
    for item in captured.items:
        if not reads_lead(item.sql):
            continue
        plan = plan_of(big, item.sql)
        access = lead_access(plan)
        checked += 1
        flat = " ".join(item.sql.split())
        took = captured.took.get(item.origin, 0.0)
        report_lines.append(
            f"{item.origin[:44]:<45} {took:7.0f} ms  {', '.join(access) or '-':<60} {flat[:70]}"
        )
        if any(step.startswith("Seq Scan") for step in access):
            failures.append(f"{item.origin}: {access}\n    {flat}")
    print("\n" + "\n".join(report_lines))
    explained = time.perf_counter() - ran
    print(
        f"scans and commands {ran - started:.1f} s, {checked} plans explained in {explained:.1f} s"
    )
    origins = {item.origin for item in captured.items if reads_lead(item.sql)}
    assert "reminder scans (run_scans)" in origins and len(origins) >= 20, origins
    assert checked >= 30
    assert not failures, "queries that read the whole lead table:\n" + "\n".join(failures)
