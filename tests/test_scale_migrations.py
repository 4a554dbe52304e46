"""Every migration, generically: the schema is built from empty one revision at a time, and for
every revision a database holding rows written at that revision (plain SQL into the tables that
exist there) is upgraded to head with every row intact. When a revision lands, it is covered: the
list of revisions comes from the script directory. SQLite always; Postgres too when
DEALBOT_TEST_DATABASE_URL is set (a database of its own, dealbot_scale_mig_*, dropped after)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, Table, insert, select
from sqlalchemy.engine import Connection, Engine

import models.migrate
from models.db import make_engine
from models.migrate import upgrade
from models.tables import SQLModel
from tests.databases import POSTGRES_URL, scratch_postgres

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=pytest.mark.skipif(not POSTGRES_URL, reason="DEALBOT_TEST_DATABASE_URL is not set"),
    ),
]
ROWS_PER_TABLE = 3
MOMENT = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
# Values a real row would hold, for columns whose later migrations may start checking them.
REALISTIC: dict[str, Any] = {
    "platform": "console",
    "role": "rep",
    "target_kind": "member",
    "stage": "lead",
    "month": "2026-11",
    "locale": "en",
    "last_locale": "en",
    "via": "call",
}
STATUS = {"lead": "open", "outbox": "pending", "quote": "pending", "approval_step": "waiting"}


def revisions() -> list[str]:
    """Every revision in the script directory, oldest first."""
    script = ScriptDirectory(str(Path(models.migrate.__file__).parent / "migrations"))
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


@pytest.fixture(params=BACKENDS)
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'migrations.db'}")
        yield engine
        engine.dispose()
        return
    with scratch_postgres("scale_mig") as (_url, engine):
        yield engine


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def reflected(engine: Engine) -> MetaData:
    metadata = MetaData()
    metadata.reflect(engine)
    return metadata


# --- rows written at an old revision --------------------------------------------------------------
def value_for(
    table: Table, column: Column[Any], index: int, written: dict[str, list[dict[str, Any]]]
) -> Any:
    """A valid value for any column: a key of a row written before, or a plain value of its type."""
    for foreign_key in column.foreign_keys:
        target = foreign_key.column.table.name
        if target == table.name or not written.get(target):
            return None  # a self-reference (a member's manager) starts empty
        return written[target][index % len(written[target])][foreign_key.column.name]
    if column.name == "status" and table.name in STATUS:
        return STATUS[table.name]
    if column.name in REALISTIC:
        return REALISTIC[column.name]
    try:
        kind = column.type.python_type
    except NotImplementedError:
        kind = str
    if kind is bool:
        return False
    if kind is int:
        return index + 1  # numbers are unique within their team: 1, 2, 3
    if kind is float:
        return 1.5 + index
    if kind is Decimal:
        return Decimal("1.50") + index
    if kind is datetime:
        return MOMENT + timedelta(minutes=index)
    if kind is date:
        return date(2026, 11, 26) + timedelta(days=index)
    if kind is dict or kind is list:
        return {"seeded": index}
    if kind is bytes:
        return b"seeded"
    length = getattr(column.type, "length", None) or 200
    return f"{table.name}-{column.name}-{index}"[-length:]


def generated(table: Table, column: Column[Any]) -> bool:
    """Whether the database numbers this column itself: a table's one integer key. A key of
    several columns, or of text, is written like any other value."""
    try:
        integer = column.type.python_type is int
    except NotImplementedError:
        integer = False
    return column.primary_key and integer and len(table.primary_key.columns) == 1


def write_rows(connection: Connection, metadata: MetaData) -> dict[str, list[dict[str, Any]]]:
    written: dict[str, list[dict[str, Any]]] = {}
    for table in metadata.sorted_tables:
        if table.name == "alembic_version":
            continue
        written[table.name] = []
        for index in range(ROWS_PER_TABLE):
            values = {
                column.name: value_for(table, column, index, written)
                for column in table.columns
                if not generated(table, column)
            }
            key = connection.execute(
                insert(table).values(values).returning(*table.primary_key.columns)
            ).one()
            written[table.name].append({**values, **key._mapping})
    return written


def read_rows(engine: Engine, names: set[str]) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """Every row of the named tables, by primary key, as the database hands it back."""
    metadata = reflected(engine)
    found: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    with engine.connect() as connection:
        for name in names:
            table = metadata.tables.get(name)
            if table is None:
                continue
            keys = [column.name for column in table.primary_key.columns]
            found[name] = {
                tuple(row[k] for k in keys): dict(row)
                for row in connection.execute(select(table)).mappings()
            }
    return found


# --- the tests ----------------------------------------------------------------------------------
def test_the_schema_builds_from_empty_one_revision_at_a_time(empty: Engine) -> None:
    for revision in revisions():
        upgrade(empty, revision)
        assert current(empty) == revision
    assert differences(empty) == [], "head does not match the models: a migration is missing"


@pytest.mark.parametrize("start", revisions(), ids=[f"{r}->head" for r in revisions()])
def test_rows_written_at_a_revision_survive_the_upgrade_to_head(empty: Engine, start: str) -> None:
    upgrade(empty, start)
    metadata = reflected(empty)
    with empty.begin() as connection:
        written = write_rows(connection, metadata)
    assert all(len(rows) == ROWS_PER_TABLE for rows in written.values())
    before = read_rows(empty, set(written))

    upgrade(empty, "head")

    assert current(empty) == revisions()[-1]
    after = read_rows(empty, set(written))
    for name, rows in before.items():
        assert name in after, f"table {name} (with rows) was dropped by a later migration"
        assert set(after[name]) == set(rows), f"rows of {name} were lost"
        for key, old in rows.items():
            kept = {column: value for column, value in after[name][key].items() if column in old}
            assert kept == {column: old[column] for column in kept}, f"{name} {key} changed"
