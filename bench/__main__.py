"""`python -m bench` runs every benchmark, each at its quick sizes when it has a `--quick` flag
(`--full`: the full sizes, e.g. scans at 1M and 2M leads), and ends with one summary table;
`python -m bench NAME [options]` runs one.

A benchmark plugs in by adding its module to BENCHMARKS: the module defines `add_arguments(parser)`
and `run(args) -> bench.Table`, and its docstring's first line is the sub-command's help. An
optional `headline(table) -> [(measure, value, target, met)]` feeds the summary."""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from bench import Table

BENCHMARKS: dict[str, str] = {
    "scan": "bench.scan",
    "exchange": "bench.exchange",
    "http": "bench.http",
    "digest": "bench.digest",
    "fanout": "bench.fanout",
    "memory": "bench.memory",
    "floods": "bench.floods",
    "live": "bench.live",
}


def _load(name: str) -> ModuleType:
    return importlib.import_module(BENCHMARKS[name])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="with no benchmark named: run each at its full size instead of --quick",
    )
    commands = parser.add_subparsers(dest="benchmark", metavar="{" + ",".join(BENCHMARKS) + "}")
    for name in BENCHMARKS:
        module = _load(name)
        summary = (module.__doc__ or name).strip().splitlines()[0]
        module.add_arguments(
            commands.add_parser(
                name,
                help=summary,
                description=module.__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
    return parser


def takes_quick(parser: argparse.ArgumentParser, name: str) -> bool:
    """Whether benchmark `name` has a --quick flag (a store_true flag defaults to False)."""
    return parser.parse_args([name]).__dict__.get("quick") is False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    chosen = [args.benchmark] if args.benchmark else list(BENCHMARKS)
    summary = Table(title="Summary", columns=["benchmark", "measure", "value", "target", "met"])
    for name in chosen:
        quick = ["--quick"] if not args.full and takes_quick(parser, name) else []
        own_args = args if args.benchmark else parser.parse_args([name, *quick])
        module = _load(name)
        table = module.run(own_args)
        table.print()
        print(flush=True)
        headline = getattr(module, "headline", None)
        for row in headline(table) if headline else []:
            summary.add(name, *row)
    if len(chosen) > 1:
        summary.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
