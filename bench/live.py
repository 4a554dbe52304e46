"""Live approvals: time from a signed `/quote` needing approval to the approver's card arriving.

`dealbot serve` and `dealbot worker` run as separate processes on one fresh database (SQLite, then
Postgres), behind a local fake Slack that records when each request arrives and enforces Slack's
limits as the deployment is told them: 1 message per second per channel and a bot-wide cap
(`--bot-rate`, both sides), answering 429 with `Retry-After: 1` past either. Each of `--teams`
workspaces has an admin, a manager and a rep; the reps' leads are added first, then:

* steady: `--quotes` quotes at `--rate` per second, round-robin over the workspaces, each asking
  that workspace's manager. Reported: p50 / p95 / p99 of signed request sent → card arrived.
  Target: p95 < 1 s (before, cards waited for the worker's 5 s poll).
* burst: `--burst` quotes within 2 s. The fake also answers every 25th card with a 429 it was not
  obliged to send. Reported: cards lost (never arrived), sent twice, 429s answered, and 429s
  unobeyed (a message to that channel arriving before its Retry-After ran out).

* clicks: each workspace gets a second manager, then `--clicks` new quotes (at half `--rate`, as
  each asks two managers) whose cards all arrive before the first manager clicks Approve on each
  (a signed block_actions request, at half `--rate`: a click sends an edit and tells the rep).
  Reported: p50 / p95 / p99 of click sent → the last other card about that quote edited
  (`chat.update` arrived). Target: p95 < 2 s.

Quick look: `python -m bench live --quick` (300 steady quotes at 10/s, a burst of 200, 300
clicks, 30 workspaces).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import re
import statistics
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

from bench import Table, progress
from bench.http import (
    base_env,
    dealbot_command,
    free_port,
    prepare_schema,
    running,
    scratch_database,
    signed,
    slack_web_api,
)
from reminders.limits import Limit
from tests.fakes.http import Answer, FakeServer, Recorded

CARD = re.compile(r"Deal (\d+)-(\d+)\b")
APPROVE = re.compile(r"/quote approve (Q\d+)")
CLICK = Path(__file__).parent.parent / "tests" / "payloads" / "slack" / "block_actions.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quotes", type=int, default=1000, help="steady quotes (default 1000)")
    parser.add_argument("--rate", type=float, default=10.0, help="steady quotes per second")
    parser.add_argument("--burst", type=int, default=200, help="quotes sent within 2 s")
    parser.add_argument(
        "--clicks",
        type=int,
        default=0,
        help="quotes approved by a click (default: as many as --quotes)",
    )
    parser.add_argument("--teams", type=int, default=40, help="workspaces, one manager each")
    parser.add_argument("--bot-rate", default="1200/60s", help="bot-wide cap, both sides")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--pg", default="127.0.0.1:5432", help="Postgres host:port (user postgres)")
    parser.add_argument("--quick", action="store_true", help="300 steady quotes, 30 workspaces")


class Window:
    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self.accepted: deque[float] = deque()

    def full(self, now: float) -> bool:
        while self.accepted and now - self.accepted[0] >= self.limit.seconds:
            self.accepted.popleft()
        return len(self.accepted) >= self.limit.count


Cards = functools.partial(defaultdict, dict)


@dataclass
class Fake:
    """Slack's Web API and response URLs: cards timed on arrival, limits enforced, 429s checked."""

    bot_rate: Limit
    refuse_every: int = 0  # during the burst: every n-th card gets a 429 it need not have got
    cards: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    answered: dict[str, float] = field(default_factory=dict)  # command key → its answer arrived
    refused_limit: int = 0
    refused_extra: int = 0
    unobeyed: int = 0
    unacked: int = 0  # quotes the server did not ack with 200 (Slack gives up after 3 s)
    held: dict[str, float] = field(default_factory=dict)
    # card key → channel → (its ts, the quote its Approve button names), for the clicks
    sent_cards: dict[str, dict[str, tuple[str, str]]] = field(default_factory=lambda: Cards())
    by_ts: dict[tuple[str, str], str] = field(default_factory=dict)  # (channel, ts) → card key
    edits: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    windows: dict[str, Window] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.bot = Window(self.bot_rate)
        self.posted = 0
        self.server = FakeServer(self.answer)
        self.server.server.socket.listen(512)
        self.url = self.server.url

    def answer(self, request: Recorded) -> Answer:
        now = time.time()
        if request.path.startswith("/response/"):
            with self.lock:
                self.answered[request.path.removeprefix("/response/")] = now
            return Answer(body={"ok": True})
        args = {**request.query, **request.form, **(request.json or {})}
        if request.name == "conversations.open":
            return Answer(body={"ok": True, "channel": {"id": f"D{args.get('users', '')}"}})
        if request.name not in ("chat.postMessage", "chat.update"):
            return slack_web_api(request, team="T00")
        channel = str(args.get("channel"))
        with self.lock:
            if request.name == "chat.update":
                return self._edit(channel, str(args.get("ts")), now)
            if self.held.get(channel, 0) > now:
                self.unobeyed += 1
            window = self.windows.setdefault(channel, Window(Limit(1, 1)))
            if window.full(now) or self.bot.full(now):
                self.refused_limit += 1
                return self._refuse(channel, now)
            match = CARD.search(str(args.get("text", "")))
            is_card = match and "/quote approve" in str(args.get("blocks", ""))
            if is_card:
                self.posted += 1
                if self.refuse_every and self.posted % self.refuse_every == 0:
                    self.refused_extra += 1
                    return self._refuse(channel, now)
            window.accepted.append(now)
            self.bot.accepted.append(now)
            ts = f"{now:.6f}"
            if is_card and match:
                key = f"{match.group(1)}-{match.group(2)}"
                self.cards[key].append(now)
                quote = APPROVE.search(str(args.get("blocks", "")))
                self.sent_cards[key][channel] = (ts, quote.group(1) if quote else "")
                self.by_ts[(channel, ts)] = key
        return Answer(body={"ok": True, "channel": channel, "ts": ts})

    def _edit(self, channel: str, ts: str, now: float) -> Answer:
        """chat.update: paced like any message (the deployment books it the same way)."""
        if self.held.get(channel, 0) > now:
            self.unobeyed += 1
        window = self.windows.setdefault(channel, Window(Limit(1, 1)))
        if window.full(now) or self.bot.full(now):
            self.refused_limit += 1
            return self._refuse(channel, now)
        window.accepted.append(now)
        self.bot.accepted.append(now)
        key = self.by_ts.get((channel, ts))
        if key is None:
            return Answer(body={"ok": False, "error": "message_not_found"})
        self.edits[key].setdefault(channel, now)
        return Answer(body={"ok": True, "channel": channel, "ts": ts})

    def _refuse(self, channel: str, now: float) -> Answer:
        self.held[channel] = now + 1
        return Answer(status=429, body={"ok": False, "error": "ratelimited"},
                      headers={"Retry-After": "1"})  # fmt: skip

    def close(self) -> None:
        self.server.close()


def slash(fake: Fake, key: str, team: int, user: str, command: str, text: str) -> bytes:
    return urlencode({
        "token": "x", "team_id": f"T{team:02d}", "team_domain": f"bench{team}",
        "channel_id": "CBENCH", "channel_name": "sales", "user_id": user,
        "user_name": user.lower(), "command": command, "text": text, "api_app_id": "A1",
        "response_url": f"{fake.url}/response/{key}", "trigger_id": key,
    }).encode()  # fmt: skip


async def command(
    http: aiohttp.ClientSession, url: str, fake: Fake, key: str, team: int, user: str,
    line: str, *, wait: bool = True,
) -> float | None:  # fmt: skip
    """Send one signed slash command; the moment it was sent (None: not acknowledged). `wait`:
    until answered."""
    verb, _, text = line.partition(" ")
    body = slash(fake, key, team, user, verb, text)
    sent = time.time()
    async with http.post(f"{url}/slack/events", data=body, headers=signed(body)) as response:
        await response.read()
        if response.status != 200 and wait:
            raise RuntimeError(f"{line!r} in T{team:02d}: HTTP {response.status}")
        if response.status != 200:
            fake.unacked += 1  # Slack would show the rep an error; no card is owed
            return None
    deadline = time.monotonic() + 60
    while wait and key not in fake.answered:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{line!r} in T{team:02d} was never answered")
        await asyncio.sleep(0.01)
    return sent


async def prepare(url: str, fake: Fake, teams: int, leads: int) -> None:
    """Each workspace: an admin, a manager, and a rep's leads (numbered 1… in each workspace)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def team(t: int) -> None:
            await command(http, url, fake, f"a{t}", t, f"UA{t}", "/team config locale=en")
            await command(http, url, fake, f"m{t}", t, f"UM{t}", "/help")
            await command(
                http, url, fake, f"r{t}", t, f"UA{t}", f"/team role <@UM{t}|m{t}> manager"
            )
            for n in range(1, leads + 1):
                await command(http, url, fake, f"l{t}-{n}", t, f"UR{t}",
                              f"/lead add Deal {t}-{n} value=120k")  # fmt: skip

        await asyncio.gather(*(team(t) for t in range(teams)))


async def quotes(
    url: str, fake: Fake, plan: list[tuple[int, int]], seconds: float
) -> dict[str, float]:
    """Send quote `n` of workspace `t` for each (t, n) in `plan`, evenly over `seconds` (open loop:
    a slow answer does not delay the next quote). Returns card key → moment sent."""
    sent: dict[str, float] = {}
    gap = seconds / max(1, len(plan))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        start = time.monotonic()

        async def one(index: int, t: int, n: int) -> None:
            await asyncio.sleep(max(0.0, start + index * gap - time.monotonic()))
            line = f"/quote L{n} 80k discount=5%"
            moment = await command(http, url, fake, f"q{t}-{n}", t, f"UR{t}", line, wait=False)
            if moment is not None:
                sent[f"{t}-{n}"] = moment

        await asyncio.gather(*(one(i, t, n) for i, (t, n) in enumerate(plan)))
    return sent


async def second_managers(url: str, fake: Fake, teams: int) -> None:
    """Each workspace's second manager: from now on each quote's card goes to two people."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def team(t: int) -> None:
            await command(http, url, fake, f"n{t}", t, f"UN{t}", "/help")
            await command(http, url, fake, f"s{t}", t, f"UA{t}",
                          f"/team role <@UN{t}|n{t}> manager")  # fmt: skip

        await asyncio.gather(*(team(t) for t in range(teams)))


def click_body(
    fake: Fake, key: str, team: int, user: str, channel: str, ts: str, quote: str
) -> bytes:
    """A block_actions request shaped like Slack's own: `user` pressed Approve on the card `ts`."""
    payload = json.loads(CLICK.read_text())
    payload["user"].update(
        id=user, name=user.lower(), username=user.lower(), team_id=f"T{team:02d}"
    )
    payload["team"] = {"id": f"T{team:02d}", "domain": f"bench{team}"}
    payload["channel"] = {"id": channel, "name": "directmessage"}
    payload["container"].update(channel_id=channel, message_ts=ts)
    payload["message"]["ts"] = ts
    payload["actions"][0]["value"] = f"/quote approve {quote}"
    payload["trigger_id"] = f"click-{key}"
    payload["response_url"] = f"{fake.url}/response/c{key}"
    return urlencode({"payload": json.dumps(payload)}).encode()


async def clicks(url: str, fake: Fake, keys: list[str], seconds: float) -> dict[str, float]:
    """Workspace t's first manager approves each quote from their card, evenly over `seconds` (open
    loop). Returns card key → moment the click was sent."""
    sent: dict[str, float] = {}
    gap = seconds / max(1, len(keys))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        start = time.monotonic()

        async def one(index: int, key: str) -> None:
            await asyncio.sleep(max(0.0, start + index * gap - time.monotonic()))
            t = int(key.partition("-")[0])
            user = f"UM{t}"
            ts, quote = fake.sent_cards[key][f"D{user}"]
            body = click_body(fake, key, t, user, f"D{user}", ts, quote)
            moment = time.time()
            async with http.post(
                f"{url}/slack/events", data=body, headers=signed(body)
            ) as response:
                await response.read()
                if response.status != 200:
                    fake.unacked += 1
                    return
            sent[key] = moment

        await asyncio.gather(*(one(i, key) for i, key in enumerate(keys)))
    return sent


def others_edited(fake: Fake, key: str) -> bool:
    t = key.partition("-")[0]
    others = set(fake.sent_cards[key]) - {f"DUM{t}"}
    return bool(others) and others <= set(fake.edits.get(key, {}))


async def settle_edits(fake: Fake, keys: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(others_edited(fake, key) for key in keys) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def settle(fake: Fake, expected: set[str], timeout: float) -> None:
    """Until every expected card arrived, then a little longer so a late duplicate shows too."""
    deadline = time.monotonic() + timeout
    while not expected <= set(fake.cards) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(3)


def percentile(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return samples[0] if samples else 0.0
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


@dataclass
class Result:
    db: str
    steady: list[float]  # seconds, sent → arrived
    answers: list[float]  # seconds, sent → the rep's answer at the response_url (the command ran)
    steady_lost: int
    steady_twice: int
    burst_lost: int
    burst_twice: int
    burst_last: float  # seconds from the first burst quote sent to the last card arrived
    refused_limit: int
    refused_extra: int
    unobeyed: int
    unacked: int
    clicks: list[float] = field(default_factory=list)  # seconds, click → last other card edited
    clicks_unedited: int = 0  # clicked quotes with another card never edited
    click_cards: int = 0  # cards per clicked quote (besides the clicker's), on average ×100
    click_refused: int = 0  # 429s for a broken pace while the quotes to click and the clicks ran
    click_unobeyed: int = 0


def measure(db: str, args: argparse.Namespace) -> Result:
    fake = Fake(bot_rate=Limit.parse(args.bot_rate))
    try:
        with scratch_database(db, args.pg, "live") as url:
            prepare_schema(url)
            env = base_env()
            env.update(
                DEALBOT_DATABASE_URL=url, SLACK_BOT_TOKEN="xoxb-bench",
                SLACK_SIGNING_SECRET="bench-signing-secret", SLACK_API_URL=f"{fake.url}/api/",
                DEALBOT_LOG_LEVEL="WARNING", DEALBOT_MEMBER_RATE="off", DEALBOT_TEAM_RATE="off",
                DEALBOT_SLACK_BOT_RATE=args.bot_rate,
            )  # fmt: skip
            port = free_port()  # the worker's /metrics: it is up once that answers
            worker = [*dealbot_command(), "worker", "--metrics-port", str(port)]
            with (
                running([*dealbot_command(), "serve"], env, health="/healthz") as server,
                running(worker, env, health="/metrics", port=port),
            ):
                return load(db, server.url, fake, args)
    finally:
        fake.close()


def load(db: str, url: str, fake: Fake, args: argparse.Namespace) -> Result:
    teams = args.teams
    steady_each, burst_each = -(-args.quotes // teams), -(-args.burst // teams)
    click_each = -(-args.clicks // teams)
    leads = steady_each + burst_each + click_each
    progress(f"live: {db}, {teams} workspaces, {leads} leads each")
    asyncio.run(prepare(url, fake, teams, leads))

    progress(f"live: {db}, {args.quotes} quotes at {args.rate:g}/s")
    plan = [(i % teams, i // teams + 1) for i in range(args.quotes)]
    sent = asyncio.run(quotes(url, fake, plan, args.quotes / args.rate))
    asyncio.run(settle(fake, set(sent), 60))
    cards = {key: fake.cards[key] for key in sent if key in fake.cards}
    steady = [cards[key][0] - moment for key, moment in sent.items() if key in cards]
    answers = [fake.answered[f"q{key}"] - moment for key, moment in sent.items()
               if f"q{key}" in fake.answered]  # fmt: skip
    steady_twice = sum(len(arrivals) - 1 for arrivals in cards.values())

    progress(f"live: {db}, a burst of {args.burst} quotes in 2 s")
    fake.refuse_every = 25
    plan = [(i % teams, steady_each + i // teams + 1) for i in range(args.burst)]
    burst = asyncio.run(quotes(url, fake, plan, 2.0))
    asyncio.run(settle(fake, set(burst), 120))
    cards = {key: fake.cards[key] for key in burst if key in fake.cards}
    first = min(burst.values(), default=0.0)
    last = max((arrivals[-1] for arrivals in cards.values()), default=first)
    burst_refused = (fake.refused_limit, fake.refused_extra, fake.unobeyed, fake.unacked)

    progress(f"live: {db}, a second manager in each workspace; {args.clicks} quotes to click")
    fake.refuse_every = 0
    fake.refused_limit = fake.unobeyed = 0
    asyncio.run(second_managers(url, fake, teams))
    half = args.rate / 2
    plan = [(i % teams, steady_each + burst_each + i // teams + 1) for i in range(args.clicks)]
    asked = asyncio.run(quotes(url, fake, plan, args.clicks / half))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(
        len(fake.sent_cards.get(key, {})) >= 2 for key in asked
    ):
        time.sleep(0.1)
    ready = [key for key in asked if f"DUM{key.partition('-')[0]}" in fake.sent_cards.get(key, {})]
    progress(f"live: {db}, {len(ready)} approvals clicked at {half:g}/s")
    clicked = asyncio.run(clicks(url, fake, ready, len(ready) / half))
    asyncio.run(settle_edits(fake, set(clicked), 60))
    delays = []
    for key, moment in clicked.items():
        t = key.partition("-")[0]
        others = [at for channel, at in fake.edits.get(key, {}).items() if channel != f"DUM{t}"]
        if others_edited(fake, key):
            delays.append(max(others) - moment)
    others_total = sum(len(fake.sent_cards[key]) - 1 for key in clicked)
    return Result(
        db=db, steady=steady, answers=answers, steady_lost=len(sent) - len(steady),
        steady_twice=steady_twice,
        burst_lost=len(burst) - len(cards),
        burst_twice=sum(len(arrivals) - 1 for arrivals in cards.values()),
        burst_last=last - first, refused_limit=burst_refused[0],
        refused_extra=burst_refused[1], unobeyed=burst_refused[2], unacked=burst_refused[3],
        clicks=delays, clicks_unedited=len(clicked) - len(delays),
        click_cards=round(100 * others_total / max(1, len(clicked))),
        click_refused=fake.refused_limit, click_unobeyed=fake.unobeyed,
    )  # fmt: skip


def run(args: argparse.Namespace) -> Table:
    if args.quick:
        args.quotes, args.teams = 300, 30
    args.clicks = args.clicks or args.quotes
    table = Table(
        title=f"Live approvals: signed /quote → the approver's card at the fake Slack "
        f"({args.quotes} quotes at {args.rate:g}/s over {args.teams} workspaces; burst: "
        f"{args.burst} in 2 s); click → last other card edited ({args.clicks} quotes, two "
        f"managers each, clicks at {args.rate / 2:g}/s)",
        columns=["db", "quotes", "p50 ms", "p95 ms", "p99 ms", "max ms", "answer p50/p95 ms",
                 "lost", "twice",
                 "burst lost", "burst twice", "burst last card s", "429 limit", "429 extra",
                 "429 unobeyed", "not acked", "clicks", "click→edit p50 ms", "p95 ms",
                 "p99 ms", "max ms", "other cards", "unedited", "click 429 limit",
                 "click 429 unobeyed"],
    )  # fmt: skip
    for db in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        result = measure(db, args)
        ms = [seconds * 1000 for seconds in result.steady]
        answered = [seconds * 1000 for seconds in result.answers]
        clicked = [seconds * 1000 for seconds in result.clicks]
        table.add(
            db, len(ms), percentile(ms, 50), percentile(ms, 95), percentile(ms, 99),
            max(ms) if ms else 0.0,
            f"{percentile(answered, 50):.0f} / {percentile(answered, 95):.0f}",
            result.steady_lost, result.steady_twice, result.burst_lost,
            result.burst_twice, result.burst_last, result.refused_limit, result.refused_extra,
            result.unobeyed, result.unacked, len(clicked),
            percentile(clicked, 50), percentile(clicked, 95), percentile(clicked, 99),
            max(clicked) if clicked else 0.0, f"{result.click_cards / 100:g}",
            result.clicks_unedited, result.click_refused, result.click_unobeyed,
        )  # fmt: skip
    table.notes.append(
        "dealbot serve and dealbot worker as separate processes; the serving process delivers the "
        "cards its commands queue as they commit (the worker polls every 5 s as the safety net). "
        "answer: the same quote's own reply at its response_url (the command had run). "
        "429 limit: answered because a pace was broken; 429 extra: injected (every 25th burst "
        "card); unobeyed: a message to a channel before its Retry-After ran out; not acked: quotes "
        "the server did not answer 200 within Slack's 3 s (no card owed). Target: p95 < 1000 ms; "
        "nothing lost or twice; 0 unobeyed. "
        "click→edit: a signed block_actions Approve on the first manager's card → the "
        "chat.update of the last other card about that quote (the second manager's) at the fake "
        "Slack; other cards: per clicked quote; unedited: clicked quotes whose other card was "
        "never edited; click 429s: while the quotes to click were asked and clicked. "
        "Target: p95 < 2000 ms."
    )
    return table


def headline(table: Table) -> list[tuple[str, str, str, str]]:
    """For `python -m bench`'s summary: p95 per database, and the burst's losses and 429s."""
    rows = []
    for row in table.rows:
        p95 = float(row[3])
        rows.append((f"{row[0]}: /quote → card p95", f"{p95:.0f} ms", "< 1000 ms",
                     "yes" if p95 < 1000 else "NO"))  # fmt: skip
        clean = all(int(row[i]) == 0 for i in (7, 8, 9, 10, 14))
        rows.append((f"{row[0]}: lost, twice, 429 unobeyed",
                     f"{int(row[7]) + int(row[9])}, {int(row[8]) + int(row[10])}, {row[14]}",
                     "0, 0, 0", "yes" if clean else "NO"))  # fmt: skip
        click, met = float(row[18]), float(row[18]) < 2000 and int(row[22]) == 0
        rows.append((f"{row[0]}: click → last other card edited p95", f"{click:.0f} ms",
                     "< 2000 ms", "yes" if met else "NO"))  # fmt: skip
    return rows
