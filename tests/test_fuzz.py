"""Property-based fuzzing (hypothesis).

* `Dispatcher.dispatch` with arbitrary unicode, every verb and alias, argument shapes, ids, amounts,
  dates, options, typed and resolved mentions, as every role: it never raises, never crashes inside
  (no "something went wrong"), always answers, and a command that fails leaves the database exactly
  as it was (every table but the command log and the inbound-delivery ledger). Each example starts
  from the same seeded database, so a failure shrinks to a reproducible command.
* Each adapter's decoder through the real ASGI app served by uvicorn: random and mutated Slack
  forms and JSON (signed and not), Telegram updates, WeCom XML and ciphertexts (signed, encrypted
  and not). The answer is a clean 4xx or a normal 200, never a 5xx or a hang, and nothing the
  adapters do in the background after answering logs an error.

Default runs: 520 examples (300 dispatch, 80 Slack, 80 Telegram, 60 WeCom). `pytest -m slow`: 10,000
(6,000 dispatch, 1,000 Slack, 2,000 Telegram, 1,000 WeCom). Every test prints how many it ran.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import shutil
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from bot.app import Bot, build
from bot.settings import Settings
from bot.web import create_app
from commands import FAMILIES, VERBS, Dispatcher
from commands.args import KEY_ALIASES
from commands.dispatch import Handled
from commands.types import Invocation, Mention, Reply
from models.clock import FixedClock
from models.db import create_schema, make_engine, unit_of_work
from models.tables import SQLModel
from tests.chat import Chat
from tests.conftest import SHANGHAI
from tests.fakes.asgi import LiveServer
from tests.test_slack import FakeSlack
from tests.test_telegram import FakeBotApi
from tests.test_wecom import AES_KEY, CORP, TOKEN, FakeWeCom

ROOT = Path(__file__).parent
EXAMPLES = {
    "dispatch": (300, 2500),
    "slack": (80, 500),
    "telegram": (80, 600),
    "wecom": (60, 500),
}
RUNS = [pytest.param(0, id="quick"), pytest.param(1, id="slow", marks=pytest.mark.slow)]
LEDGERS = ("command_log", "inbound_delivery")
PEOPLE = ["alice", "bob", "carol", "dan", "erin", "eve"]  # admin, manager, reps, admin, rep


def fuzz_settings(examples: int, run: int) -> settings:
    """The default runs try the same examples every time, so CI stays deterministic; the slow runs
    explore new ones on every run."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=run == 0,
        suppress_health_check=list(HealthCheck),
    )


def report(name: str, ran: int, wanted: int) -> None:
    print(f"\n[fuzz] {name}: {ran} examples")
    assert ran >= wanted, f"only {ran} of {wanted} examples ran"


# --- the dispatcher ------------------------------------------------------------------------------

FAMILY_WORDS = sorted({word for family in FAMILIES for word in family.words})
VERB_WORDS = sorted({word for verb in VERBS for word in (verb.name, *verb.words) if word})
OPTION_KEYS = sorted(
    {key for verb in VERBS for key in verb.options} | set(KEY_ALIASES) | {"x", "="}
)
REFS = [
    "L1",
    "L2",
    "L3",
    "L4",
    "L5",
    "L999",
    "L0",
    "l1",
    "#2",
    "Lx",
    "L-1",
    "L1.5",
    "L٣",
    "Q1",
    "Q2",
    "Q3",
    "Q9",
    "q1",
    "C1",
    "C2",
    "C9",
    "c1",
    "1",
    "99999999999",
    "L99999999999999999999",
]
AMOUNTS = [
    "80k",
    "12万",
    "12.5万",
    "1.2m",
    "1.2w",
    "¥120000",
    "120,000",
    "-5",
    "0",
    "0.001",
    "1e999",
    "NaN",
    "inf",
    "99999999999999999999",
    "1e-9",
    "８０ｋ",
    "30%",
    "50%@signing",
    "30%@2026-12-31",
    "100k@delivery",
    "1,,0",
    "万",
    "k",
]
DATES = [
    "today",
    "tomorrow",
    "fri",
    "next mon",
    "+3d",
    "2026-12-01",
    "12/1",
    "明天",
    "后天",
    "下周一",
    "3天后",
    "2020-01-01",
    "9999-12-31",
    "+99999d",
    "32/13",
    "0/0",
    "yesterday",
    "昨天",
    "2026-02-30",
]
MENTIONS = [
    "@alice",
    "@bob",
    "@carol",
    "@dan",
    "@erin",
    "@ghost",
    "<@U1>",
    "<@U2|boss>",
    "@",
    "@@bob",
]
RESOLVED = [Mention(user_key=person, name=person) for person in PEOPLE] + [
    Mention(user_key="stranger", name="Stranger"),
    Mention(handle="dan", name="dan"),
    Mention(handle="nobody", name="nobody"),
    Mention(user_key="", name=""),
]


def option(keys: list[str]) -> st.SearchStrategy[str]:
    values = st.one_of(st.sampled_from(AMOUNTS + DATES + REFS + MENTIONS), st.text(max_size=12))
    return st.builds(lambda k, v: f"{k}={v}", st.sampled_from(keys), values)


token = st.one_of(
    st.sampled_from(REFS),
    st.sampled_from(AMOUNTS),
    st.sampled_from(DATES),
    st.sampled_from(MENTIONS),
    st.sampled_from(VERB_WORDS),
    option(OPTION_KEYS),
    st.text(max_size=16),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
)
GAPS = st.sampled_from([" ", " ", " ", "  ", "\u3000", "\t", "\n"])
PREFIXES = st.sampled_from(["/", "/", "/", "", "／", "//"])


@st.composite
def verb_line(draw: st.DrawFn) -> str:
    """A line that names a real verb (any of its spellings) with arguments shaped like its own."""
    verb = draw(st.sampled_from(VERBS))
    family = next(f for f in FAMILIES if f.name == verb.family)
    words = [draw(st.sampled_from(family.words))]
    if verb.words:
        words.append(draw(st.sampled_from(verb.words)))
    if draw(st.integers(min_value=0, max_value=9)) < 7:
        words.append(draw(st.sampled_from(REFS)))
    arguments = st.one_of(token, option(sorted(verb.options)) if verb.options else token)
    words += draw(st.lists(arguments, max_size=5))
    return draw(PREFIXES) + draw(GAPS).join(words)


command_text = st.one_of(
    verb_line(),
    verb_line(),
    verb_line(),
    verb_line(),
    verb_line(),
    verb_line(),
    st.builds(
        lambda slash, family, words, gap: slash + family + gap + gap.join(words),
        PREFIXES,
        st.sampled_from(FAMILY_WORDS),
        st.lists(token, max_size=6),
        GAPS,
    ),
    st.text(max_size=200),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=60).map(lambda t: "/" + t),
)
invocations = st.builds(
    lambda who, text, mentions, locale: (who, text, mentions, locale),
    st.sampled_from(PEOPLE),
    command_text,
    st.dictionaries(st.sampled_from(MENTIONS), st.sampled_from(RESOLVED), max_size=3),
    st.sampled_from([None, "zh", "en", "fr", ""]),
)

SEED = [
    "/帮助",
    "[bob] /help",
    "[carol] /help",
    "[dan] /help",
    "[erin] /help",
    "[eve] /help",
    "/team role @bob manager",
    "/team role @carol rep manager=@bob",
    "/team role @dan rep manager=@bob",
    "/team role @erin admin",
    "/lead add Acme Trading contact=Mr Li phone=138-0013-8000 email=li@acme.example value=120k",
    "[carol] /lead add 华为技术 电话=13912345678 预计=12万",
    "[dan] /lead add Pool Co value=30k",
    "[dan] /lead release L3",
    "[carol] /follow L2 called them next=tomorrow via=call",
    "[carol] /quote L2 80k discount=5% first offer",
    "[carol] /quote L2 30k small one",
    "/lead add Won Co value=500k",
    "/contract L4 500k signed=2026-11-20 end=2027-11-19 no=HT-1",
    "/plan C1 30%@signing 70%@2026-12-31",
    "/paid C1 100k 2026-11-25 wire",
    "[dan] /lead add Dan Co value=10k",
    "[eve] /lead add Eve Co phone=13700000000",
]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[tuple]]]:
    """A team with members in every role, leads, quotes, a contract: the file and its rows."""
    folder = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{folder / 'seed.db'}"
    engine = make_engine(url)
    create_schema(engine)
    chat = Chat(engine, _clock())
    for line in SEED:
        assert chat.reply(line).ok, line
    rows = _domain(engine)
    engine.dispose()
    with contextlib.closing(sqlite3.connect(folder / "seed.db")) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # one file to copy
    return folder / "seed.db", rows


def _clock() -> FixedClock:
    """Thursday 26 Nov 2026, 09:00 in Shanghai, as in every test."""
    return FixedClock(datetime(2026, 11, 26, 9, 0, tzinfo=SHANGHAI))


def _domain(engine: Engine) -> dict[str, list[tuple]]:
    with unit_of_work(engine) as session:
        return {
            table.name: sorted(map(tuple, session.execute(select(table)).all()), key=repr)
            for table in SQLModel.metadata.sorted_tables
            if table.name not in LEDGERS
        }


@pytest.mark.parametrize("run", RUNS)
def test_dispatch_never_fails_and_a_failed_command_changes_nothing(
    seeded: tuple[Path, dict[str, list[tuple]]], tmp_path: Path, run: int
) -> None:
    seed_file, seed_rows = seeded
    work = tmp_path / "work.db"
    # One engine for every example (its compiled statements are reused); between examples its
    # connections are closed and the database file is put back to the seed.
    engine = make_engine(f"sqlite:///{work}")
    ran = 0
    wanted = EXAMPLES["dispatch"][run]

    @fuzz_settings(wanted, run)
    @given(invocations)
    @example(("alice", "/lead edit L1 name=", {}, None))  # found by this test: an internal error
    def one(case: tuple[str, str, dict[str, Mention], str | None]) -> None:
        nonlocal ran
        ran += 1
        who, line, mentions, locale = case
        engine.dispose()
        for leftover in (Path(f"{work}-wal"), Path(f"{work}-shm")):
            leftover.unlink(missing_ok=True)
        shutil.copyfile(seed_file, work)
        heard: list[Handled] = []
        dispatcher = Dispatcher(engine, _clock(), observer=heard.append)
        reply = dispatcher.dispatch(
            Invocation(
                platform="console",
                team_key="acme",
                team_name="acme",
                channel="console",
                user_key=who,
                user_name=who,
                text=line,
                mentions=mentions,
                locale=locale,
                received_at=_clock().now(),
            )
        )
        assert isinstance(reply, Reply)
        assert [event.outcome for event in heard] != ["crash"], (line, reply.text)
        assert reply.text.strip(), line
        if not reply.ok:
            assert _domain(engine) == seed_rows, (who, line, reply.text)

    try:
        one()
    finally:
        engine.dispose()
    report("dispatch", ran, wanted)


# --- the adapters through the web app ------------------------------------------------------------

SLACK_SECRET, TELEGRAM_SECRET = "fuzz-signing-secret", "fuzz-webhook-secret"
SLACK = ROOT / "payloads" / "slack"
TELEGRAM = ROOT / "payloads" / "telegram"
WECOM = ROOT / "payloads" / "wecom"


class Errors(logging.Handler):
    """Every ERROR record from any logger while the app runs, kept to assert on."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[str]:
        found = [f"{r.name}: {r.getMessage()[:300]} {_trace(r)}"[:3000] for r in self.records]
        self.records.clear()
        return found


def _trace(record: logging.LogRecord) -> str:
    if record.exc_info:
        import traceback

        return "".join(traceback.format_exception(*record.exc_info))[-1500:]
    return ""


class App:
    """The app as deployed with all three platforms, and the fakes of their APIs."""

    def __init__(self, folder: Path) -> None:
        self.slack, self.telegram, self.wecom = FakeSlack(), FakeBotApi(), FakeWeCom()
        settings_ = Settings.model_validate(
            {
                "SLACK_BOT_TOKEN": "xoxb-fuzz",
                "SLACK_SIGNING_SECRET": SLACK_SECRET,
                "SLACK_API_URL": f"{self.slack.url}/api/",
                "TELEGRAM_BOT_TOKEN": "123456:FUZZ-token",
                "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
                "TELEGRAM_WEBHOOK_URL": "https://bot.example.com/telegram/webhook",
                "TELEGRAM_API_URL": self.telegram.url,
                "WECOM_CORP_ID": CORP,
                "WECOM_AGENT_ID": "1",
                "WECOM_SECRET": "s",
                "WECOM_TOKEN": TOKEN,
                "WECOM_ENCODING_AES_KEY": AES_KEY,
                "WECOM_API_URL": self.wecom.url,
                "DEALBOT_MEMBER_RATE": "off",
                "DEALBOT_TEAM_RATE": "off",
                "DEALBOT_BODY_TIMEOUT_SECONDS": 5,
            }
        )
        self.bot: Bot = build(
            settings_, clock=_clock(), database_url=f"sqlite:///{folder / 'app.db'}", migrate=False
        )
        create_schema(self.bot.engine)
        self.server = LiveServer(create_app(self.bot))
        # A connection per request: on a kept-alive one, a request httpx writes in two pieces waits
        # for the server's delayed ACK (40 ms) whenever the previous answer had a body.
        self.http = httpx.Client(
            base_url=self.server.url, timeout=10, headers={"Connection": "close"}
        )
        self.errors = Errors()
        logging.getLogger().addHandler(self.errors)
        from adapters.wecom_crypto import WeComCrypto

        self.crypto = WeComCrypto(TOKEN, AES_KEY, CORP)

    def close(self) -> None:
        logging.getLogger().removeHandler(self.errors)
        self.http.close()
        self.server.close()
        for fake in (self.slack, self.telegram, self.wecom):
            fake.close()
        self.bot.engine.dispose()

    def quiet(self) -> None:
        """Wait until the work the adapters do after answering is done: the database goes quiet."""
        deadline = time.monotonic() + 10
        last = -1
        while time.monotonic() < deadline:
            with self.bot.engine.connect() as connection:
                count = connection.execute(text("SELECT count(*) FROM command_log")).scalar_one()
            if count == last:
                return
            last = count
            time.sleep(0.1)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    served = App(tmp_path_factory.mktemp("fuzz-app"))
    yield served
    served.close()


def clean(answer: httpx.Response, what: Any) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text[:300], what)
    assert answer.status_code in (200, 400, 401, 403, 404, 405, 408, 413, 415), (
        answer.status_code,
        what,
    )


# Generic JSON, and mutations of a recorded payload: values replaced, keys dropped or added.
json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn, original: Any, *, keep: frozenset[str] = frozenset()) -> Any:
    """The recorded payload with some of its values, at any depth, replaced, dropped or added."""
    if isinstance(original, dict):
        out = {}
        for key, value in original.items():
            if key in keep:
                out[key] = value
                continue
            action = draw(st.sampled_from(["keep", "keep", "keep", "mutate", "drop", "replace"]))
            if action == "keep":
                out[key] = value
            elif action == "mutate":
                out[key] = draw(mutated(value, keep=keep))
            elif action == "replace":
                out[key] = draw(json_value)
        if draw(st.booleans()):
            out[draw(st.text(max_size=10))] = draw(json_value)
        return out
    if isinstance(original, list):
        return [draw(mutated(item, keep=keep)) for item in original if draw(st.booleans())]
    if isinstance(original, str):
        return draw(st.one_of(st.just(original), st.text(max_size=60), command_text))
    return draw(st.one_of(st.just(original), json_value))


def slack_sign(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    signature = (
        "v0="
        + hmac.new(
            SLACK_SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256
        ).hexdigest()
    )
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}


SLASH = dict(parse_qsl((SLACK / "slash_command.form").read_text().strip()))
ACTIONS = json.loads((SLACK / "block_actions.json").read_text())
HOME = json.loads((SLACK / "app_home_opened.json").read_text())
FORM = "application/x-www-form-urlencoded"


@st.composite
def slack_requests(draw: st.DrawFn, fake_url: str) -> tuple[bytes, dict[str, str]]:
    kind = draw(
        st.sampled_from(["slash", "slash", "click", "click", "event", "random", "random json"])
    )
    signed = draw(st.sampled_from([True, True, True, False]))
    content_type = FORM
    if kind == "slash":
        form = draw(mutated(SLASH, keep=frozenset({"response_url"})))
        form = {str(k): str(v) for k, v in form.items()}
        form["response_url"] = f"{fake_url}/response/fuzz"
        body = urlencode(form).encode()
    elif kind == "click":
        payload = draw(mutated(ACTIONS, keep=frozenset({"response_url"})))
        if isinstance(payload, dict):
            payload["response_url"] = f"{fake_url}/response/fuzz"
        body = urlencode({"payload": json.dumps(payload)}).encode()
    elif kind == "event":
        body, content_type = json.dumps(draw(mutated(HOME))).encode(), "application/json"
    elif kind == "random json":
        body, content_type = json.dumps(draw(json_value)).encode(), "application/json"
    else:
        body = draw(st.binary(max_size=300))
        content_type = draw(st.sampled_from([FORM, "application/json", "text/plain", "", "{"]))
    headers = {"Content-Type": content_type} if content_type else {}
    if signed:
        headers.update(slack_sign(body))
    return body, headers


@pytest.mark.parametrize("run", RUNS)
def test_slack_decoder_answers_cleanly(app: App, run: int) -> None:
    ran, wanted = 0, EXAMPLES["slack"][run]
    app.errors.take()

    @fuzz_settings(wanted, run)
    @given(slack_requests(app.slack.url))
    def one(request: tuple[bytes, dict[str, str]]) -> None:
        nonlocal ran
        ran += 1
        body, headers = request
        clean(app.http.post("/slack/events", content=body, headers=headers), body[:200])

    one()
    app.quiet()
    assert app.errors.take() == []
    report("slack", ran, wanted)


TG_RECORDED = [json.loads(path.read_text()) for path in sorted(TELEGRAM.glob("*.json"))]


@st.composite
def telegram_requests(draw: st.DrawFn) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["update", "update", "update", "json", "bytes"]))
    if kind == "update":
        update = draw(mutated(draw(st.sampled_from(TG_RECORDED))))
        if isinstance(update, dict) and draw(st.booleans()):
            update["update_id"] = draw(st.integers(min_value=-(2**40), max_value=2**40))
        body = json.dumps(update).encode()
    elif kind == "json":
        body = json.dumps(draw(json_value)).encode()
    else:
        body = draw(st.binary(max_size=300))
    secret = draw(st.sampled_from([TELEGRAM_SECRET] * 4 + ["", TELEGRAM_SECRET.upper()]))
    return body, secret


@pytest.mark.parametrize("run", RUNS)
def test_telegram_decoder_answers_cleanly(app: App, run: int) -> None:
    ran, wanted = 0, EXAMPLES["telegram"][run]
    app.errors.take()

    @fuzz_settings(wanted, run)
    @given(telegram_requests())
    def one(request: tuple[bytes, str]) -> None:
        nonlocal ran
        ran += 1
        body, secret = request
        headers = {"Content-Type": "application/json"}
        if secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        clean(app.http.post("/telegram/webhook", content=body, headers=headers), body[:200])

    one()
    app.quiet()
    assert app.errors.take() == []
    report("telegram", ran, wanted)


def _wecom(name: str) -> Template:
    return Template((WECOM / name).read_text())


INNER = {
    name: _wecom(name)
    for name in ("text_message.xml", "template_card_event.xml", "enter_agent_event.xml")
}
xml_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="]"), max_size=60)


@st.composite
def wecom_requests(draw: st.DrawFn, crypto: Any) -> tuple[str, dict[str, str], bytes]:
    kind = draw(
        st.sampled_from(["message", "message", "message", "ciphertext", "envelope", "verify"])
    )
    stamp, nonce = str(int(time.time())), str(draw(st.integers(min_value=0, max_value=10**9)))
    method = "POST"
    if kind == "message":
        template = draw(st.sampled_from(sorted(INNER)))
        inner = INNER[template].safe_substitute(
            corp_id=CORP,
            agent_id=draw(st.sampled_from(["1", "2", "", "x"])),
            user=draw(st.sampled_from(["zhangsan", "lijingli", "wangwu", "ghost"]) | xml_text),
            content=draw(command_text.filter(lambda t: "]]>" not in t) | xml_text),
            create_time=draw(
                st.sampled_from([str(int(time.time())), "0", "-1", "x", "99999999999999"])
            ),
            msg_id=draw(st.integers(min_value=0, max_value=2**63)),
            event_key=draw(
                st.sampled_from(["/审批 同意 Q1", "/quote approve Q1", "z:garbage", "z:", ""])
                | xml_text
            ),
            task_id=draw(xml_text),
            response_code=draw(xml_text),
        )
        if draw(st.booleans()):  # cut or garble the XML itself
            cut = draw(st.integers(min_value=0, max_value=len(inner)))
            inner = inner[:cut] + draw(st.sampled_from(["", "<", "&", "<x>", "]]>"]))
        encrypted = crypto.encrypt(inner.encode())
    elif kind == "ciphertext":
        encrypted = draw(
            st.one_of(
                st.binary(max_size=96).map(lambda b: base64.b64encode(b).decode()),
                st.text(max_size=80),
            )
        )
    else:
        encrypted = draw(
            st.text(
                alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
                max_size=80,
            )
        )
    signature = (
        crypto.signature(stamp, nonce, encrypted)
        if draw(st.booleans()) or kind == "message"
        else draw(st.text(max_size=40))
    )
    params = {"msg_signature": signature, "timestamp": stamp, "nonce": nonce}
    if kind == "verify":
        method, params["echostr"] = "GET", encrypted
        return method, params, b""
    if kind == "envelope":
        body = draw(
            st.one_of(st.binary(max_size=300), xml_text.map(lambda t: f"<xml>{t}</xml>".encode()))
        )
    else:
        body = (
            f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]>"
            "</Encrypt></xml>"
        ).encode()
    for name in list(params):
        if draw(st.integers(min_value=0, max_value=9)) == 0:
            del params[name]
    return method, params, body


@pytest.mark.parametrize("run", RUNS)
def test_wecom_decoder_answers_cleanly(app: App, run: int) -> None:
    ran, wanted = 0, EXAMPLES["wecom"][run]
    app.errors.take()

    @fuzz_settings(wanted, run)
    @given(wecom_requests(app.crypto))
    def one(request: tuple[str, dict[str, str], bytes]) -> None:
        nonlocal ran
        ran += 1
        method, params, body = request
        answer = app.http.request(
            method,
            "/wecom/callback",
            params=params,
            content=body or None,
            headers={"Content-Type": "text/xml"},
        )
        clean(answer, (method, params, body[:200]))

    one()
    app.quiet()
    assert app.errors.take() == []
    report("wecom", ran, wanted)
