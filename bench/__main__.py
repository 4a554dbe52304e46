"""`python -m bench` runs every benchmark with its defaults; `python -m bench NAME [options]` one.

A benchmark plugs in by adding its module to BENCHMARKS: the module defines `add_arguments(parser)`
and `run(args) -> bench.Table`, and its docstring's first line is the sub-command's help."""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

BENCHMARKS: dict[str, str] = {
    "scan": "bench.scan",
}


def _load(name: str) -> ModuleType:
    return importlib.import_module(BENCHMARKS[name])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    chosen = [args.benchmark] if args.benchmark else list(BENCHMARKS)
    for name in chosen:
        own_args = args if args.benchmark else parser.parse_args([name])
        table = _load(name).run(own_args)
        table.print()
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
