"""Schema migrations (Alembic), run from code: `dealbot db upgrade` and tests call `upgrade`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

# The Postgres advisory lock every upgrade holds while it migrates ("dealbot" in ASCII).
MIGRATION_LOCK = 0x6465616C626F74


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer dealbot than this one: running would damage it."""

    def __init__(self, found: str, known: str | None) -> None:
        super().__init__(
            f"the database's schema is at revision {found!r}, newer than this version of dealbot "
            f"knows (its newest is {known!r}): upgrade dealbot on this machine, or point it at "
            "another database"
        )
        self.found = found


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["engine"] = engine
    return config


def refuse_newer_schema(engine: Engine) -> None:
    """Raise `SchemaTooNew` when the database holds a revision this code does not know."""
    script = ScriptDirectory.from_config(alembic_config(engine))
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    known = {revision.revision for revision in script.walk_revisions()}
    for revision in current:
        if revision not in known:
            raise SchemaTooNew(revision, script.get_current_head())


def upgrade(engine: Engine, revision: str = "head") -> None:
    refuse_newer_schema(engine)
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)
