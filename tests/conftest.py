"""Fixtures: a fresh database per test (SQLite always; Postgres too when DEALBOT_TEST_DATABASE_URL is
set), a clock tests move by hand, and a chat driver."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import Engine

from models.clock import FixedClock
from models.db import create_schema, make_engine
from models.tables import SQLModel
from tests.chat import Chat

if TYPE_CHECKING:
    from tests.test_dingtalk import DingTalkHarness
    from tests.test_feishu import FeishuHarness
    from tests.test_slack import SlackHarness
    from tests.test_telegram import TelegramHarness
    from tests.test_wecom import WeComHarness
from tests.databases import POSTGRES_URL

BACKENDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])
SHANGHAI = ZoneInfo("Asia/Shanghai")

_postgres_engine: Engine | None = None


def _worker_database(url: str) -> str:
    """Under pytest-xdist each worker gets its own database (`<name>_gw0` …), created on first use,
    because every test truncates the tables it runs on."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    parsed = make_url(url)
    name = f"{parsed.database}_{worker}"
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is None:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def _postgres() -> Engine:
    global _postgres_engine
    if _postgres_engine is None:
        assert POSTGRES_URL
        _postgres_engine = make_engine(_worker_database(POSTGRES_URL))
        SQLModel.metadata.drop_all(_postgres_engine)
        create_schema(_postgres_engine)
    return _postgres_engine


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'dealbot.db'}")
        create_schema(engine)
        yield engine
        engine.dispose()
        return
    engine = _postgres()
    names = ", ".join(f'"{table.name}"' for table in SQLModel.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    yield engine


@pytest.fixture
def clock() -> FixedClock:
    """Thursday 26 Nov 2026, 09:00 in Shanghai."""
    return FixedClock(datetime(2026, 11, 26, 9, 0, tzinfo=SHANGHAI))


@pytest.fixture
def chat(engine: Engine, clock: FixedClock) -> Chat:
    return Chat(engine, clock)


@pytest.fixture
def team(chat: Chat) -> Chat:
    """A small English team: alice (admin, the first member), bob (manager), carol and dan (reps),
    and erin, a second admin. The team works in Shanghai time, as the clock is given."""
    chat.say("/team config locale=en timezone=Asia/Shanghai")
    chat.say("[bob] /help")
    chat.say("/team role @bob manager")
    chat.say("[carol] /help")
    chat.say("[dan] /help")
    chat.say("[erin] /help")
    chat.say("/team role @erin admin")
    chat.say("/team role @alice rep")
    return chat


@pytest.fixture
def zh(engine: Engine, clock: FixedClock) -> Chat:
    """A Chinese team with no locale configured: 张三 (rep, the first member) and 李四 (rep) report
    to 李经理 (manager); 王总 is the admin."""
    chat = Chat(engine, clock, team="深圳分公司", user="张三")
    chat.say("/帮助")  # the first member is the admin until someone else is
    for name in ("王总", "李经理", "李四"):
        chat.say(f"[{name}] /帮助")
    chat.say("/团队 角色 @王总 管理员")
    chat.say("[王总] /团队 角色 @李经理 经理")
    chat.say("[王总] /团队 角色 @张三 销售 经理=@李经理")
    chat.say("[王总] /团队 角色 @李四 销售 经理=@李经理")
    return chat


# Each platform's real HTTP entry point, with a local server standing in for its API. The harnesses
# live beside their platform's tests, which override these with fixtures of their own.


@pytest.fixture
def slack(engine: Engine, clock: FixedClock) -> Iterator[SlackHarness]:
    from tests.test_slack import FakeSlack, SlackHarness

    with closing(FakeSlack()) as api, closing(SlackHarness(engine, clock, api)) as harness:
        yield harness


@pytest.fixture
def telegram(engine: Engine, clock: FixedClock) -> Iterator[TelegramHarness]:
    from tests.test_telegram import FakeBotApi, TelegramHarness

    with closing(FakeBotApi()) as api, closing(TelegramHarness(engine, clock, api)) as harness:
        yield harness


@pytest.fixture
def wecom(engine: Engine, clock: FixedClock) -> Iterator[WeComHarness]:
    from tests.test_wecom import FakeWeCom, WeComHarness

    with closing(FakeWeCom()) as api, closing(WeComHarness(engine, clock, api)) as harness:
        yield harness


@pytest.fixture
def feishu(engine: Engine, clock: FixedClock) -> Iterator[FeishuHarness]:
    from tests.test_feishu import FakeFeishu, FeishuHarness

    with closing(FakeFeishu()) as api, closing(FeishuHarness(engine, clock, api)) as harness:
        yield harness


@pytest.fixture
def dingtalk(engine: Engine, clock: FixedClock) -> Iterator[DingTalkHarness]:
    from tests.test_dingtalk import DingTalkHarness, FakeDingTalk

    with closing(FakeDingTalk()) as api, closing(DingTalkHarness(engine, clock, api)) as harness:
        yield harness
