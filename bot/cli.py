"""`dealbot`: run, console, serve, worker, db upgrade, outbox."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select, update
from sqlmodel import col

from adapters.console import ConsoleAdapter
from bot import logs
from bot.app import Bot, build
from bot.metrics import Metrics
from bot.settings import Settings, SettingsError
from models.clock import FixedClock
from models.db import make_engine, rewrite_files, unit_of_work
from models.migrate import SchemaTooNew, upgrade
from models.tables import Outbox

# No rich markup in help texts: they show chat commands, and `[bob] /help` is not a markup tag.
app = typer.Typer(help="dealbot — your sales team's process, in the chat it already uses.",
                  no_args_is_help=True, rich_markup_mode=None)
db_app = typer.Typer(help="Database schema.")
telegram_app = typer.Typer(help="Telegram set-up.")
dingtalk_app = typer.Typer(help="DingTalk set-up.")
outbox_app = typer.Typer(help="Pending and dead pushes.", invoke_without_command=True)
config_app = typer.Typer(help="Settings.")
app.add_typer(db_app, name="db")
app.add_typer(outbox_app, name="outbox")
app.add_typer(telegram_app, name="telegram")
app.add_typer(dingtalk_app, name="dingtalk")
app.add_typer(config_app, name="config")

DbOption = Annotated[str | None, typer.Option("--db", help="Database URL (default: DEALBOT_DATABASE_URL or sqlite:///dealbot.db)")]


_held: logs.HeldLines | None = None


def _settings(*, console: bool = False) -> Settings:
    settings = Settings()
    _logs(settings, console=console)
    return settings


def _logs(settings: Settings, *, console: bool = False) -> logs.HeldLines | None:
    """JSON lines, phones, e-mails, tokens and every configured credential masked: to
    DEALBOT_LOG_FILE, else to stderr. The console, without a file, shows warnings and errors only,
    and at its prompt holds them back until the next reply (returned: release it before a
    prompt)."""
    secrets = logs.credentials(settings)
    if settings.log_file:
        stream = open(settings.log_file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - for the process
        logs.configure(settings.log_level, stream, secrets=secrets)
        return None
    if not console:
        logs.configure(settings.log_level, sys.stderr, secrets=secrets)
        return None
    global _held
    if sys.stdin.isatty():  # one for the process: `run` configures it before the console does
        _held = _held or logs.HeldLines(sys.stderr)
    held = _held if sys.stdin.isatty() else None
    level = max(logging.WARNING, logging.getLevelName(settings.log_level.upper()))
    logs.configure(logging.getLevelName(level), held or sys.stderr, secrets=secrets)
    return held


@app.command()
def run(db: DbOption = None, user: Annotated[str, typer.Option(help="Console user")] = "me",
        team: Annotated[str, typer.Option(help="Console team")] = "demo",
        port: Annotated[int, typer.Option(envvar="PORT")] = 8000) -> None:
    """Run everything on one machine: the reminder worker beside the web server (when a platform is
    configured) or beside the console."""
    settings = Settings()
    _logs(settings, console=not settings.platforms)
    metrics = Metrics()  # one /metrics for the web app and the worker beside it
    worker = WorkerThread(db, metrics, grace=settings.shutdown_grace_seconds)
    if settings.platforms:
        _serve(settings, host="0.0.0.0", port=port, db=db, metrics=metrics, worker=worker)
        return
    # SIGTERM ends the console like Ctrl-D, and the worker finishes the push in hand.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        console(user=user, team=team, db=db)
    finally:
        worker.stop()
        worker.join(settings.shutdown_grace_seconds + 1)


class WorkerThread:
    """The worker's scheduler on its own event loop, so the console can keep reading input and the
    web server serving; `stop` ends it as SIGTERM ends `dealbot worker`."""

    def __init__(self, db: str | None, metrics: Metrics | None = None, *, grace: float) -> None:
        self.bot = build(Settings(), database_url=db, metrics=metrics)
        self.grace = grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, name="dealbot-worker", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception:  # noqa: BLE001 - the console must go on even if reminders cannot
            logging.getLogger("dealbot.worker").exception("the reminder worker stopped")
        finally:
            self._started.set()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._started.set()
        await self.bot.worker().serve(self._stop, grace=self.grace)

    def stop(self) -> None:
        self._started.wait(30)
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # its loop has ended already
                self._loop.call_soon_threadsafe(self._stop.set)

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)


@app.command()
def console(user: Annotated[str, typer.Option(help="Who you are in the console")] = "me",
            team: Annotated[str, typer.Option(help="The console team")] = "demo", db: DbOption = None) -> None:
    """A REPL: type commands as USER; `[bob] …` acts as bob. Reads stdin line by line when piped."""
    settings = Settings()
    held = _logs(settings, console=True)
    logging.getLogger("dealbot.events").setLevel(logging.WARNING)  # the replies are the record here
    bot = build(settings, database_url=db)
    # Rate limits protect a platform's quota and a team from a runaway member; here the operator
    # types (or pipes a script) on their own machine, and a limit would only drop lines.
    bot.dispatcher.throttle = None
    interactive = sys.stdin.isatty()
    adapter = ConsoleAdapter(bot.dispatcher.dispatch, bot.clock, team=team, user=user)
    delivery = bot.delivery()
    if interactive:
        print(f"dealbot console — team {team}, you are {user}. /help for commands, Ctrl-D to leave.")
    while True:
        if held is not None:
            held.release()  # between replies, never inside the line being typed
        try:
            line = input(f"{adapter.user}> " if interactive else "")
        except EOFError:
            break
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not interactive:
            print(f"{adapter.user}> {line}" if not line.startswith("[") else line)
        print(adapter.say(line), flush=True)
        asyncio.run(delivery.run_once())
    if held is not None:
        held.release()
    raise typer.Exit(0)


@app.command()
def serve(host: Annotated[str, typer.Option()] = "127.0.0.1",
          port: Annotated[int, typer.Option(envvar="PORT")] = 8000, db: DbOption = None) -> None:
    """Serve the web app (platform webhooks, /healthz, /metrics) with uvicorn; Slack Socket Mode too
    when SLACK_APP_TOKEN is set, Feishu's long connection when it has no Encrypt Key, DingTalk
    Stream mode when DINGTALK_STREAM is set (no public URL needed)."""
    _serve(_settings(), host=host, port=port, db=db)


def _serve(settings: Settings, *, host: str, port: int, db: str | None,
           metrics: Metrics | None = None, worker: WorkerThread | None = None) -> None:
    import uvicorn

    from bot.web import create_app

    bot = build(settings, database_url=db, metrics=metrics)
    grace = settings.shutdown_grace_seconds
    recovering: asyncio.Task[None] | None = None

    class Server(uvicorn.Server):
        """uvicorn's graceful shutdown (no new connection; the requests in hand answered), then the
        commands acknowledged here and still running or answering (Slack's run after its request),
        all within `grace` of the signal; what is left is given back to other processes."""

        async def shutdown(self, sockets: Any = None) -> None:
            deadline = time.monotonic() + grace
            if bot.inbox is not None:
                bot.inbox.stop()
            if worker is not None:
                worker.stop()
            await super().shutdown(sockets)
            await _finish_serving(bot, recovering, worker, deadline)

    # uvicorn logs through our JSON handler; no access log: each command has its own line already.
    # Its graceful shutdown takes any number of seconds (asyncio.timeout), not only whole ones.
    server = Server(uvicorn.Config(create_app(bot), host=host, port=port, log_config=None,
                                   access_log=False, log_level=settings.log_level.lower(),
                                   timeout_graceful_shutdown=cast(int, grace)))

    async def main() -> None:
        nonlocal recovering
        for adapter in bot.adapters:
            if adapter.platform == "slack" and settings.slack_app_token:
                from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

                await AsyncSocketModeHandler(adapter.app, settings.slack_app_token).connect_async()
            if adapter.platform == "telegram" and adapter.polling:
                await adapter.start_polling()
            if adapter.platform == "feishu" and adapter.long_connection is not None:
                adapter.long_connection.start()
            if adapter.platform == "dingtalk" and adapter.streaming:
                await adapter.start_stream()
        # Pushes this process's commands queue leave as each command commits, not at the worker's
        # next poll (the worker still delivers whatever this process never gets to).
        courier = bot.courier() if bot.adapters else None
        if courier is not None:
            await courier.start()
        # Commands another server received and could not run or answer (it died): run here too.
        recovering = asyncio.create_task(bot.inbox.serve()) if bot.inbox and bot.adapters else None
        await server.serve()
        if recovering is not None:
            recovering.cancel()
        if courier is not None:
            await courier.stop()

    asyncio.run(main())


async def _finish_serving(bot: Bot, recovering: asyncio.Task[None] | None,
                          worker: WorkerThread | None, deadline: float) -> None:
    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    if bot.inbox is not None:
        await bot.inbox.drain(left())
        if recovering is not None and not recovering.done():
            _done, late = await asyncio.wait({recovering}, timeout=left())
            for task in late:
                task.cancel()
        await bot.inbox.abandon()
    if worker is not None:
        await asyncio.to_thread(worker.join, left() + 1)


@app.command()
def worker(db: DbOption = None,
           once: Annotated[bool, typer.Option("--once", help="Run every job due now once, deliver, exit")] = False,
           now: Annotated[str | None, typer.Option(help="With --once: the moment to act at, ISO 8601 with offset")] = None,
           tick: Annotated[float | None, typer.Option(help="Instead of the scheduler: a catch-up pass (every job "
                                                      "due at the clock's moment, then the outbox) every TICK "
                                                      "seconds; for clocks that jump (DEALBOT_CLOCK_FILE)")] = None,
           metrics_port: Annotated[int | None, typer.Option(envvar="DEALBOT_METRICS_PORT",
                                                            help="Serve this worker's /metrics on this port")] = None
           ) -> None:
    """Run the reminder scheduler and deliver the outbox (or, with --once, one catch-up pass)."""
    settings = _settings()
    clock = None
    if now is not None:
        if not once:
            raise typer.BadParameter("--now goes with --once")
        try:
            moment = datetime.fromisoformat(now)
        except ValueError as error:
            raise typer.BadParameter(f"{now!r} is not an ISO 8601 moment like 2026-12-01T09:00:00+08:00") from error
        if moment.tzinfo is None:
            raise typer.BadParameter("give the moment with its offset, e.g. 2026-12-01T09:00:00+08:00")
        clock = FixedClock(moment)
    bot = build(settings, database_url=db, clock=clock)
    if once:
        report = asyncio.run(bot.worker().run_once())
        scans = report.scans
        typer.echo(f"scans: {scans.overdue} overdue, {scans.overdue_escalated} escalated to managers, "
                   f"{scans.stuck} stuck, {scans.approvals_reminded} approvals reminded, "
                   f"{scans.approvals_escalated} escalated, {scans.pool_warned} pool warnings, "
                   f"{scans.pool_returned} returned to the pool; digests: {report.digests}; "
                   f"outbox: {report.delivery.sent} sent, {report.delivery.retried} retried, "
                   f"{report.delivery.dead} dead")
        return
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, registry=bot.metrics.registry)
    asyncio.run(_work(bot, tick))


async def _work(bot: Bot, tick: float | None) -> None:
    """The schedule (or catch-up passes every `tick` seconds) until SIGTERM or SIGINT; then the push
    in hand is finished, so none is left sent but not marked sent, and the pushes claimed and not
    started are given back for another worker to send at once."""
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    worker = bot.worker()
    grace = bot.settings.shutdown_grace_seconds
    if tick is not None:
        await worker.catch_up(tick, stop, grace=grace)
    else:
        await worker.serve(stop, grace=grace)


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Create or migrate the schema to the newest revision."""
    settings = _settings()
    upgrade(make_engine(db or settings.database_url))
    typer.echo("database is up to date")


@db_app.command("vacuum")
def db_vacuum(db: DbOption = None) -> None:
    """Rewrite the database files so no free space in them keeps erased or old data (locks each
    table while it runs: pick a quiet hour)."""
    rewrite_files(make_engine(db or _settings().database_url))
    typer.echo("database rewritten: no free space keeps old data")


def _bot(db: str | None) -> Bot:
    return build(_settings(), database_url=db)


@outbox_app.callback()
def outbox_list(ctx: typer.Context, db: DbOption = None,
                dead: Annotated[bool, typer.Option("--dead", help="Show dead rows instead of pending")] = False) -> None:
    """List pending (or dead) pushes."""
    if ctx.invoked_subcommand:
        return
    bot = _bot(db)
    wanted = ["dead"] if dead else ["pending", "sending"]
    with unit_of_work(bot.engine) as session:
        rows = list(session.execute(select(Outbox).where(col(Outbox.status).in_(wanted))
                                    .order_by(col(Outbox.id)).limit(200)).scalars())
    table = Table("id", "status", "platform", "to", "kind", "attempts", "next attempt", "error")
    for row in rows:
        table.add_row(str(row.id), row.status, row.platform, row.target_label or row.target, row.kind,
                      str(row.attempts), row.next_attempt_at.isoformat(timespec="seconds"), (row.last_error or "")[:60])
    Console().print(table)
    typer.echo(f"{len(rows)} {'dead' if dead else 'pending'}")


@outbox_app.command("retry")
def outbox_retry(row_id: int, db: DbOption = None) -> None:
    """Queue a dead (or pending) push again, now."""
    bot = _bot(db)
    with unit_of_work(bot.engine) as session:
        # Never a row being sent right now: that could deliver it twice.
        result = session.execute(update(Outbox).where(col(Outbox.id) == row_id,
                                                      col(Outbox.status).in_(["dead", "pending"]))
                                 .values(status="pending", attempts=0, next_attempt_at=bot.clock.now(),
                                         claimed_until=None))
    if not result.rowcount:
        typer.echo(f"no dead or pending outbox row {row_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"outbox row {row_id} queued again")


@telegram_app.command("set-webhook")
def telegram_set_webhook() -> None:
    """Register TELEGRAM_WEBHOOK_URL with Telegram (with the secret token) and publish the command
    menu in English and Chinese."""
    from adapters.telegram import TelegramAdapter

    settings = _settings()
    if not settings.telegram_bot_token or not settings.telegram_webhook_url or not settings.telegram_webhook_secret:
        typer.echo("set TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_URL and TELEGRAM_WEBHOOK_SECRET first", err=True)
        raise typer.Exit(2)
    adapter = TelegramAdapter.from_settings(settings, lambda invocation: None)  # type: ignore[arg-type,return-value]
    asyncio.run(adapter.set_webhook(settings.telegram_webhook_url))
    typer.echo(f"webhook set to {settings.telegram_webhook_url}; command menu published (en, zh)")


@dingtalk_app.command("register-card-callback")
def dingtalk_register_card_callback(url: Annotated[str, typer.Argument(
        help="https://YOUR.HOST/dingtalk/callback")]) -> None:
    """Send clicks on dealbot's DingTalk cards to URL (card/callbacks/register)."""
    from adapters.base import DeliveryError
    from adapters.dingtalk import DingTalkAdapter

    settings = _settings()
    if not settings.dingtalk_client_id or not settings.dingtalk_client_secret:
        typer.echo("set DINGTALK_CLIENT_ID and DINGTALK_CLIENT_SECRET first", err=True)
        raise typer.Exit(2)
    adapter = DingTalkAdapter.from_settings(settings, None)  # type: ignore[arg-type]
    try:
        asyncio.run(adapter.api.register_card_callback(url))
    except DeliveryError as error:
        typer.echo(f"DingTalk refused: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"card clicks now go to {url}")


@config_app.command("example")
def config_example() -> None:
    """Print every setting with its default, as a .env file to copy (the repo's .env.example)."""
    from bot import env_example

    typer.echo(env_example.render(), nl=False)


@app.command("export")
def export_(kind: Annotated[str | None, typer.Argument(help="leads, followups, quotes, or all (one sheet each)")] = None,
            out: Annotated[Path | None, typer.Option("--out", help="The file to write (.xlsx or .csv)")] = None,
            fmt: Annotated[str | None, typer.Option("--format", help="xlsx or csv (default: from --out)")] = None,
            team: Annotated[str | None, typer.Option(help="Team key, name or platform:key")] = None,
            personal_data: Annotated[str | None, typer.Option(
                "--personal-data", metavar="PHONE|EMAIL",
                help="Instead: everything held about the person with this phone number or e-mail "
                     "address, in every team, as JSON (to --out, or printed)")] = None,
            db: DbOption = None) -> None:
    """Export leads, follow-ups or quotes to Excel or CSV (dates in the team's timezone); or, with
    --personal-data, everything held about one person (a subject access request)."""
    from bot import exchange

    if personal_data is not None:
        _subject_access(personal_data, out, db)
        return
    if kind is None or out is None:
        typer.echo("name what to export and where: dealbot export leads --out leads.xlsx", err=True)
        raise typer.Exit(2)
    try:
        exchange.run_export(_bot(db).engine, kind=kind, fmt=fmt, out=out, team_ref=team, echo=typer.echo)
    except exchange.ExchangeError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None


def _subject_access(value: str, out: Path | None, db: str | None) -> None:
    """Read only: no migration, no change."""
    import json

    from models import privacy

    engine = make_engine(db or _settings().database_url)
    try:
        with unit_of_work(engine) as session:
            found = privacy.subject_access(session, value)
    except ValueError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    text = json.dumps(found, ensure_ascii=False, indent=2)
    if out is None:
        typer.echo(text)
        return
    out.write_text(text + "\n", encoding="utf-8")
    typer.echo(f"{out}: {len(found['leads'])} leads, mentioned in "
               f"{sum(len(v) for v in found['mentioned_in'].values())} other records", err=True)


@app.command("import")
def import_(kind: Annotated[str, typer.Argument(help="leads")],
            file: Annotated[Path, typer.Argument(help="An .xlsx or .csv file (UTF-8 or GBK/GB18030)")],
            team: Annotated[str, typer.Option(help="Team key, name or platform:key")],
            owner: Annotated[str, typer.Option(help="@name for every row, auto (the owner column, else the "
                                                    "team's rule) or pool")],
            dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every row, write nothing")] = False,
            by: Annotated[str | None, typer.Option(
                help="@name of who imports, named in each lead's history "
                     "(default: the --owner when it names one)")] = None,
            db: DbOption = None) -> None:
    """Import leads from Excel or CSV: one line per row (created, merged as a duplicate, rejected)."""
    from bot import exchange

    if kind not in ("leads", "lead", "线索"):
        typer.echo("only leads can be imported: dealbot import leads FILE --team T --owner @x|auto", err=True)
        raise typer.Exit(2)
    bot = _bot(db)
    try:
        exchange.run_import(bot.engine, path=file, team_ref=team, owner_ref=owner, dry_run=dry_run,
                            now=bot.clock.now(), echo=typer.echo, by_ref=by)
    except exchange.ExchangeError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None


@app.command("backup")
def backup_(file: Annotated[Path, typer.Argument(help="Where to write it (replaced if it exists)")],
            db: DbOption = None) -> None:
    """Back up the SQLite database online, while the bot runs: a consistent copy in FILE.
    (Postgres: use pg_dump.)"""
    from bot import backup

    try:
        made = backup.backup(db or _settings().database_url, file)
    except backup.BackupError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{made.path}: {made.rows} rows in {made.tables} tables, {made.bytes} bytes")


@app.command("restore")
def restore_(file: Annotated[Path, typer.Argument(help="A backup made by `dealbot backup`")],
             db: DbOption = None) -> None:
    """Restore a backup into an empty database (stop the bot first); refuses one that holds data."""
    from bot import backup

    try:
        made = backup.restore(file, db or _settings().database_url)
    except backup.BackupError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{made.path}: restored {made.rows} rows in {made.tables} tables; "
               "run `dealbot db upgrade` if this version is newer than the backup")


def main() -> None:
    try:
        app()
    except (SchemaTooNew, SettingsError) as error:
        typer.echo(f"dealbot: {error}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
