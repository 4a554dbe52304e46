"""Digest time for a big team: 100 reps, 100k leads, 1M follow-ups (and quotes waiting, decided).

Each database is fresh; the rows are generated inside the database (`generate_series` on Postgres,
a recursive CTE on SQLite). Timed, median of `--repeats` runs, each in a transaction rolled back:
`build_digest` (the queries) and `write_digest` (queries, wording, the funnel chart PNG and the
outbox row: what the worker does at digest time), for the daily and the weekly digest.

Quick look: `python -m bench digest --db sqlite --leads 10000 --followups 100000`."""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bench import Table, progress
from bench.http import prepare_schema, scratch_database
from models.config import DEFAULT_STAGES, TeamConfig
from models.db import make_engine
from models.reports import build_digest
from models.tables import ApprovalStep, Member, Team
from reminders.digests import latest_moments, write_digest

NOW = datetime(2026, 11, 30, 10, 5, tzinfo=UTC)  # Monday 18:05 in Shanghai: both digests are due
REPS, MANAGERS = 100, 5
QUOTES = 5_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--followups", type=int, default=1_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs per measurement (median)"
    )
    parser.add_argument("--pg", default="127.0.0.1:5432", help="Postgres host:port (user postgres)")
    parser.add_argument("--quick", action="store_true", help="Postgres only (the sizes stay full)")


class Dialect:
    """The few SQL expressions that differ between SQLite and Postgres for generating rows."""

    def __init__(self, name: str, count: int) -> None:
        self.name = name
        self.count = count

    def series(self) -> tuple[str, str]:
        """(prefix, FROM clause) producing x = 0 … count-1."""
        if self.name == "postgresql":
            return "", f"FROM generate_series(0::bigint, {self.count - 1}) AS g(x)"
        return (
            "WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL "
            f"SELECT x + 1 FROM g WHERE x < {self.count - 1}) ",
            "FROM g",
        )

    def ago(self, seconds: str) -> str:
        if self.name == "postgresql":
            return f"(CAST(:now AS timestamptz) - make_interval(secs => ({seconds})))"
        return f"(strftime('%Y-%m-%d %H:%M:%S', :epoch - ({seconds}), 'unixepoch') || '.000000')"

    def day(self, offset: str) -> str:
        if self.name == "postgresql":
            return f"(CAST(:today AS date) + ({offset})::int)"
        return f"date(:today, ({offset}) || ' days')"


def seed(engine: Engine, leads: int, followups: int) -> int:
    """The team, its people, and every generated row; returns the team id."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        team = Team(
            platform="console",
            key="bench-digest",
            name="Big team",
            created_at=NOW - timedelta(days=400),
            config={"locale": "en", "digest_channel": "C-digest"},
            channel="C-digest",
        )
        session.add(team)
        session.flush()
        session.add(
            Member(
                team_id=team.id,
                user_key="admin",
                name="Admin",
                role="admin",
                created_at=team.created_at,
            )
        )
        managers = [
            Member(
                team_id=team.id,
                user_key=f"m{i}",
                name=f"Manager {i}",
                role="manager",
                created_at=team.created_at,
            )
            for i in range(MANAGERS)
        ]
        session.add_all(managers)
        session.flush()
        reps = [
            Member(
                team_id=team.id,
                user_key=f"r{i}",
                name=f"Rep {i:03d}",
                role="rep",
                manager_id=managers[i % MANAGERS].id,
                created_at=team.created_at,
            )
            for i in range(REPS)
        ]
        session.add_all(reps)
        session.flush()
        team_id, first_rep = team.id or 0, reps[0].id or 0
    dialect = engine.dialect.name
    today = NOW.astimezone(TeamConfig().tz).date()
    values = {
        "now": NOW,
        "epoch": int(NOW.timestamp()),
        "today": today.isoformat(),
        "team": team_id,
        "rep": first_rep,
    }
    stages = [stage.key for stage in DEFAULT_STAGES]
    stage_case = "CASE " + " ".join(
        f"WHEN x % {len(stages)} = {i} THEN '{key}'" for i, key in enumerate(stages)
    )
    with engine.begin() as connection:
        if dialect == "postgresql":
            # The rows are valid by construction: skip the per-row foreign-key triggers (superuser).
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        sql = Dialect(dialect, leads)
        prefix, source = sql.series()
        share = "(x * 7) % 100"
        status = f"CASE WHEN {share} < 70 THEN 'open' WHEN {share} < 85 THEN 'won' ELSE 'lost' END"
        connection.execute(
            text(f"""
            {prefix}INSERT INTO lead (team_id, number, name, owner_id, created_by_id, stage,
                              status, value, won_amount, next_followup_on, last_activity_at,
                              stage_changed_at, closed_at,
                              created_at, version)
            SELECT :team, x + 1, 'Lead ' || x, :rep + x % {REPS}, :rep + x % {REPS},
                   {stage_case} END, {status},
                   100000 + (x % 50) * 1000000,
                   CASE WHEN (x * 7) % 100 BETWEEN 70 AND 84 THEN 100000 + (x % 50) * 1000000 END,
                   {sql.day("(x * 13) % 60 - 20")}, {sql.ago("(x * 7919) % (30 * 86400)")},
                   {sql.ago("(x * 104729) % (45 * 86400)")},
                   CASE WHEN (x * 7) % 100 >= 70 THEN {sql.ago("(x * 31) % (120 * 86400)")} END,
                   {sql.ago("(x * 6151) % (180 * 86400)")}, 1
            {source}
        """),
            values,
        )
        first_lead = connection.execute(text("SELECT min(id) FROM lead")).scalar_one()
        progress(f"digest {dialect}: {leads:,} leads")
        prefix, source = Dialect(dialect, followups).series()
        connection.execute(
            text(f"""
            {prefix}INSERT INTO followup (team_id, lead_id, author_id, note, via, created_at)
            SELECT :team, :lead + x % {leads}, :rep + (x % {leads}) % {REPS},
                   'called about the offer', 'call',
                   {Dialect(dialect, 0).ago("(x * 7919) % (90 * 86400)")}
            {source}
        """),
            {**values, "lead": first_lead},
        )
        progress(f"digest {dialect}: {followups:,} follow-ups")
        prefix, source = Dialect(dialect, QUOTES).series()
        quote_status = (
            "CASE WHEN x % 10 < 2 THEN 'pending' WHEN x % 10 < 8 THEN 'approved' "
            "ELSE 'rejected' END"
        )
        connection.execute(
            text(f"""
            {prefix}INSERT INTO quote (team_id, number, lead_id, requester_id, amount, discount_bp,
                               status,
                               levels_required, current_level, decided_at, created_at, version)
            SELECT :team, x + 1, :lead + (x * 97) % {leads}, :rep + ((x * 97) % {leads}) % {REPS},
                   8000000, 0, {quote_status}, 1, CASE WHEN x % 10 < 2 THEN 1 ELSE 0 END,
                   CASE WHEN x % 10 >= 2 THEN {sql.ago("(x * 53) % (20 * 86400)")} END,
                   {sql.ago("(x * 59) % (30 * 86400)")}, 1
            {source}
        """),
            {**values, "lead": first_lead},
        )
        needed = ", needed" if "needed" in ApprovalStep.__table__.c else ""
        connection.execute(
            text(f"""
            INSERT INTO approval_step (quote_id, level, role, status, waiting_since,
                                       escalations{needed})
            SELECT id, 1, 'manager', 'waiting', created_at, 0{", 1" if needed else ""}
            FROM quote WHERE status = 'pending'
        """)
        )
        # Every customer has its care schedule (a won lead gets one when won), due within ±60 days.
        connection.execute(
            text(f"""
            INSERT INTO care_plan (team_id, lead_id, next_due_on, created_at)
            SELECT team_id, id, {sql.day("(number * 37) % 120 - 60")}, :now
            FROM lead WHERE team_id = :team AND status = 'won'
        """),
            values,
        )
        connection.execute(
            text(f"UPDATE team SET lead_seq = {leads}, quote_seq = {QUOTES} WHERE id = :team"),
            values,
        )
    if dialect == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
    return team_id


def timed(
    engine: Engine, team_id: int, action: Callable[[Session, Team], Any], repeats: int
) -> tuple[float, Any]:
    """Median milliseconds of `action` over `repeats` runs, each rolled back; the last outcome."""
    samples, outcome = [], None
    for _ in range(repeats):
        gc.collect()
        with Session(engine, expire_on_commit=False) as session:
            transaction = session.begin()
            team = session.get(Team, team_id)
            assert team is not None
            started = time.perf_counter()
            outcome = action(session, team)
            samples.append((time.perf_counter() - started) * 1000)
            transaction.rollback()
    return statistics.median(samples), outcome


def slowest_queries(
    engine: Engine, team_id: int, config: TeamConfig, period: Any, top: int = 3
) -> list[str]:
    """The slowest statements of one `build_digest`, shortened: where its time goes."""
    seen: list[tuple[float, str]] = []

    def before(
        conn: Any, _cursor: Any, _statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        conn.info["started"] = time.perf_counter()

    def after(
        conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        flat = re.sub(r"^SELECT .*? FROM ", "SELECT … FROM ", " ".join(statement.split()))
        seen.append(((time.perf_counter() - conn.info["started"]) * 1000, flat))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        timed(
            engine,
            team_id,
            lambda s, t: build_digest(s, team_id=team_id, config=config, period=period, now=NOW),
            1,
        )
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    return [f"{ms:.0f} ms: {sql[:160]}" for ms, sql in sorted(seen, reverse=True)[:top]]


def measure(db: str, args: argparse.Namespace) -> tuple[list[tuple[Any, ...]], list[str]]:
    rows, notes = [], []
    with scratch_database(db, args.pg, "digest") as url:
        prepare_schema(url)
        engine = make_engine(url)
        try:
            started = time.perf_counter()
            team_id = seed(engine, args.leads, args.followups)
            load_s = time.perf_counter() - started
            config = TeamConfig(locale="en", digest_channel="C-digest")
            moments = latest_moments(config, NOW)
            timed(
                engine, team_id, lambda s, t: write_digest(s, t, NOW, "daily"), 1
            )  # warm-up: imports, fonts
            for kind in ("daily", "weekly"):
                period = moments[kind][1]

                def build(session: Session, team: Team, period: Any = period) -> Any:
                    return build_digest(
                        session, team_id=team.id or 0, config=config, period=period, now=NOW
                    )

                build_ms, digest = timed(engine, team_id, build, args.repeats)
                write_ms, written = timed(
                    engine, team_id, lambda s, t, k=kind: write_digest(s, t, NOW, k), args.repeats
                )
                assert written, f"the {kind} digest was not written"
                rows.append(
                    (
                        db,
                        kind,
                        f"{args.leads:,}",
                        f"{args.followups:,}",
                        round(load_s, 1),
                        digest.followups,
                        digest.new_leads,
                        build_ms,
                        write_ms,
                    )
                )
                progress(f"digest {db} {kind}: build {build_ms:.0f} ms, write {write_ms:.0f} ms")
                notes += [
                    f"{db} {kind}, slowest query {line}"
                    for line in slowest_queries(engine, team_id, config, period)
                ]
        finally:
            engine.dispose()
    return rows, notes


def run(args: argparse.Namespace) -> Table:
    dbs = ["postgres"] if args.quick else ["sqlite", "postgres"] if args.db == "both" else [args.db]
    table = Table(
        title=f"Digest for a {REPS}-rep team ({MANAGERS} managers): times in ms, median of "
        f"{args.repeats} rolled-back runs",
        columns=[
            "db",
            "digest",
            "leads",
            "follow-ups",
            "load s",
            "follow-ups in period",
            "new leads in period",
            "build_digest ms",
            "write_digest ms",
        ],
    )
    notes = []
    for db in dbs:
        rows, slowest = measure(db, args)
        for row in rows:
            table.add(*row)
        notes += slowest
    table.notes.append(
        f"now = {NOW.isoformat()} (Monday 18:05 Shanghai); write_digest = build_digest + "
        "wording + funnel chart PNG + outbox row; target: digest < 500 ms."
    )
    table.notes.append(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}.")
    table.notes += notes
    return table


def headline(table: Table) -> list[tuple[str, str, str, str]]:
    """For `python -m bench`'s summary: each digest's full time against the 500 ms target."""
    return [
        (
            f"{row[1]} digest on {row[0]} (write_digest)",
            f"{float(row[8]):.0f} ms",
            "< 500 ms",
            "yes" if float(row[8]) < 500 else "NO",
        )
        for row in table.rows
    ]
