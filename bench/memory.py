"""Resident memory of `dealbot serve` (Slack configured) idle and under load, and of an idle worker.

The server runs as its own process on a fresh database; its RSS is read from /proc when it is up,
after a warm-up (each of `--clients` users registered and added a lead: the "idle" figure), and
after the load of `bench http` (the peak, VmHWM, covers the whole run). The worker's figure is
`dealbot worker` idle against the same kind of database.

Quick look: `python -m bench memory --db sqlite --commands 300`."""

from __future__ import annotations

import argparse
import os

from bench import Table, progress
from bench.http import (
    FakeSlack,
    Server,
    dealbot_command,
    dealbot_env,
    free_port,
    measure_dealbot,
    prepare_schema,
    running,
    scratch_database,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--commands", type=int, default=2000, help="commands in the load")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--pg", default="127.0.0.1:5432", help="Postgres host:port (user postgres)")
    parser.add_argument("--quick", action="store_true", help="a shorter load (600 commands)")


def mb(kb: int) -> float:
    return kb / 1024


def worker_idle_kb(db: str, args: argparse.Namespace, fake: FakeSlack) -> int:
    with scratch_database(db, args.pg, "memory") as url:
        prepare_schema(url)
        port = free_port()
        argv = [*dealbot_command(), "worker", "--metrics-port", str(port)]
        with running(argv, dealbot_env(fake, url), health="/metrics", port=port) as worker:
            return worker.rss_kb()[0]


def run(args: argparse.Namespace) -> Table:
    total = 600 if args.quick else args.commands
    seen: dict[str, tuple[int, int]] = {}

    def sample(server: Server, phase: str) -> None:
        seen[phase] = server.rss_kb()

    fake = FakeSlack()
    try:
        progress(f"memory: dealbot serve on {args.db}, load of {total} commands")
        measured = measure_dealbot(args.db, args, fake, total, during=sample)
        worker_kb = worker_idle_kb(args.db, args, fake)
    finally:
        fake.close()
    table = Table(
        title=f"Resident memory (MB) of dealbot processes, {args.db}",
        columns=[
            "process",
            "started",
            "idle (warmed up)",
            "after load",
            "peak (VmHWM)",
            "commands",
        ],
    )
    table.add(
        "dealbot serve (Slack)",
        mb(seen["started"][0]),
        mb(seen["idle"][0]),
        mb(seen["loaded"][0]),
        mb(seen["loaded"][1]),
        measured.done,
    )
    table.add("dealbot worker", mb(worker_kb), None, None, None, 0)
    table.notes.append(
        f"load: {args.clients} concurrent clients sending /follow commands through HTTP; "
        f"target: serve idle RSS < 150 MB. Load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}."
    )
    return table


def headline(table: Table) -> list[tuple[str, str, str, str]]:
    """For `python -m bench`'s summary: the server's idle and peak RSS."""
    row = table.rows[0]
    idle, peak = float(row[2]), float(row[4])
    return [
        ("dealbot serve idle RSS", f"{idle:.0f} MB", "< 150 MB", "yes" if idle < 150 else "NO"),
        ("dealbot serve peak RSS under load", f"{peak:.0f} MB", "-", "-"),
    ]
