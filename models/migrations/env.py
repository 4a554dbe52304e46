"""Alembic runs migrations on the engine the caller hands over (see `models.migrate`)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlmodel import SQLModel

from models import tables  # noqa: F401  (fills the metadata)
from models.migrate import MIGRATION_LOCK

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    # Several processes may start together on a fresh database. The lock is taken before Alembic
    # reads the current revision, so the first migrates and the others, once it has committed,
    # find the schema at head and do nothing. SQLite: our engine begins every transaction
    # IMMEDIATE, which takes the database's write lock; Postgres: an advisory lock.
    connection.begin()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
