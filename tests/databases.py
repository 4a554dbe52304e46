"""Scratch Postgres databases for tests that need a database of their own (an empty schema to
migrate, a million leads, several processes), beside the suite's test database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import make_url, text
from sqlalchemy.engine import Engine

from models.db import make_engine

POSTGRES_URL = os.environ.get("DEALBOT_TEST_DATABASE_URL")


@contextmanager
def scratch_postgres(tag: str) -> Iterator[tuple[str, Engine]]:
    """A new, empty database `dealbot_<tag>_<random>` on the test server: its URL and an engine.
    Dropped afterwards (with any connection still open to it), whatever happened."""
    assert POSTGRES_URL, "DEALBOT_TEST_DATABASE_URL is not set"
    name = f"dealbot_{tag}_{uuid.uuid4().hex[:10]}"
    admin = make_engine(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        yield url, engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
