"""`dealbot backup FILE` and `dealbot restore FILE` for the SQLite database.

A backup is taken online, while the bot runs, with SQLite's backup API in one step: it reads one
consistent snapshot (WAL lets writers go on meanwhile), so the file holds exactly the transactions
committed before it began. It is written beside FILE, checked, and then renamed into place, so a
crash never leaves half a backup under FILE's name. A restore copies a checked backup into a
database that has no data yet and refuses one that has. Postgres has its own tools: `pg_dump`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url

KEPT_WHEN_EMPTY = frozenset(
    {"alembic_version"}
)  # `dealbot db upgrade` on an empty database fills it


class BackupError(Exception):
    """The backup or restore cannot be done; says why."""


@dataclass(frozen=True)
class Copied:
    path: Path
    tables: int
    rows: int
    bytes: int


def sqlite_path(url: str) -> Path:
    """The file behind a SQLite URL; anything else is refused with the tool to use instead."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        raise BackupError(
            f"{parsed.drivername} is not SQLite: back up Postgres with pg_dump "
            "(see the README's Backups section)"
        )
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(parsed.database)


def backup(url: str, target: Path) -> Copied:
    """An online, consistent copy of the database at `url` in `target` (replaced if it exists)."""
    source_path = sqlite_path(url)
    if not source_path.exists():
        raise BackupError(f"no database at {source_path}")
    if target.resolve() == source_path.resolve():
        raise BackupError("the backup cannot be the database itself")
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(source_path, timeout=30)  # read only in effect: it only reads
    try:
        source.execute("PRAGMA busy_timeout=30000")
        with contextlib.closing(sqlite3.connect(partial)) as copy:
            source.backup(copy, pages=-1)  # one step: one read transaction, one snapshot
            copy.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
            tables, rows = _check(copy)
    except sqlite3.Error as error:
        partial.unlink(missing_ok=True)
        raise BackupError(f"backup failed: {error}") from None
    finally:
        source.close()
    os.replace(partial, target)
    return Copied(path=target, tables=tables, rows=rows, bytes=target.stat().st_size)


def restore(source: Path, url: str) -> Copied:
    """Copy the backup `source` into the empty database at `url` (created if missing)."""
    target_path = sqlite_path(url)
    if not source.exists():
        raise BackupError(f"no backup at {source}")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as backup_db:
            tables, rows = _check(backup_db)
            if not tables:
                raise BackupError(f"{source} holds no tables: not a dealbot backup")
            if target_path.exists():
                with contextlib.closing(sqlite3.connect(target_path, timeout=30)) as existing:
                    filled = _filled(existing)
                if filled:
                    raise BackupError(
                        f"{target_path} already holds data ({', '.join(filled[:5])}): "
                        "restore into an empty database"
                    )
            target_path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(sqlite3.connect(target_path, timeout=30)) as target:
                backup_db.backup(target, pages=-1)
                target.execute("PRAGMA journal_mode=WAL")  # as dealbot runs it
                _check(target)
    except sqlite3.Error as error:
        raise BackupError(f"restore failed: {error}") from None
    return Copied(path=target_path, tables=tables, rows=rows, bytes=target_path.stat().st_size)


def _tables(connection: sqlite3.Connection) -> list[str]:
    return [
        name
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master"
            " WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]


def _check(connection: sqlite3.Connection) -> tuple[int, int]:
    """Integrity-check a database; its table count and total row count."""
    verdict = connection.execute("PRAGMA integrity_check").fetchone()[0]
    if verdict != "ok":
        raise BackupError(f"integrity check failed: {verdict}")
    tables = _tables(connection)
    rows = sum(
        connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in tables
    )
    return len(tables), rows


def _filled(connection: sqlite3.Connection) -> list[str]:
    """Tables that hold rows (a schema without data, or Alembic's version alone, is empty)."""
    return [
        name
        for name in _tables(connection)
        if name not in KEPT_WHEN_EMPTY
        and connection.execute(f'SELECT 1 FROM "{name}" LIMIT 1').fetchone()
    ]
