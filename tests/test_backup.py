"""`dealbot backup` / `dealbot restore`: an online backup taken while commands write, restored into
an empty database, holds every transaction committed before it began — whole — and the bot runs on
it; a database that holds data is never overwritten."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot import backup
from commands import Dispatcher
from commands.types import Invocation
from models.clock import FixedClock
from models.db import create_schema, make_engine, unit_of_work
from models.tables import AuditEvent, CommandLog, Lead, Team
from tests.chat import Chat
from tests.test_cli import clean_env, dealbot_executable


class Writer(threading.Thread):
    """Adds leads through the dispatcher until told to stop; `committed` grows after each commit."""

    def __init__(self, url: str, clock: FixedClock) -> None:
        super().__init__(daemon=True)
        self.engine = make_engine(url)
        self.dispatcher = Dispatcher(self.engine, clock)
        self.clock = clock
        self.committed: list[int] = []
        self.stop = threading.Event()
        self.failure: str | None = None
        self.progress = threading.Condition()

    def wait_for(self, count: int) -> None:
        with self.progress:
            assert self.progress.wait_for(
                lambda: len(self.committed) >= count or self.failure, timeout=60
            ), "the writer stalled"
        assert self.failure is None, self.failure

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            number += 1
            reply = self.dispatcher.dispatch(
                Invocation(
                    platform="console",
                    team_key="acme",
                    team_name="acme",
                    user_key="alice",
                    user_name="alice",
                    text=f"/lead add Customer {number} phone=1390000{number:04d} force=yes",
                    received_at=self.clock.now(),
                )
            )
            with self.progress:
                if not reply.ok:
                    self.failure = reply.text
                else:
                    self.committed.append(number)
                self.progress.notify_all()
            if self.failure:
                return


def _contents(url: str) -> tuple[list[int], int, int, int]:
    """Lead numbers, the team's lead counter, lead audit rows and command log rows of a database."""
    engine = make_engine(url)
    try:
        with unit_of_work(engine) as session:
            numbers = sorted(session.execute(select(Lead.number)).scalars())
            seq = session.execute(select(Team.lead_seq)).scalar_one()
            audits = session.execute(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.entity == "lead", AuditEvent.action == "add")
            ).scalar_one()
            logged = session.execute(select(func.count()).select_from(CommandLog)).scalar_one()
    finally:
        engine.dispose()
    return numbers, seq, audits, logged


def test_backup_while_writing_then_restore_keeps_every_committed_row(
    tmp_path: Path, clock: FixedClock
) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    create_schema(make_engine(url))
    writer = Writer(url, clock)
    writer.start()
    try:
        taken = []
        while len(taken) < 3:
            writer.wait_for(20 * (len(taken) + 1))
            before = len(writer.committed)
            target = tmp_path / f"backup-{len(taken)}.db"
            made = backup.backup(url, target)
            taken.append((target, before, len(writer.committed), made))
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    assert writer.failure is None and len(writer.committed) > taken[-1][2]
    for index, (target, before, after, made) in enumerate(taken):
        assert made.rows > 0 and made.path == target
        restored = f"sqlite:///{tmp_path / f'restored-{index}.db'}"
        backup.restore(target, restored)
        numbers, seq, audits, logged = _contents(restored)
        # Every lead committed before the backup began is there; the copy is one consistent moment:
        # leads 1..N with nothing missing, the counter at N, one audit row and one log row each.
        assert len(numbers) >= before, (before, len(numbers))
        assert len(numbers) <= after + 1
        assert numbers == list(range(1, len(numbers) + 1))
        assert seq == len(numbers) and audits == len(numbers)
        assert logged in (len(numbers) - 1, len(numbers))  # a log row commits after its command


def test_the_bot_runs_on_a_restored_database(tmp_path: Path, clock: FixedClock) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    engine = make_engine(url)
    create_schema(engine)
    chat = Chat(engine, clock)
    assert chat.reply("/lead add Acme Trading phone=13800138000").ok
    backup.backup(url, tmp_path / "b.db")
    backup.restore(tmp_path / "b.db", f"sqlite:///{tmp_path / 'new.db'}")
    again = Chat(make_engine(f"sqlite:///{tmp_path / 'new.db'}"), clock)
    assert "L1 Acme Trading" in again.say("/lead show L1")
    assert "L2 Beta" in again.say("/lead add Beta")


def test_restore_refuses_a_database_that_holds_data(tmp_path: Path, clock: FixedClock) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    engine = make_engine(url)
    create_schema(engine)
    Chat(engine, clock).say("/lead add Acme")
    backup.backup(url, tmp_path / "b.db")
    with pytest.raises(backup.BackupError, match="already holds data"):
        backup.restore(tmp_path / "b.db", url)
    # A database with the schema but no rows (fresh from `dealbot db upgrade`) is empty: allowed.
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    create_schema(make_engine(empty))
    assert backup.restore(tmp_path / "b.db", empty).rows > 0
    with pytest.raises(backup.BackupError, match="pg_dump"):
        backup.backup("postgresql+psycopg://u@h/db", tmp_path / "x.db")
    with pytest.raises(backup.BackupError, match="no backup"):
        backup.restore(tmp_path / "missing.db", f"sqlite:///{tmp_path / 'other.db'}")
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(backup.BackupError):
        backup.restore(tmp_path / "junk.db", f"sqlite:///{tmp_path / 'other.db'}")


def test_the_cli_backs_up_and_restores(tmp_path: Path, clock: FixedClock) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    engine = make_engine(url)
    create_schema(engine)
    Chat(engine, clock).say("/lead add Acme")

    def dealbot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [dealbot_executable(), *args],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
            check=False,
        )

    made = dealbot("backup", str(tmp_path / "b.db"), "--db", url)
    assert made.returncode == 0 and "rows in" in made.stdout, made.stderr
    restored = dealbot(
        "restore", str(tmp_path / "b.db"), "--db", f"sqlite:///{tmp_path / 'new.db'}"
    )
    assert restored.returncode == 0 and "restored" in restored.stdout, restored.stderr
    refused = dealbot("restore", str(tmp_path / "b.db"), "--db", url)
    assert refused.returncode == 2 and "already holds data" in refused.stderr
    assert _contents(f"sqlite:///{tmp_path / 'new.db'}")[0] == [1]
