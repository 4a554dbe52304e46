"""`dealbot db upgrade` (Alembic) builds exactly the schema the models describe, on SQLite and, when
DEALBOT_TEST_DATABASE_URL is set, on a fresh Postgres database of its own; it can run again, and it
can go down to nothing and back up."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from models.db import make_engine
from models.migrate import alembic_config, downgrade, upgrade
from models.tables import SQLModel
from tests.databases import POSTGRES_URL, scratch_postgres

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=pytest.mark.skipif(not POSTGRES_URL, reason="DEALBOT_TEST_DATABASE_URL is not set"),
    ),
]


@pytest.fixture(params=BACKENDS)
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database with no tables at all: a new SQLite file, or a new Postgres database
    (dealbot_conc_mig_<random>) created here and dropped afterwards."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
        yield engine
        engine.dispose()
        return
    with scratch_postgres("conc_mig") as (_url, engine):
        yield engine


def schema_differences(engine: Engine) -> list[str]:
    """What Alembic's autogenerate would still emit to bring the database to the models; types and
    server defaults are compared too. Nothing is ignored. One readable line per difference."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return [_describe(diff) for diff in compare_metadata(context, SQLModel.metadata)]


def _describe(diff: object) -> str:
    if isinstance(diff, list):  # column modifications come as a list of tuples
        return "; ".join(_describe(part) for part in diff)
    assert isinstance(diff, tuple)
    kind, *rest = diff
    names = []
    for part in rest:
        name = getattr(part, "name", None)
        if name is not None:
            table = getattr(part, "table", None)
            names.append(
                f"{table.name}.{name}" if table is not None and hasattr(part, "type") else str(name)
            )
        elif isinstance(part, str):
            names.append(part)
    return f"{kind} {' '.join(names)}".strip()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str:
    heads = ScriptDirectory.from_config(alembic_config(engine)).get_heads()
    assert len(heads) == 1, f"the migrations have several heads {heads}; merge them"
    return heads[0]


def model_tables() -> set[str]:
    return {table.name for table in SQLModel.metadata.sorted_tables}


def test_the_migrations_form_one_line(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    head_revision(engine)
    engine.dispose()


def test_upgrade_on_an_empty_database_builds_exactly_the_models(empty: Engine) -> None:
    assert inspect(empty).get_table_names() == []
    upgrade(empty)
    assert schema_differences(empty) == [], (
        "the models changed without a migration (alembic revision --autogenerate)"
    )
    assert set(inspect(empty).get_table_names()) == model_tables() | {"alembic_version"}
    assert current_revision(empty) == head_revision(empty)


def test_upgrade_again_changes_nothing_and_keeps_the_data(empty: Engine) -> None:
    upgrade(empty)
    with empty.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO team (platform, key, name, config, lead_seq, quote_seq, created_at) "
                "VALUES ('console', 'acme', 'Acme', '{}', 3, 0, :now)"
            ),
            {"now": datetime.now(UTC)},
        )
    upgrade(empty)
    upgrade(empty, "head")
    assert current_revision(empty) == head_revision(empty)
    with empty.connect() as connection:
        assert connection.execute(text("SELECT key, lead_seq FROM team")).all() == [("acme", 3)]
    assert schema_differences(empty) == []


def test_downgrade_to_base_then_upgrade_again(empty: Engine) -> None:
    upgrade(empty)
    downgrade(empty, "base")
    assert set(inspect(empty).get_table_names()) <= {"alembic_version"}
    assert current_revision(empty) is None
    upgrade(empty)
    assert current_revision(empty) == head_revision(empty)
    assert schema_differences(empty) == []
