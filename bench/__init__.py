"""Benchmarks: `python -m bench [name]`. Each benchmark is a module with `add_arguments(parser)` and
`run(args) -> Table`; `bench/__main__.py` lists them and prints the table each one returns."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Table:
    """The result of one benchmark: a title, named columns, rows, and free-text notes under it."""

    title: str
    columns: Sequence[str]
    rows: list[Sequence[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *values: Any) -> None:
        self.rows.append(values)

    def render(self) -> str:
        cells = [[str(c) for c in self.columns]] + [[_cell(v) for v in row] for row in self.rows]
        widths = [
            max(len(row[i]) if i < len(row) else 0 for row in cells)
            for i in range(len(self.columns))
        ]
        lines = [self.title, ""]
        for index, row in enumerate(cells):
            lines.append(
                "  ".join(
                    value.rjust(widths[i]) if _numeric(value) else value.ljust(widths[i])
                    for i, value in enumerate(row)
                ).rstrip()
            )
            if index == 0:
                lines.append("  ".join("-" * width for width in widths))
        if self.notes:
            lines.append("")
            lines.extend(self.notes)
        return "\n".join(lines)

    def print(self) -> None:
        print(self.render(), flush=True)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    return str(value)


def _numeric(text: str) -> bool:
    return text.replace(".", "", 1).replace("x", "", 1).replace(",", "").isdigit()


def median_ms(action: Callable[[], Any], repeats: int) -> float:
    """Median wall time of `action` in milliseconds over `repeats` calls."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def progress(message: str) -> None:
    """A progress line on stderr, so stdout carries only the tables."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)
