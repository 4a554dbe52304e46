"""Delivering the outbox through a platform that misbehaves: a recording `Sender` (the platform's test
double) that can fail, rate-limit, lose its target or its credentials. Retries back off, retry-after
is obeyed, dead rows can be listed and re-queued, a crash loses nothing, two deliveries never send a
row twice, and pacing keeps below each limit."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from typer.testing import CliRunner

from adapters.base import AuthBroken, RateLimited, Target, TargetGone, Transient
from bot.cli import app
from commands.types import Reply
from models import outbox
from models.clock import FixedClock
from models.db import create_schema, make_engine, unit_of_work
from models.migrate import alembic_config
from models.tables import Outbox, Team
from models.teams import find_member_by_name
from reminders.limits import ARRIVAL_MARGIN, Limit, Pacer, PlatformLimits
from reminders.outbox import OutboxDelivery
from tests.chat import Chat

# models/outbox.enqueue answers "was it written?" from `rowcount`, which SQLAlchemy 2.1 with psycopg reports
# as -1 for INSERT … ON CONFLICT DO NOTHING: on Postgres a duplicate reads as written.


class RecordingSender:
    """The platform, as the outbox sees it: records what arrived and when; raises what it is told to."""

    platform = "console"

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.failures: list[Exception] = []  # raised by the next sends, in order
        self.sent: list[tuple[str, str, datetime]] = []  # (to, text, when)
        self.calls = 0
        self._lock = threading.Lock()

    async def send(self, target: Target, reply: Reply) -> str:
        with self._lock:
            self.calls += 1
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append((target.label or target.key, reply.text, self.clock.now()))
            return f"msg-{len(self.sent)}"

    async def update(self, message_ref: str, reply: Reply) -> None:
        return None

    @property
    def texts(self) -> list[str]:
        return [text for _to, text, _when in self.sent]


def queue(engine: Engine, clock: FixedClock, text: str, *, key: str | None = None, channel: str = "console",
          member: str | None = None) -> bool:
    with unit_of_work(engine) as session:
        team = session.exec(select(Team)).one()
        person = find_member_by_name(session, team, member) if member else None
        return outbox.enqueue(session, team=team, kind="test", dedupe_key=key or f"test:{text}",
                              payload=Reply(text=text).model_dump(mode="json"), now=clock.now(),
                              member=person, channel=None if person else channel)


def rows(engine: Engine) -> list[Outbox]:
    with unit_of_work(engine) as session:
        return list(session.exec(select(Outbox).where(Outbox.kind == "test").order_by(col(Outbox.id))))


def deliver(delivery: OutboxDelivery):  # noqa: ANN201 - a DeliveryReport
    return asyncio.run(delivery.run_once())


def started(chat: Chat) -> tuple[Engine, FixedClock, RecordingSender]:
    chat.say("/help")  # the team and alice exist from here on
    return chat.engine, chat.clock, RecordingSender(chat.clock)


def test_a_failing_platform_is_retried_with_growing_back_off_then_the_message_goes(chat: Chat) -> None:
    engine, clock, sender = started(chat)
    delivery = OutboxDelivery(engine, {"console": sender}, clock, backoff=timedelta(seconds=30))
    sender.failures = [Transient("timeout"), Transient("502 bad gateway")]
    t0 = clock.now()
    queue(engine, clock, "Q7 needs you")

    assert deliver(delivery).retried == 1
    [row] = rows(engine)
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 1, t0 + timedelta(seconds=30))
    assert row.last_error == "Transient: timeout"

    clock.advance(seconds=29)
    deliver(delivery)
    assert sender.calls == 1
    clock.advance(seconds=2)
    assert deliver(delivery).retried == 1
    [row] = rows(engine)
    assert row.next_attempt_at == clock.now() + timedelta(seconds=60)  # twice as long
    assert row.last_error == "Transient: 502 bad gateway"

    clock.advance(seconds=59)
    deliver(delivery)
    assert sender.sent == []
    clock.advance(seconds=2)
    assert deliver(delivery).sent == 1
    assert sender.texts == ["Q7 needs you"]
    [row] = rows(engine)
    assert (row.status, row.attempts, row.sent_at, row.message_ref) == ("sent", 3, clock.now(), "msg-1")
    clock.advance(hours=1)
    deliver(delivery)
    assert sender.calls == 3 and len(sender.sent) == 1


def test_a_429_is_waited_out_exactly_and_costs_no_attempt(chat: Chat) -> None:
    engine, clock, sender = started(chat)
    delivery = OutboxDelivery(engine, {"console": sender}, clock, max_attempts=2)
    sender.failures = [RateLimited(7.5), RateLimited(7.5), RateLimited(7.5)]
    queue(engine, clock, "digest")

    for _ in range(3):  # more 429s than max_attempts: still not dead
        retry_at = clock.now() + timedelta(seconds=7.5)
        assert deliver(delivery).postponed == 1
        [row] = rows(engine)
        assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 0, retry_at)
        clock.set(retry_at - timedelta(milliseconds=100))
        calls = sender.calls
        deliver(delivery)
        assert sender.calls == calls  # not even tried before the platform said
        clock.set(retry_at)
    assert deliver(delivery).sent == 1
    assert sender.texts == ["digest"] and rows(engine)[0].status == "sent"


def test_after_a_429_nothing_else_goes_to_that_chat_until_retry_after(chat: Chat) -> None:
    engine, clock, sender = started(chat)
    delivery = OutboxDelivery(engine, {"console": sender}, clock)
    sender.failures = [RateLimited(30)]
    t0 = clock.now()
    for text in ("first", "second", "third"):
        queue(engine, clock, text)
    queue(engine, clock, "to alice", member="alice")  # another chat is not held

    deliver(delivery)
    assert sender.texts == ["to alice"]
    clock.set(t0 + timedelta(seconds=29))
    deliver(delivery)
    assert sender.texts == ["to alice"]
    clock.set(t0 + timedelta(seconds=30))
    deliver(delivery)
    assert sender.texts == ["to alice", "first", "second", "third"]


def test_a_gone_target_or_broken_credentials_kill_the_row_at_once_with_the_error(chat: Chat) -> None:
    engine, clock, sender = started(chat)
    delivery = OutboxDelivery(engine, {"console": sender}, clock)
    sender.failures = [TargetGone("channel_not_found"), AuthBroken("invalid_auth")]
    queue(engine, clock, "one")
    queue(engine, clock, "two")

    assert deliver(delivery).dead == 2
    assert [(row.status, row.attempts, row.last_error) for row in rows(engine)] == [
        ("dead", 1, "TargetGone: channel_not_found"), ("dead", 1, "AuthBroken: invalid_auth")]
    clock.advance(days=1)
    deliver(delivery)
    assert sender.calls == 2 and sender.sent == []


def test_max_attempts_make_a_row_dead_and_the_cli_lists_and_requeues_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    create_schema(engine)
    command.stamp(alembic_config(engine), "head")  # the CLI migrates what it opens: mark it current
    clock = FixedClock(datetime(2026, 11, 26, 9, tzinfo=UTC))
    _, clock, sender = started(Chat(engine, clock))
    delivery = OutboxDelivery(engine, {"console": sender}, clock, max_attempts=3)
    sender.failures = [Transient("boom")] * 3
    queue(engine, clock, "will die")
    for _ in range(3):
        deliver(delivery)
        clock.advance(minutes=5)
    [row] = rows(engine)
    assert (row.status, row.attempts, row.last_error) == ("dead", 3, "Transient: boom")

    runner = CliRunner()
    env = {"COLUMNS": "200", "DEALBOT_LOG_LEVEL": "WARNING"}
    listed = runner.invoke(app, ["outbox", "--dead", "--db", url], env=env)
    assert listed.exit_code == 0, listed.output
    assert "1 dead" in listed.output and f"│ {row.id} " in listed.output and "Transient: boom" in listed.output
    pending = runner.invoke(app, ["outbox", "--db", url], env=env)
    assert "0 pending" in pending.output

    retried = runner.invoke(app, ["outbox", "retry", str(row.id), "--db", url], env=env)
    assert retried.exit_code == 0 and f"outbox row {row.id} queued again" in retried.output
    assert "1 pending" in runner.invoke(app, ["outbox", "--db", url], env=env).output
    assert runner.invoke(app, ["outbox", "retry", "999", "--db", url], env=env).exit_code == 1

    clock.set(max(clock.now(), datetime.now(UTC)) + timedelta(seconds=1))  # `retry` queues for the real now
    assert deliver(delivery).sent == 1
    assert sender.texts == ["will die"] and rows(engine)[0].status == "sent"
    engine.dispose()


def test_a_crash_between_claim_and_mark_delivers_each_row_once_after_the_lease(chat: Chat) -> None:
    engine, clock, sender = started(chat)
    for text in ("a", "b", "c"):
        queue(engine, clock, text)
    crashed = OutboxDelivery(engine, {"console": sender}, clock)
    assert len(crashed.claim()) == 3  # …and the process dies before sending or marking anything
    del crashed

    restarted = OutboxDelivery(engine, {"console": sender}, clock)
    clock.advance(minutes=1)
    assert deliver(restarted).sent == 0 and sender.calls == 0  # still leased to the dead worker
    clock.advance(minutes=1, seconds=1)
    assert deliver(restarted).sent == 3
    deliver(restarted)
    clock.advance(minutes=10)
    deliver(restarted)
    assert sorted(sender.texts) == ["a", "b", "c"]
    assert {row.status for row in rows(engine)} == {"sent"}


def test_two_deliveries_at_once_never_send_a_row_twice(chat: Chat) -> None:
    engine, clock, sender = started(chat)
    texts = [f"message {n}" for n in range(40)]
    for text in texts:
        queue(engine, clock, text)
    workers = [OutboxDelivery(engine, {"console": sender}, clock, batch=5) for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(delivery: OutboxDelivery) -> None:
        try:
            barrier.wait(timeout=10)
            deliver(delivery)
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sorted(sender.texts) == sorted(texts)
    assert {row.status for row in rows(engine)} == {"sent"}


def test_writing_the_same_dedupe_key_twice_queues_one_message(chat: Chat) -> None:
    engine, clock, sender = started(chat)
    first = queue(engine, clock, "digest for Thu", key="digest:1:2026-11-26")
    second = queue(engine, clock, "digest for Thu, again", key="digest:1:2026-11-26")
    deliver(OutboxDelivery(engine, {"console": sender}, clock))
    assert sender.texts == ["digest for Thu"] and len(rows(engine)) == 1
    assert first is True
    assert second is False


# --- pacing -------------------------------------------------------------------------------------

def paced(engine: Engine, clock: FixedClock, sender: RecordingSender, limits: PlatformLimits) -> OutboxDelivery:
    """A delivery that never waits in-process: whatever cannot go now waits in the outbox."""
    return OutboxDelivery(engine, {"console": sender}, clock, pacer=Pacer({"console": limits}),
                          max_wait=timedelta(0))


def test_one_per_second_per_channel_sends_one_now_and_the_rest_a_second_apart(chat: Chat) -> None:
    engine, clock, sender = started(chat)
    delivery = paced(engine, clock, sender, PlatformLimits(channel=[Limit.parse("1/1s")]))
    t0 = clock.now()
    for n in range(1, 6):
        queue(engine, clock, f"m{n}")

    report = deliver(delivery)
    assert (report.sent, report.postponed) == (1, 4) and sender.texts == ["m1"]
    waiting = [row for row in rows(engine) if row.status == "pending"]
    assert len(waiting) == 4 and all(row.next_attempt_at > t0 and row.attempts == 0 for row in waiting)
    clock.advance(milliseconds=900)
    deliver(delivery)
    assert sender.texts == ["m1"]
    for n in range(2, 6):
        clock.set(t0 + timedelta(seconds=n - 1))
        deliver(delivery)
        assert sender.texts == [f"m{k}" for k in range(1, n + 1)]
    assert [when for _to, _text, when in sender.sent] == [t0 + timedelta(seconds=k) for k in range(5)]


def test_a_short_pacing_wait_is_waited_in_process(chat: Chat) -> None:
    engine, clock, sender = started(chat)

    async def sleep(seconds: float) -> None:  # time passes only on the test clock
        clock.advance(seconds=seconds)

    delivery = OutboxDelivery(engine, {"console": sender}, clock, sleep=sleep,
                              pacer=Pacer({"console": PlatformLimits(channel=[Limit.parse("1/1s")])}))
    t0 = clock.now()
    for n in range(1, 4):
        queue(engine, clock, f"m{n}")
    assert deliver(delivery).sent == 3
    assert [when for _to, _text, when in sender.sent] == [t0, t0 + timedelta(seconds=1), t0 + timedelta(seconds=2)]


def test_a_deployment_spaces_pushes_a_little_wider_than_the_limit(chat: Chat) -> None:
    """The platform counts arrivals; sends exactly a second apart can arrive closer than that."""
    engine, clock, sender = started(chat)

    async def sleep(seconds: float) -> None:
        clock.advance(seconds=seconds)

    limits = {"console": PlatformLimits(channel=[Limit.parse("1/1s")])}
    delivery = OutboxDelivery(engine, {"console": sender}, clock, sleep=sleep,
                              pacer=Pacer(limits, margin=ARRIVAL_MARGIN))
    t0 = clock.now()
    for n in range(1, 4):
        queue(engine, clock, f"m{n}")
    assert deliver(delivery).sent == 3
    gap = timedelta(seconds=1) + ARRIVAL_MARGIN
    assert [when for _to, _text, when in sender.sent] == [t0, t0 + gap, t0 + 2 * gap]


def test_twenty_a_minute_per_group(chat: Chat) -> None:
    engine, clock, sender = started(chat)
    delivery = paced(engine, clock, sender, PlatformLimits(channel=[Limit.parse("20/60s")]))
    t0 = clock.now()
    for n in range(25):
        queue(engine, clock, f"m{n:02}")

    assert deliver(delivery).sent == 20
    clock.set(t0 + timedelta(seconds=59.9))  # a sliding minute: never a 21st message within 60 s
    deliver(delivery)
    assert len(sender.sent) == 20
    clock.set(t0 + timedelta(seconds=60))
    deliver(delivery)
    assert len(sender.sent) == 25
    assert sender.texts == [f"m{n:02}" for n in range(25)]


def test_the_per_bot_limit_spans_every_chat(team: Chat) -> None:
    engine, clock, sender = started(team)
    delivery = paced(engine, clock, sender, PlatformLimits(member=[Limit.parse("1/1s")], bot=[Limit.parse("2/1s")]))
    t0 = clock.now()
    for name in ("alice", "bob", "carol", "dan", "erin"):
        queue(engine, clock, f"hi {name}", member=name)

    deliver(delivery)
    assert [to for to, _text, _when in sender.sent] == ["alice", "bob"]
    clock.set(t0 + timedelta(milliseconds=500))
    deliver(delivery)
    assert len(sender.sent) == 2  # two a second for the whole bot, whoever they are for
    clock.set(t0 + timedelta(seconds=1))
    deliver(delivery)
    assert [to for to, _text, _when in sender.sent] == ["alice", "bob", "carol", "dan"]
    clock.set(t0 + timedelta(seconds=1.5))
    deliver(delivery)
    assert len(sender.sent) == 4
    clock.set(t0 + timedelta(seconds=2))
    deliver(delivery)
    assert len(sender.sent) == 5
