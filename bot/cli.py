"""`dealbot`: run, console, serve, worker, db upgrade, outbox."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select, update
from sqlmodel import col

from adapters.console import ConsoleAdapter
from bot import logs
from bot.app import Bot, build
from bot.metrics import Metrics
from bot.settings import Settings
from models.clock import FixedClock
from models.db import make_engine, rewrite_files, unit_of_work
from models.migrate import SchemaTooNew, upgrade
from models.tables import Outbox

# No rich markup in help texts: they show chat commands, and `[bob] /help` is not a markup tag.
app = typer.Typer(help="dealbot — your sales team's process, in the chat it already uses.",
                  no_args_is_help=True, rich_markup_mode=None)
db_app = typer.Typer(help="Database schema.")
telegram_app = typer.Typer(help="Telegram set-up.")
outbox_app = typer.Typer(help="Pending and dead pushes.", invoke_without_command=True)
config_app = typer.Typer(help="Settings.")
app.add_typer(db_app, name="db")
app.add_typer(outbox_app, name="outbox")
app.add_typer(telegram_app, name="telegram")
app.add_typer(config_app, name="config")

DbOption = Annotated[str | None, typer.Option("--db", help="Database URL (default: DEALBOT_DATABASE_URL or sqlite:///dealbot.db)")]


def _settings() -> Settings:
    settings = Settings()
    # JSON lines; phones, e-mails, tokens and every configured credential masked
    logs.configure(settings.log_level, sys.stderr, secrets=logs.credentials(settings))
    return settings


@app.command()
def run(db: DbOption = None, user: Annotated[str, typer.Option(help="Console user")] = "me",
        team: Annotated[str, typer.Option(help="Console team")] = "demo",
        port: Annotated[int, typer.Option(envvar="PORT")] = 8000) -> None:
    """Run everything on one machine: the reminder worker beside the web server (when a platform is
    configured) or beside the console."""
    settings = _settings()
    metrics = Metrics()  # one /metrics for the web app and the worker beside it
    _start_worker_thread(db, metrics)
    if settings.platforms:
        _serve(settings, host="0.0.0.0", port=port, db=db, metrics=metrics)
        return
    console(user=user, team=team, db=db)


def _start_worker_thread(db: str | None, metrics: Metrics | None = None) -> None:
    """The worker's scheduler on its own event loop, so the console can keep reading input."""
    bot = build(Settings(), database_url=db, metrics=metrics)

    def loop() -> None:
        try:
            asyncio.run(bot.worker().serve())
        except Exception:  # noqa: BLE001 - the console must go on even if reminders cannot
            logging.getLogger("dealbot.worker").exception("the reminder worker stopped")

    threading.Thread(target=loop, name="dealbot-worker", daemon=True).start()


@app.command()
def console(user: Annotated[str, typer.Option(help="Who you are in the console")] = "me",
            team: Annotated[str, typer.Option(help="The console team")] = "demo", db: DbOption = None) -> None:
    """A REPL: type commands as USER; `[bob] …` acts as bob. Reads stdin line by line when piped."""
    settings = _settings()
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
    raise typer.Exit(0)


@app.command()
def serve(host: Annotated[str, typer.Option()] = "127.0.0.1",
          port: Annotated[int, typer.Option(envvar="PORT")] = 8000, db: DbOption = None) -> None:
    """Serve the web app (platform webhooks, /healthz, /metrics) with uvicorn; Slack Socket Mode too
    when SLACK_APP_TOKEN is set (no public URL needed)."""
    _serve(_settings(), host=host, port=port, db=db)


def _serve(settings: Settings, *, host: str, port: int, db: str | None, metrics: Metrics | None = None) -> None:
    import uvicorn

    from bot.web import create_app

    bot = build(settings, database_url=db, metrics=metrics)
    # uvicorn logs through our JSON handler; no access log: each command has its own line already.
    server = uvicorn.Server(uvicorn.Config(create_app(bot), host=host, port=port, log_config=None,
                                           access_log=False, log_level=settings.log_level.lower()))

    async def main() -> None:
        for adapter in bot.adapters:
            if adapter.platform == "slack" and settings.slack_app_token:
                from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

                await AsyncSocketModeHandler(adapter.app, settings.slack_app_token).connect_async()
            if adapter.platform == "telegram" and adapter.polling:
                await adapter.start_polling()
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
    if tick is not None:
        asyncio.run(_catch_up_forever(bot, tick))
        return
    asyncio.run(bot.worker().serve())


async def _catch_up_forever(bot: Bot, every: float) -> None:
    """Catch-up passes until SIGTERM or SIGINT; the pass in hand is finished first, so no message
    is left sent but not marked sent."""
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    worker = bot.worker()
    while not stop.is_set():
        try:
            await worker.run_once()
        except Exception:  # noqa: BLE001 - a failed pass is logged and the next one tries again
            logging.getLogger("dealbot.worker").exception("catch-up pass failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


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
    """Read only: no migration, no change (issue 10)."""
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
            db: DbOption = None) -> None:
    """Import leads from Excel or CSV: one line per row (created, merged as a duplicate, rejected)."""
    from bot import exchange

    if kind not in ("leads", "lead", "线索"):
        typer.echo("only leads can be imported: dealbot import leads FILE --team T --owner @x|auto", err=True)
        raise typer.Exit(2)
    bot = _bot(db)
    try:
        exchange.run_import(bot.engine, path=file, team_ref=team, owner_ref=owner, dry_run=dry_run,
                            now=bot.clock.now(), echo=typer.echo)
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
    except SchemaTooNew as error:
        typer.echo(f"dealbot: {error}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
