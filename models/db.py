"""The database engine and the unit of work every command and job runs in."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine

from models import tables  # noqa: F401  (registers every table on SQLModel.metadata)

log = logging.getLogger("dealbot.db")


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine tuned for the backend: SQLite in WAL mode with serialized writers, or Postgres."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})
        _tune_sqlite(engine)
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _tune_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN until the first write, so two writers can
    # both read a row and then fight over it. Taking the write lock at BEGIN makes every unit of work
    # serial on one machine; conditional updates keep Postgres correct without it.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Deleted and overwritten content is zeroed in the page, not left in its free space, so
        # erased personal data cannot be read back from the file (see `purge_erased`).
        cursor.execute("PRAGMA secure_delete=ON")
        # 32 MB of page cache per connection (SQLite's default is 2 MB): a digest over a big team
        # reads much of its indexes, which then stay in memory instead of a read() per page.
        cursor.execute("PRAGMA cache_size=-32000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_schema(engine: Engine) -> None:
    """Create every table directly (tests); deployments use `dealbot db upgrade` (Alembic)."""
    SQLModel.metadata.create_all(engine)


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    """One transaction: committed when the block ends normally, rolled back on any exception."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run `action` once the session's transaction has committed (never if it rolls back)."""
    event.listen(session, "after_commit", lambda _session: action(), once=True)


def purge_erased(engine: Engine, table_names: Iterable[str]) -> bool:
    """After a committed erasure: make what it erased unreadable in the database's files too, not
    only in queries. True when nothing of it is left anywhere the database keeps rows.

    SQLite (with `secure_delete` on every connection) has zeroed the old values in the pages, but
    the write-ahead log still holds the pages as they were: a TRUNCATE checkpoint copies the log
    into the database and empties it (waiting for readers up to the busy timeout). Postgres keeps
    the old row versions as dead tuples until a VACUUM removes them; the bytes of the space they
    took stay in the pages' free space until new rows reuse it (the README says what remains)."""
    if engine.dialect.name == "sqlite":
        connection = engine.raw_connection()  # no BEGIN: a checkpoint runs outside transactions
        try:
            busy, _frames, _copied = connection.cursor().execute(
                "PRAGMA wal_checkpoint(TRUNCATE)"
            ).fetchone()
        finally:
            connection.close()
        if busy:
            log.warning("erased data stays in the write-ahead log until the next checkpoint: "
                        "a reader held it")
        return not busy
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in table_names:  # VACUUM cannot run inside a transaction
                # INDEX_CLEANUP ON: with few dead rows VACUUM would otherwise leave index entries
                # (the old phone and e-mail keys) for a later run.
                connection.exec_driver_sql(f'VACUUM (INDEX_CLEANUP ON) "{table}"')
        return True
    return False


def rewrite_files(engine: Engine) -> None:
    """Rewrite the whole database so that no free space in its files holds old data: SQLite's
    VACUUM (then its write-ahead log emptied), Postgres's VACUUM FULL of every dealbot table. For a
    database written before `secure_delete` was on, or to leave nothing in Postgres's free space;
    it takes each table's exclusive lock while it runs."""
    if engine.dialect.name == "sqlite":
        connection = engine.raw_connection()
        try:
            connection.cursor().execute("VACUUM")
        finally:
            connection.close()
        purge_erased(engine, ())
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in SQLModel.metadata.sorted_tables:
            connection.exec_driver_sql(f'VACUUM FULL "{table.name}"')
