"""Erased means erased: after `/lead forget`, the customer's phone, e-mail and name are gone from
the bytes of every file the bot keeps (the SQLite database, its write-ahead log and shared memory,
the files the console wrote), not only from what a query returns."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from models.clock import FixedClock
from models.db import create_schema, make_engine, rewrite_files
from models.privacy import touched_tables
from tests.chat import Chat
from tests.databases import POSTGRES_URL, scratch_postgres
from tests.test_cli import clean_env, dealbot_executable

PHONE, EMAIL, CONTACT = "139-4417-2851", "zhu.bajie@huaguo.example", "Zhu Bajie"
CHINESE_CONTACT = "猪八戒"


def spellings(*values: str) -> list[bytes]:
    """Every way a value can lie in a file: UTF-8, and JSON's \\u escapes of non-ASCII text."""
    found: list[bytes] = []
    for value in values:
        found.append(value.encode())
        escaped = json.dumps(value)[1:-1].encode()
        if escaped != value.encode():
            found.append(escaped)
    return found


# The phone as typed and as stored normalised; the e-mail's local part; both names.
GONE = spellings(PHONE, "13944172851", "4417-2851", "zhu.bajie", "Zhu Bajie", CHINESE_CONTACT)


def _busy_customer(chat: Chat) -> None:
    """A customer whose details travel through every kind of record: the lead, follow-ups and a
    quote quoting them, an edit, an approval card pushed to the manager, the command log."""
    for line in [
        "/team config locale=en",
        "[bob] /help",
        "/team role @bob manager",
        "[carol] /help",
        f"[carol] /lead add Bajie Farms contact={CONTACT} phone={PHONE} email={EMAIL} value=2m",
        f"[carol] /follow L1 met {CONTACT}, call {PHONE} or mail {EMAIL} next=tomorrow",
        f"[carol] /follow L1 {CHINESE_CONTACT} wants the price by mail {EMAIL} next=+3d",
        f"[carol] /lead edit L1 contact={CHINESE_CONTACT}",
        f"[carol] /quote L1 800k discount=5% sent to {EMAIL}, ring {PHONE} first",
        "[carol] /lead show L1",
    ]:
        assert chat.reply(line).ok, line


def _sqlite_files(path: Path) -> list[Path]:
    """The database file and the write-ahead log and shared memory SQLite keeps beside it."""
    return [path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")]


def _residue(files: list[Path]) -> dict[str, list[str]]:
    """Which of the erased values each file still holds, byte for byte."""
    left: dict[str, list[str]] = {}
    for path in files:
        data = path.read_bytes() if path.exists() else b""
        found = [value.decode(errors="replace") for value in GONE if value in data]
        if found:
            left[path.name] = found
    return left


def test_a_forgotten_customer_is_in_no_byte_of_the_sqlite_files(
    tmp_path: Path, clock: FixedClock
) -> None:
    path = tmp_path / "dealbot.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    chat = Chat(engine, clock)
    _busy_customer(chat)
    files = _sqlite_files(path)
    assert _residue(files), "the scenario must first write the customer's details to the files"

    answer = chat.say("/lead forget L1")
    assert "personal data is erased" in answer
    # The admin is told what lies beyond the bot's reach.
    assert "exports and backups made before, and messages already delivered in chats" in answer
    # The bot goes on: another customer comes in, reads happen, before anyone looks at the files.
    assert chat.reply("[carol] /lead add Other Co phone=137-0000-0000").ok
    assert chat.reply("[carol] /lead show L1").ok

    assert _residue(files) == {}
    engine.dispose()  # and after the bot stops, which checkpoints what is left in the log
    assert _residue(files) == {}


def test_dealbot_db_vacuum_clears_what_an_older_version_left_in_free_space(
    tmp_path: Path, clock: FixedClock
) -> None:
    path = tmp_path / "dealbot.db"
    engine = make_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _as_before_secure_delete(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA secure_delete=OFF")

    create_schema(engine)
    chat = Chat(engine, clock)
    _busy_customer(chat)
    assert "personal data is erased" in chat.say("/lead forget L1")
    engine.dispose()
    assert _residue([path]), "without secure_delete the old values stay in the file's free space"

    done = subprocess.run(
        [dealbot_executable(), "db", "vacuum", "--db", f"sqlite:///{path}"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "database rewritten" in done.stdout
    files = _sqlite_files(path)
    assert _residue(files) == {}


def _row_versions_holding(
    engine: Engine, tables: list[str], *, free_space_too: bool = False
) -> dict[str, list[str]]:
    """Which erased values a row version (live or dead) or an index entry of each table still
    holds, read from the raw pages with pageinspect — what a query can no longer see included.
    With `free_space_too`, every byte of every page counts, unused space included."""
    left: dict[str, list[str]] = {}
    with engine.connect() as connection:
        relations = connection.execute(
            text(
                "SELECT c.relname, c.relkind FROM pg_class c"
                " LEFT JOIN pg_index i ON i.indexrelid = c.oid"
                " WHERE c.relname = ANY(:tables)"
                "    OR (c.relkind = 'i' AND i.indrelid::regclass::text = ANY(:tables))"
            ),
            {"tables": tables},
        ).all()
        for name, kind in relations:
            blocks = connection.execute(
                text("SELECT pg_relation_size(CAST(:name AS regclass)) / 8192"), {"name": name}
            ).scalar_one()
            items = (
                "SELECT t_data AS data FROM heap_page_items(get_raw_page(:name, :block))"
                if kind == "r"
                else "SELECT decode(replace(data, ' ', ''), 'hex') AS data"
                " FROM bt_page_items(get_raw_page(:name, :block))"
            )
            first = 0 if kind == "r" else 1  # a btree's block 0 is its metapage
            if free_space_too:
                items, first = "SELECT get_raw_page(:name, :block) AS data", 0
            for block in range(first, blocks):
                for value in GONE:
                    found = connection.execute(
                        text(
                            f"SELECT count(*) FROM ({items}) AS item"
                            " WHERE position(:value IN item.data) > 0"
                        ),
                        {"name": name, "block": block, "value": value},
                    ).scalar_one()
                    if found:
                        left.setdefault(name, []).append(value.decode(errors="replace"))
    return left


@pytest.mark.skipif(not POSTGRES_URL, reason="needs DEALBOT_TEST_DATABASE_URL (Postgres)")
def test_on_postgres_no_row_version_or_index_entry_keeps_a_forgotten_customer(
    clock: FixedClock,
) -> None:
    tables = touched_tables()
    with scratch_postgres("erasure") as (_url, engine):
        create_schema(engine)
        with engine.begin() as connection:
            try:
                connection.execute(text("CREATE EXTENSION IF NOT EXISTS pageinspect"))
            except Exception as error:  # not installed, or not a superuser
                pytest.skip(f"pageinspect is not available: {error}")
        with engine.begin() as connection:  # autovacuum must not do the work for the bot here
            for table in tables:
                connection.execute(text(f'ALTER TABLE "{table}" SET (autovacuum_enabled = off)'))
        chat = Chat(engine, clock)
        _busy_customer(chat)
        assert _row_versions_holding(engine, tables), "the scenario must write the details first"

        assert "personal data is erased" in chat.say("/lead forget L1")

        assert _row_versions_holding(engine, tables) == {}
        # What VACUUM leaves — bytes in the pages' unused space, which no query reaches — goes
        # when `dealbot db vacuum` rewrites the tables.
        rewrite_files(engine)
        assert _row_versions_holding(engine, tables, free_space_too=True) == {}
