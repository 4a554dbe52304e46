"""Reminder scan cost against table size: the scan must track the due rows, not the lead count.

For each size N (and each database) this builds a fresh database through the migrations, one scanned
team holding about 10 % of the N leads — exactly `--due` of them overdue for a follow-up and `--due`
stuck in their stage, the rest not due (future follow-ups, recent stage changes, or closed) — and
about 50 other teams holding the rest, with their own due and not-due leads. It then times
`reminders.scans.run_scans` for the scanned team, each run in a transaction that is rolled back (so
every run sees the same due rows), and the two lead scans and their bare SQL separately. With the
same due rows, the largest size should cost about what the smallest does (ratio well under 2x).

Quick smoke test: `python -m bench scan --sizes 2000,4000 --due 100 --db both`."""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bench import Table, progress
from bench.http import scratch_database
from models.config import DEFAULT_STAGES, TeamConfig
from models.db import make_engine
from models.migrate import upgrade
from models.tables import Member, Team
from reminders.scans import Scan, overdue_followups, run_scans, stuck_leads

NOW = datetime(
    2025, 6, 11, 2, 0, tzinfo=UTC
)  # 10:00 on a Wednesday in Asia/Shanghai: not quiet hours
OTHER_TEAMS = 50
SCANNED_SHARE = 10  # one lead in this many belongs to the scanned team
CHUNK = 10_000
COLUMNS = (
    "team_id",
    "number",
    "name",
    "owner_id",
    "created_by_id",
    "stage",
    "status",
    "next_followup_on",
    "last_activity_at",
    "stage_changed_at",
    "closed_at",
    "created_at",
    "version",
)
STAGES = [stage.key for stage in DEFAULT_STAGES]
OVERDUE, STUCK, OPEN, CLOSED = range(4)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes",
        default="1000000,2000000",
        help="comma-separated lead counts, one fresh database each (default 1000000,2000000; "
        "quick: 100000,200000)",
    )
    parser.add_argument(
        "--due",
        type=int,
        default=1000,
        help="due rows of each kind (overdue follow-up, stuck) in the scanned team",
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the quick sizes 100000,200000 instead of --sizes (what `python -m bench` runs)",
    )
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed runs per measurement (median)"
    )
    parser.add_argument("--pg", default="127.0.0.1:5432", help="Postgres host:port (user postgres)")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print the plans of both lead scans for every size (default: largest only)",
    )


# --- data ----------------------------------------------------------------------------------------
@dataclass
class Teams:
    scanned: int
    scanned_reps: list[int]
    others: list[tuple[int, list[int]]]


@dataclass
class Pools:
    """Preformatted values to draw from, so generating millions of rows stays cheap."""

    recent: list[str]  # moments within the stale days (stage not stuck, activity recent)
    old: list[str]  # moments well past every stage's stale days
    past: list[str]  # follow-up days before the team's today: overdue when open
    future: list[str]  # follow-up days from today on: not due
    ancient: list[str]  # follow-up days long gone (closed leads)


def make_pools(ts_format: str) -> Pools:
    rng = random.Random(11)
    today = NOW.astimezone(TeamConfig().tz).date()
    stale = min(TeamConfig().stale_days_for(key) for key in STAGES)

    def moments(low_days: float, high_days: float) -> list[str]:
        return [
            (NOW - timedelta(seconds=rng.uniform(low_days, high_days) * 86400)).strftime(ts_format)
            for _ in range(5000)
        ]

    def days(low: int, high: int) -> list[str]:
        return [(today + timedelta(days=offset)).isoformat() for offset in range(low, high + 1)]

    return Pools(
        recent=moments(0.01, stale - 1),
        old=moments(stale + 1, 400),
        past=days(-30, -1),
        future=days(0, 60),
        ancient=days(-400, -31),
    )


def lead_rows(
    n: int, team_rows: int, due: int, teams: Teams, pools: Pools
) -> Iterator[list[tuple[Any, ...]]]:
    """N lead rows in chunks; the scanned team's rows spread evenly through the id order, exactly
    `due` of them overdue and `due` stuck."""
    rng = random.Random(n)
    rand, pick = rng.random, rng.choice
    kinds = (
        [OVERDUE] * due
        + [STUCK] * due
        + [OPEN if rand() < 0.6 else CLOSED for _ in range(team_rows - 2 * due)]
    )
    rng.shuffle(kinds)
    step = n / team_rows
    numbers: dict[int, int] = {}
    chunk: list[tuple[Any, ...]] = []
    k = 0
    for i in range(n):
        if k < team_rows and i == int(k * step):
            team_id, members, kind = teams.scanned, teams.scanned_reps, kinds[k]
            k += 1
        else:
            team_id, members = pick(teams.others)
            r = rand()
            kind = OVERDUE if r < 0.1 else STUCK if r < 0.2 else CLOSED if r < 0.45 else OPEN
        number = numbers.get(team_id, 0) + 1
        numbers[team_id] = number
        owner = pick(members)
        closed_at = None
        status = "open"
        if kind == OVERDUE:
            next_on, changed, activity = pick(pools.past), pick(pools.recent), pick(pools.recent)
        elif kind == STUCK:
            next_on, changed, activity = pick(pools.future), pick(pools.old), pick(pools.recent)
        elif kind == OPEN:
            next_on = None if rand() < 0.1 else pick(pools.future)
            changed, activity = pick(pools.recent), pick(pools.recent)
            if team_id != teams.scanned and rand() < 0.05:
                owner = None  # in the pool
        else:
            status = "won" if rand() < 0.4 else "lost"
            next_on = pick(pools.past) if rand() < 0.5 else pick(pools.ancient)
            changed = closed_at = activity = pick(pools.old)
        chunk.append(
            (
                team_id,
                number,
                f"Lead {number}",
                owner,
                owner or members[0],
                pick(STAGES),
                status,
                next_on,
                activity,
                changed,
                closed_at,
                pick(pools.old),
                1,
            )
        )
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def seed_teams(engine: Engine) -> Teams:
    """The scanned team (default config; an admin, a manager, four reps under them), the others."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        scanned = Team(
            platform="console", key="bench-scanned", name="Scanned", config={}, created_at=NOW
        )
        others = [
            Team(platform="console", key=f"bench-{i}", name=f"Team {i}", config={}, created_at=NOW)
            for i in range(OTHER_TEAMS)
        ]
        session.add_all([scanned, *others])
        session.flush()
        session.add(
            Member(team_id=scanned.id, user_key="u-admin", name="Ada", role="admin", created_at=NOW)
        )
        manager = Member(
            team_id=scanned.id, user_key="u-manager", name="Max", role="manager", created_at=NOW
        )
        session.add(manager)
        session.flush()
        reps = [
            Member(
                team_id=scanned.id,
                user_key=f"u-rep{i}",
                name=f"Rep {i}",
                manager_id=manager.id,
                created_at=NOW,
            )
            for i in range(4)
        ]
        crews = [
            [
                Member(
                    team_id=team.id,
                    user_key=f"u{j}",
                    name=f"Member {j}",
                    role="manager" if j == 0 else "rep",
                    created_at=NOW,
                )
                for j in range(3)
            ]
            for team in others
        ]
        session.add_all([*reps, *(m for crew in crews for m in crew)])
        session.flush()
        return Teams(
            scanned=scanned.id or 0,
            scanned_reps=[m.id or 0 for m in reps],
            others=[
                (team.id or 0, [m.id or 0 for m in crew])
                for team, crew in zip(others, crews, strict=True)
            ],
        )


def load_sqlite(engine: Engine, rows: Iterator[list[tuple[Any, ...]]]) -> None:
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        connection.execute("PRAGMA cache_size=-400000")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("BEGIN")
        sql = f"INSERT INTO lead ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        for chunk in rows:
            connection.executemany(sql, chunk)
        connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.invalidate()  # do not hand the tuned connection to the scans
        raw.close()


def load_postgres(engine: Engine, rows: Iterator[list[tuple[Any, ...]]]) -> None:
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        with connection.cursor() as cursor:
            # The rows are valid by construction: skip the per-row foreign-key triggers (superuser
            # only; the setting ends with this transaction).
            cursor.execute("SET LOCAL session_replication_role = replica")
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY lead ({', '.join(COLUMNS)}) FROM STDIN") as copy,
        ):
            for chunk in rows:
                copy.write(
                    "".join(
                        "\t".join(r"\N" if v is None else str(v) for v in row) + "\n"
                        for row in chunk
                    )
                )
        connection.commit()
    finally:
        raw.close()
    copied = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE lead")  # what autovacuum would have done by now
    progress(f"VACUUM ANALYZE lead: {time.perf_counter() - copied:.1f} s")


def plan_care(engine: Engine) -> None:
    """Every customer (won lead) has its care schedule, as winning gives it one; none is due today,
    so the scanned team's due rows stay the overdue and stuck leads."""
    postgres = engine.dialect.name == "postgresql"
    spread = "CAST(:first AS date) + (id % 120)::int" if postgres else "date(:first, (id % 120) || ' days')"
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO care_plan (team_id, lead_id, next_due_on, created_at) "
                f"SELECT team_id, id, {spread}, closed_at FROM lead WHERE status = 'won'"
            ),
            {"first": (NOW.date() + timedelta(days=1)).isoformat()},
        )
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE care_plan")
            # The checkpoint that follows a bulk load, taken now so it does not land in a timed run.
            connection.exec_driver_sql("CHECKPOINT")


# --- measuring -----------------------------------------------------------------------------------
@dataclass
class Result:
    db: str
    leads: int
    team_leads: int
    due: int
    load_s: float = 0.0
    found: str = ""
    scan_ms: float = 0.0
    overdue_ms: float = 0.0
    stuck_ms: float = 0.0
    overdue_sql_ms: float = 0.0
    stuck_sql_ms: float = 0.0
    overdue_plan: str = ""
    stuck_plan: str = ""
    scan_best_ms: float = 0.0
    overdue_access: str = (
        ""  # how the query reads its index, e.g. "Index Scan"; "" when it does not
    )
    stuck_access: str = ""
    work: str = ""
    plan_text: list[str] = field(default_factory=list)


def in_rolled_back(
    engine: Engine, team_id: int, action: Callable[[Session, Team], Any]
) -> tuple[float, Any]:
    """Run `action` in a transaction that is rolled back afterwards; time only the action."""
    gc.collect()
    with Session(engine, expire_on_commit=False) as session:
        transaction = session.begin()
        try:
            team = session.get(Team, team_id)
            assert team is not None
            gc.disable()
            start = time.perf_counter()
            outcome = action(session, team)
            return (time.perf_counter() - start) * 1000, outcome
        finally:
            gc.enable()
            transaction.rollback()


def timed_rolled_back(
    engine: Engine, team_id: int, action: Callable[[Session, Team], Any], repeats: int
) -> tuple[float, float]:
    """Median and best of `repeats` rolled-back runs (on a shared machine best shows the floor)."""
    gc.collect()
    gc.freeze()  # long-lived objects out of the collector's way: per-run collections stay cheap
    samples = [in_rolled_back(engine, team_id, action)[0] for _ in range(repeats)]
    return statistics.median(samples), min(samples)


def only(scan_function: Callable[[Scan], None]) -> Callable[[Session, Team], Any]:
    def action(session: Session, team: Team) -> Any:
        scan = Scan(session, team, NOW)
        scan_function(scan)
        return scan.report

    return action


def capture_lead_queries(engine: Engine, team_id: int) -> tuple[Any, dict[str, tuple[str, Any]]]:
    """One full scan (also the warm-up) recording the SQL of the two lead scans, with parameters."""
    seen: list[tuple[str, Any]] = []

    def record(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        _, report = in_rolled_back(
            engine, team_id, lambda session, team: run_scans(session, team, NOW)
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    queries: dict[str, tuple[str, Any]] = {}
    for statement, parameters in seen:
        flat = " ".join(statement.split())
        if not flat.startswith("SELECT") or "FROM lead" not in flat:
            continue
        if "lead.next_followup_on <" in flat:
            queries.setdefault("overdue", (statement, parameters))
        elif "lead.stage_changed_at <" in flat:
            queries.setdefault("stuck", (statement, parameters))
    return report, queries


def raw_select(engine: Engine, statement: str, parameters: Any, repeats: int) -> float:
    """Median time of the bare query (execute and fetch every row) on the driver connection."""
    with engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            cursor.execute(statement, parameters)
            cursor.fetchall()
            samples.append((time.perf_counter() - start) * 1000)
        cursor.close()
        connection.rollback()
    return statistics.median(samples)


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def explain_postgres(
    engine: Engine, statement: str, parameters: Any, index: str
) -> tuple[str, str, str, list[str]]:
    with engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters)
        plan = cursor.fetchone()[0][0]["Plan"]
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        text = [row[0] for row in cursor.fetchall()]
        cursor.close()
        connection.rollback()
    access = [
        node for node in _nodes(plan) if node.get("Relation Name") == "lead" or "Index Name" in node
    ]
    summary = ", ".join(
        f"{node['Node Type']}" + (f" {node['Index Name']}" if "Index Name" in node else "")
        for node in access
    )
    indexed = next((node["Node Type"] for node in access if node.get("Index Name") == index), "")
    heap = next((node for node in access if node.get("Relation Name") == "lead"), {})
    removed = heap.get("Rows Removed by Filter", 0) + heap.get("Rows Removed by Index Recheck", 0)
    buffers = plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
    scanned = next((node for node in access if node.get("Index Name") == index), heap)
    rows = scanned.get("Actual Rows", 0) * scanned.get("Actual Loops", 1)  # parallel loops round
    work = f"{rows} rows +{removed} filtered, {buffers} buf"
    return summary, indexed, work, text


def explain_sqlite(
    engine: Engine, statement: str, parameters: Any, index: str
) -> tuple[str, str, str, list[str]]:
    with engine.connect() as connection:
        driver = connection.connection.dbapi_connection
        details = [row[3] for row in driver.execute("EXPLAIN QUERY PLAN " + statement, parameters)]
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        driver.set_progress_handler(count, 100)
        try:
            fetched = len(driver.execute(statement, parameters).fetchall())
        finally:
            driver.set_progress_handler(None, 0)
        connection.rollback()
    summary = "; ".join(details)
    indexed = next(
        (
            detail.split(" lead ")[0] + " USING INDEX"
            for detail in details
            if detail.startswith(
                (
                    "SEARCH lead USING INDEX " + index + " ",
                    "SEARCH lead USING COVERING INDEX " + index + " ",
                )
            )
        ),
        "",
    )
    work = f"{fetched} rows, ~{steps[0] * 100 // 1000}k VM steps"
    return summary, indexed, work, [f"QUERY PLAN  {detail}" for detail in details]


def measure(db: str, n: int, due: int, args: argparse.Namespace, plans: bool) -> Result:
    team_rows = min(n, max(n // SCANNED_SHARE, 3 * due))
    result = Result(db=db, leads=n, team_leads=team_rows, due=due)
    with scratch_database(db, args.pg, "scan") as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            teams = seed_teams(engine)
            progress(f"{db} {n:,}: loading leads")
            start = time.perf_counter()
            pools = make_pools(
                "%Y-%m-%d %H:%M:%S.%f" if db == "sqlite" else "%Y-%m-%d %H:%M:%S.%f+00"
            )
            rows = lead_rows(n, team_rows, due, teams, pools)
            (load_sqlite if db == "sqlite" else load_postgres)(engine, rows)
            plan_care(engine)
            result.load_s = time.perf_counter() - start
            engine.dispose()
            progress(f"{db} {n:,}: loaded in {result.load_s:.1f} s; scanning")

            report, queries = capture_lead_queries(engine, teams.scanned)
            result.found = f"{report.overdue}/{report.stuck}"
            team = teams.scanned
            scan_all = lambda s, t: run_scans(s, t, NOW)  # noqa: E731
            result.scan_ms, result.scan_best_ms = timed_rolled_back(
                engine, team, scan_all, args.repeats
            )
            result.overdue_ms = timed_rolled_back(
                engine, team, only(overdue_followups), args.repeats
            )[0]
            result.stuck_ms = timed_rolled_back(engine, team, only(stuck_leads), args.repeats)[0]
            explain = explain_sqlite if db == "sqlite" else explain_postgres
            for kind, index in (
                ("overdue", "ix_lead_scan_followup"),
                ("stuck", "ix_lead_scan_stage"),
            ):
                if kind not in queries:
                    setattr(result, f"{kind}_plan", "query not seen")
                    continue
                statement, parameters = queries[kind]
                setattr(
                    result,
                    f"{kind}_sql_ms",
                    raw_select(engine, statement, parameters, args.repeats),
                )
                summary, access, work, text = explain(engine, statement, parameters, index)
                setattr(result, f"{kind}_plan", summary)
                setattr(result, f"{kind}_access", access)
                if kind == "overdue":
                    result.work = work
                if plans:
                    flat = " ".join(statement.split())
                    result.plan_text += [
                        f"-- {db} {n:,} leads, {kind} query: {flat}",
                        f"   params: {parameters}",
                        *(f"   {line}" for line in text),
                    ]
        finally:
            engine.dispose()
    progress(f"{db} {n:,}: scan median {result.scan_ms:.1f} ms")
    return result


def run(args: argparse.Namespace) -> Table:
    chosen = "100000,200000" if args.quick else args.sizes
    sizes = sorted(int(size.replace("_", "")) for size in chosen.split(",") if size.strip())
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    table = Table(
        title=f"Reminder scan vs table size: {args.due} overdue + {args.due} stuck due leads "
        f"in the scanned team; "
        f"times in ms, median of {args.repeats} rolled-back runs",
        columns=[
            "db",
            "leads",
            "team leads",
            "due",
            "found ovd/stuck",
            "load s",
            "scan ms",
            "best ms",
            "ratio",
            "overdue_followups",
            "stuck_leads",
            "overdue SQL",
            "SQL ratio",
            "stuck SQL",
            "overdue reads ix_lead_scan_followup",
            "stuck reads ix_lead_scan_stage",
            "overdue query work",
        ],
    )
    for db in dbs:
        results = [measure(db, n, args.due, args, args.explain or n == sizes[-1]) for n in sizes]
        base = results[0]
        for result in results:
            later = result is not base
            table.add(
                result.db,
                f"{result.leads:,}",
                f"{result.team_leads:,}",
                result.due,
                result.found,
                result.load_s,
                result.scan_ms,
                result.scan_best_ms,
                f"{result.scan_ms / base.scan_ms:.2f}x" if later else "-",
                result.overdue_ms,
                result.stuck_ms,
                result.overdue_sql_ms,
                f"{result.overdue_sql_ms / base.overdue_sql_ms:.2f}x"
                if later and base.overdue_sql_ms
                else "-",
                result.stuck_sql_ms,
                result.overdue_access or "NO",
                result.stuck_access or "NO",
                result.work,
            )
        for result in results:
            table.notes += result.plan_text
            if not result.overdue_access or not result.stuck_access:
                table.notes.append(
                    f"!! {result.db} {result.leads:,}: a scan does not read its index. "
                    f"overdue plan: {result.overdue_plan} | stuck plan: {result.stuck_plan}"
                )
    table.notes.insert(
        0,
        "ratio = this size / smallest size on the same db (target < 2x at 2x the leads); "
        "found = overdue/stuck leads the scan reported (should equal due); "
        "work: Postgres = EXPLAIN (ANALYZE, BUFFERS) of the overdue query, "
        "SQLite = rows fetched and VM steps.",
    )
    table.notes.insert(
        1,
        f"now = {NOW.isoformat()}, team today = {NOW.astimezone(TeamConfig().tz).date()}, "
        f"{OTHER_TEAMS} other teams, SQLite without ANALYZE (as deployed), "
        "Postgres after VACUUM ANALYZE lead; load average at the end "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (shared machine: see best ms).",
    )
    return table


def headline(table: Table) -> list[tuple[str, str, str, str]]:
    """For `python -m bench`'s summary: the scan-time ratio, largest size vs smallest, per db."""
    rows = []
    for row in table.rows:
        if row[8] != "-":
            ratio = float(str(row[8]).rstrip("x"))
            rows.append(
                (
                    f"scan {row[0]} {row[1]} vs smallest",
                    str(row[8]),
                    "< 2x",
                    "yes" if ratio < 2 else "NO",
                )
            )
    return rows
