"""Command throughput and latency through the real HTTP endpoint vs. a bare slack-bolt app.

Both run as uvicorn subprocesses and get the same signed Slack slash commands from the same client
(this process), at `--clients` concurrent clients, each waiting for its answer before sending the
next. The bare app (slack-bolt `AsyncApp`, one listener that only acks) is done at its ack. dealbot
acks at once and answers on the command's `response_url` after the command ran: `/follow L<n> …`
writes a follow-up, the lead, an audit row and the command log. Its latency is measured to that
answer (arriving at a local fake Slack), so it includes the database write; its ack latency is shown
too. Ratio = dealbot's answered commands per second / the bare app's acked commands per second.

Quick look: `python -m bench http --commands 300 --db sqlite`."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx

from bench import Table, progress
from tests.fakes.http import Answer, FakeServer, Recorded

SECRET = "bench-signing-secret"
ROOT = Path(__file__).resolve().parent.parent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--commands", type=int, default=2000, help="measured commands per server")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--pg", default="127.0.0.1:5432", help="Postgres host:port (user postgres)")
    parser.add_argument("--quick", action="store_true", help="fewer commands (600)")


# --- shared by the benchmarks that start real processes ------------------------------------------
@contextmanager
def scratch_database(db: str, pg: str, tag: str) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file in a temporary folder, or a Postgres database
    `dealbot_scale_<tag>_<pid>` created here and dropped afterwards."""
    if db == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"dealbot-{tag}-") as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    host, _, port = pg.partition(":")
    name = f"dealbot_scale_{tag}_{os.getpid()}"
    where = ["-h", host, "-p", port or "5432", "-U", "postgres"]
    subprocess.run(
        ["dropdb", *where, "--if-exists", "--force", name], check=True, capture_output=True
    )
    subprocess.run(["createdb", *where, name], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@{host}:{port or '5432'}/{name}"
    finally:
        subprocess.run(
            ["dropdb", *where, "--if-exists", "--force", name], check=False, capture_output=True
        )


def prepare_schema(url: str) -> None:
    """The models' tables, stamped as the newest migration (so `dealbot serve` migrates nothing):
    benchmarks measure the code as it is, even while a model change waits for its migration."""
    from alembic import command

    from models.db import create_schema, make_engine
    from models.migrate import alembic_config

    engine = make_engine(url)
    try:
        create_schema(engine)
        command.stamp(alembic_config(engine), "head")
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def dealbot_command() -> list[str]:
    beside = Path(sys.executable).parent / "dealbot"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "bot.cli"]


@dataclass
class Server:
    popen: subprocess.Popen[bytes]
    url: str
    log: Path

    def wait_ready(self, path: str = "/healthz", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code < 500:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"server never answered {path}: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def rss_kb(self) -> tuple[int, int]:
        """Resident memory now and at its peak (VmRSS, VmHWM) in kB."""
        status = Path(f"/proc/{self.popen.pid}/status").read_text()
        found = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE))
        return int(found["VmRSS"]), int(found["VmHWM"])


@contextmanager
def running(
    argv: list[str], env: dict[str, str], *, health: str, port: int | None = None
) -> Iterator[Server]:
    """A process serving HTTP, ready once `health` answers; `--port` is added unless a port is
    given (then the command line already says where it listens)."""
    if port is None:
        port = free_port()
        argv = [*argv, "--port", str(port)]
    log = Path(tempfile.mkstemp(prefix="dealbot-bench-", suffix=".log")[1])
    with log.open("wb") as sink:
        popen = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
    server = Server(popen, f"http://127.0.0.1:{port}", log)
    try:
        server.wait_ready(health)
        yield server
    except BaseException:
        progress(
            f"{' '.join(argv[:2])} log, last lines:\n{log.read_text(errors='replace')[-3000:]}"
        )
        raise
    finally:
        server.stop()
        if os.environ.get("BENCH_KEEP_LOGS"):
            progress(f"log kept: {log}")
        else:
            log.unlink(missing_ok=True)


def base_env() -> dict[str, str]:
    """This environment without any dealbot or platform setting, plus the fake Slack's secret."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DEALBOT_", "SLACK_", "TELEGRAM_", "WECOM_"))
    }
    env.update(PYTHONUTF8="1", PYTHONPATH=str(ROOT))
    return env


class FakeSlack:
    """Slack's Web API and response URLs on a local port. A command's answer arriving at its
    response_url completes the future its client waits on."""

    def __init__(self) -> None:
        self.waiting: dict[
            str, tuple[asyncio.AbstractEventLoop, asyncio.Future[tuple[float, Any]]]
        ] = {}
        self.lock = threading.Lock()
        self.server = FakeServer(self.answer)
        # socketserver listens with a backlog of 5: 32 answers posted at once would be refused.
        self.server.server.socket.listen(256)
        self.url = self.server.url

    def answer(self, request: Recorded) -> Answer:
        if request.path.startswith("/response/"):
            key = request.path.removeprefix("/response/")
            with self.lock:
                loop, future = self.waiting.pop(key, (None, None))
            if loop is not None and future is not None:
                loop.call_soon_threadsafe(_resolve, future, (time.perf_counter(), request.json))
            return Answer(body={"ok": True})
        return slack_web_api(request, team="TBENCH")

    def expect(self, key: str) -> asyncio.Future[tuple[float, Any]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[float, Any]] = loop.create_future()
        with self.lock:
            self.waiting[key] = (loop, future)
        return future

    def close(self) -> None:
        self.server.close()


def slack_web_api(request: Recorded, *, team: str) -> Answer:
    """What a bench's fake Slack answers to the Web API calls dealbot makes besides its messages:
    auth.test for workspace `team`, users.info naming a user after their id; ok for the rest."""
    if request.name == "auth.test":
        return Answer(body={"ok": True, "team_id": team, "user_id": "UBOT", "bot_id": "B1"})
    if request.name == "users.info":
        user = request.form.get("user") or request.query.get("user") or "U0"
        profile = {"id": user, "name": user.lower(), "profile": {"display_name": user.lower()}}
        return Answer(body={"ok": True, "user": profile})
    return Answer(body={"ok": True})


def _resolve(future: asyncio.Future[tuple[float, Any]], value: tuple[float, Any]) -> None:
    if not future.done():
        future.set_result(value)


def signed(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    signature = (
        "v0="
        + hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    )
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
    }


def slash(fake: FakeSlack, key: str, user: str, command: str, text: str) -> bytes:
    return urlencode(
        {
            "token": "x",
            "team_id": "TBENCH",
            "team_domain": "bench",
            "channel_id": "CBENCH",
            "channel_name": "sales",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A1",
            "response_url": f"{fake.url}/response/{key}",
            "trigger_id": key,
        }
    ).encode()


# --- the load ------------------------------------------------------------------------------------
@dataclass
class Measured:
    done: int = 0
    seconds: float = 0.0
    ack_ms: list[float] = field(default_factory=list)
    answer_ms: list[float] = field(default_factory=list)
    failed: int = 0  # not acked with 200
    lost: int = 0  # acked, never answered

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0


def percentile(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return samples[0] if samples else 0.0
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


async def drive(
    url: str, fake: FakeSlack, *, clients: int, total: int, answered: bool, line: Any, tag: str
) -> Measured:
    """`clients` concurrent clients send `total` commands between them; `line(client, n)` gives
    (user, command, text). With `answered`, a client waits for the answer on the response_url."""
    result = Measured()
    taken = iter(range(total))
    # aiohttp: the lightest client at hand, so the client takes as little of the CPU as it can.
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as http:

        async def client(index: int) -> None:
            for n in taken:
                user, command, text = line(index, n)
                key = f"{tag}-{index}-{n}"
                waiting = fake.expect(key) if answered else None
                body = slash(fake, key, user, command, text)
                sent = time.perf_counter()
                async with http.post(
                    f"{url}/slack/events", data=body, headers=signed(body)
                ) as response:
                    await response.read()
                    status = response.status
                acked = time.perf_counter()
                if status != 200:
                    result.failed += 1
                    continue
                result.ack_ms.append((acked - sent) * 1000)
                if waiting is not None:
                    try:
                        arrived, _payload = await asyncio.wait_for(waiting, timeout=30)
                    except TimeoutError:
                        result.lost += 1  # acked, but its answer never reached the response_url
                        continue
                    result.answer_ms.append((arrived - sent) * 1000)
                result.done += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        result.seconds = time.perf_counter() - started
    return result


async def warm_up(url: str, fake: FakeSlack, clients: int) -> dict[int, int]:
    """Each client's user registers and adds the lead it will follow up; client → lead number."""
    numbers: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        admin = fake.expect("warm-admin")
        body = slash(fake, "warm-admin", "UADMIN", "/team", "config locale=en")
        await http.post("/slack/events", content=body, headers=signed(body))
        await asyncio.wait_for(admin, 60)

        async def one(index: int) -> None:
            key = f"warm-{index}"
            waiting = fake.expect(key)
            body = slash(fake, key, f"U{index:04d}", "/lead", f"add Bench client {index} value=10k")
            await http.post("/slack/events", content=body, headers=signed(body))
            _arrived, payload = await asyncio.wait_for(waiting, 60)
            match = re.search(r"\bL(\d+)\b", str(payload.get("text", "")))
            if not match:
                raise RuntimeError(f"warm-up failed: {payload}")
            numbers[index] = int(match.group(1))

        await asyncio.gather(*(one(i) for i in range(clients)))
    return numbers


def dealbot_env(fake: FakeSlack, url: str) -> dict[str, str]:
    env = base_env()
    env.update(
        DEALBOT_DATABASE_URL=url,
        SLACK_BOT_TOKEN="xoxb-bench",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=f"{fake.url}/api/",
        DEALBOT_LOG_LEVEL="INFO",
        # Capacity is measured, not the per-member and per-team command limits (60/min, 600/min).
        DEALBOT_MEMBER_RATE="off",
        DEALBOT_TEAM_RATE="off",
    )
    return env


def follow_up_load(numbers: dict[int, int]) -> Any:
    def line(client: int, n: int) -> tuple[str, str, str]:
        return f"U{client:04d}", "/follow", f"L{numbers[client]} bench call {n} next=+3d via=call"

    return line


def measure_dealbot(
    db: str, args: argparse.Namespace, fake: FakeSlack, total: int, during: Any = None
) -> Measured:
    """Start `dealbot serve` on a fresh database, warm it up, measure. `during(server, phase)` is
    called when the server is up ("started"), after the warm-up ("idle") and after the load
    ("loaded"): the memory benchmark reads the server's RSS there."""
    with scratch_database(db, args.pg, "http") as url:
        prepare_schema(url)
        with running(
            [*dealbot_command(), "serve"], dealbot_env(fake, url), health="/healthz"
        ) as server:
            if during:
                during(server, "started")
            numbers = asyncio.run(warm_up(server.url, fake, args.clients))
            if during:
                during(server, "idle")
            progress(f"http: dealbot on {db}, {total} commands from {args.clients} clients")
            measured = asyncio.run(
                drive(
                    server.url,
                    fake,
                    clients=args.clients,
                    total=total,
                    answered=True,
                    line=follow_up_load(numbers),
                    tag=f"{db}",
                )
            )
            if during:
                during(server, "loaded")
            return measured


def measure_bare(
    args: argparse.Namespace, fake: FakeSlack, total: int, *, answers: bool = False
) -> Measured:
    """The bare slack-bolt app: acking only, or (`answers`) acking and then answering every command
    on its response_url with a fixed text, as any slash-command app must."""
    env = base_env()
    env.update(BENCH_SLACK_API_URL=f"{fake.url}/api/", BENCH_SIGNING_SECRET=SECRET)
    if answers:
        env["BENCH_BARE_ANSWERS"] = "1"
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.http:bare_app",
        "--factory",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    what = "acks and answers" if answers else "acks only"
    with running(argv, env, health="/ready") as server:
        line = lambda client, n: (f"U{client:04d}", "/lead", f"list {n}")  # noqa: E731
        for tag, count in (("warm", args.clients), ("", total)):
            if tag == "":
                progress(f"http: bare slack-bolt app ({what}), {total} commands from {args.clients} clients")
            measured = asyncio.run(
                drive(
                    server.url,
                    fake,
                    clients=args.clients,
                    total=count,
                    answered=answers,
                    line=line,
                    tag=f"bare-{'answers' if answers else 'acks'}-{tag or 'run'}",
                )
            )
        return measured


def bare_app() -> Any:
    """uvicorn factory: a slack-bolt `AsyncApp` that acks every slash command and does nothing else
    (or, with BENCH_BARE_ANSWERS set, also answers it on its response_url), behind the same
    Starlette handler dealbot uses."""
    from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    client = AsyncWebClient(token="xoxb-bench", base_url=os.environ["BENCH_SLACK_API_URL"])
    app = AsyncApp(client=client, signing_secret=os.environ["BENCH_SIGNING_SECRET"])

    async def ack_only(ack: Any) -> None:
        await ack()

    async def ack_and_answer(ack: Any, respond: Any) -> None:
        await ack()
        await respond(text="done", response_type="ephemeral")

    listener = ack_and_answer if os.environ.get("BENCH_BARE_ANSWERS") else ack_only
    for command in ("/lead", "/follow"):
        app.command(command)(listener)
    handler = AsyncSlackRequestHandler(app)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def ready(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[Route("/slack/events", events, methods=["POST"]), Route("/ready", ready)]
    )


def run(args: argparse.Namespace) -> Table:
    total = 600 if args.quick else args.commands
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    fake = FakeSlack()
    try:
        bare = measure_bare(args, fake, total)
        answering = measure_bare(args, fake, total, answers=True)
        results = {db: measure_dealbot(db, args, fake, total) for db in dbs}
    finally:
        fake.close()
    table = Table(
        title=f"Slash commands through HTTP (uvicorn): {args.clients} concurrent clients, {total} "
        f"commands each, every client waits for its answer before the next",
        columns=[
            "server",
            "done",
            "failed",
            "lost",
            "cmd/s",
            "vs bare",
            "vs bare answering",
            "ack p50 ms",
            "ack p99 ms",
            "answer p50 ms",
            "answer p99 ms",
        ],
    )

    def ratio(rate: float, base: Measured) -> str:
        return f"{rate / base.rate:.2f}x" if base.rate else "-"

    for name, measured in (
        ("bare slack-bolt (ack only)", bare),
        ("bare slack-bolt (ack, answer on response_url)", answering),
        *((f"dealbot serve, {db} (/follow)", measured) for db, measured in results.items()),
    ):
        table.add(
            name,
            measured.done,
            measured.failed,
            measured.lost if measured.answer_ms else "-",
            measured.rate,
            ratio(measured.rate, bare),
            ratio(measured.rate, answering),
            percentile(measured.ack_ms, 50),
            percentile(measured.ack_ms, 99),
            percentile(measured.answer_ms, 50) if measured.answer_ms else None,
            percentile(measured.answer_ms, 99) if measured.answer_ms else None,
        )
    table.notes.append(
        "answer = until the reply reached the response_url (for dealbot: the command ran and its "
        "write committed); targets: dealbot >= 0.50x the bare app (ack only), answer p99 < 100 ms."
    )
    table.notes.append(
        f"client, fake Slack and server share this machine ({os.cpu_count()} cores); "
        f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}."
    )
    return table


def headline(table: Table) -> list[tuple[str, str, str, str]]:
    """For `python -m bench`'s summary: throughput vs the bare app, and answer p99, per database."""
    rows = []
    for row in table.rows[2:]:
        ratio, p99 = float(str(row[5]).rstrip("x")), float(row[10])
        rows.append(
            (
                f"{row[0]}: throughput vs bare",
                str(row[5]),
                ">= 0.50x",
                "yes" if ratio >= 0.5 else "NO",
            )
        )
        rows.append(
            (f"{row[0]}: answer p99", f"{p99:.1f} ms", "< 100 ms", "yes" if p99 < 100 else "NO")
        )
    return rows
