"""Processes started together on a fresh database migrate it once; the others wait and go on. A
process refuses a schema newer than its code, with a message that says what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from models.db import make_engine
from models.migrate import alembic_config
from tests.databases import POSTGRES_URL, scratch_postgres

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=pytest.mark.skipif(not POSTGRES_URL, reason="DEALBOT_TEST_DATABASE_URL is not set"),
    ),
]
PROCESSES = 6


@pytest.fixture(params=BACKENDS)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with scratch_postgres("migrate_lock") as (url, engine):
        engine.dispose()
        yield url


def _dealbot(*args: str, url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DEALBOT_DATABASE_URL": url}
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _head() -> str:
    engine = make_engine("sqlite://")
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    return head


def _versions(url: str) -> list[str]:
    engine = make_engine(url)
    with engine.connect() as connection:
        versions = connection.scalars(text("SELECT version_num FROM alembic_version")).all()
    engine.dispose()
    return list(versions)


def test_processes_started_together_migrate_once_and_all_come_up(fresh_url: str) -> None:
    started = [_dealbot("db", "upgrade", url=fresh_url) for _ in range(PROCESSES)]
    results = [(*process.communicate(timeout=120), process.returncode) for process in started]

    failures = [(code, err[-600:]) for _out, err, code in results if code != 0]
    assert failures == []
    assert all("up to date" in out for out, _err, _code in results)
    assert _versions(fresh_url) == [_head()]


def test_a_schema_newer_than_the_code_is_refused_with_what_to_do(fresh_url: str) -> None:
    upgraded = _dealbot("db", "upgrade", url=fresh_url)
    _out, err = upgraded.communicate(timeout=120)
    assert upgraded.returncode == 0, err
    engine = make_engine(fresh_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    engine.dispose()

    for args in (("worker", "--once"), ("db", "upgrade")):
        process = _dealbot(*args, url=fresh_url)
        out, err = process.communicate(timeout=120)
        assert process.returncode != 0
        message = out + err
        assert "from_the_future" in message
        assert "newer" in message
        assert "Traceback" not in message
    assert _versions(fresh_url) == ["from_the_future"]  # left as it was
