"""The console: a REPL for trying dealbot without a chat account, and the adapter tests talk through.

`[bob] /quote approve Q1` acts as bob; `@bob` mentions member bob; buttons print with the command
they stand for; pushes to other people print as `→ bob: …`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from adapters.base import Target
from commands.types import Invocation, Mention, Reply
from models.clock import Clock

# Terminal controls (ESC sequences, 8-bit CSI, carriage return, bell) in stored text could move the
# cursor, rewrite what was printed or retitle the window; a reply prints none of them.
_TERMINAL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_AS_USER = re.compile(r"^\[([^\]\s]{1,64})\]\s*(.*)$", re.S)
_MENTION = re.compile(r"(?<![\w@])@([\w.\-\u3400-\u9fff]{1,64})")


def render(reply: Reply, *, image_dir: Path | None = None) -> str:
    """A reply as plain text: the text, `label: value` lines, an aligned table, `[Label → command]`."""
    lines = [reply.text.replace("**", "")]
    for label, value in reply.fields:
        lines.append(f"  {label}: {value}")
    if reply.table:
        widths = [max(_width(row[i]) for row in reply.table if i < len(row)) for i in range(len(reply.table[0]))]
        for row in reply.table:
            lines.append("  " + "  ".join(_pad(cell, widths[i]) for i, cell in enumerate(row)).rstrip())
    for row in reply.button_rows():
        lines.append("  " + "  ".join(f"[{b.label} → {b.command.strip()}]" for b in row))
    if reply.image is not None:
        folder = image_dir or Path("dealbot-charts")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / reply.image.filename
        path.write_bytes(reply.image.png)
        lines.append(f"  🖼 {reply.image.alt}: {path}")
    if reply.file is not None:
        folder = image_dir or Path("dealbot-files")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / Path(reply.file.filename).name  # never a path the reply chose outside the folder
        path.write_bytes(reply.file.data)
        lines.append(f"  📎 {reply.file.filename}: {path}")
    return _TERMINAL.sub("", "\n".join(lines))


def _width(text: str) -> int:
    # CJK characters take two columns in a terminal.
    return sum(2 if "\u2e80" <= char <= "\u9fff" or "\uff00" <= char <= "\uffef" else 1 for char in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


class ConsoleAdapter:
    """Turns typed lines into invocations for one console team, and replies into text."""

    def __init__(self, dispatch: Callable[[Invocation], Reply], clock: Clock, *, team: str = "demo",
                 user: str = "me", image_dir: Path | None = None) -> None:
        self.dispatch = dispatch
        self.clock = clock
        self.team = team
        self.user = user
        self.image_dir = image_dir

    def invocation(self, line: str) -> Invocation:
        user, text = self.user, line.strip()
        match = _AS_USER.match(text)
        if match:
            user, text = match.group(1), match.group(2).strip()
        mentions = {f"@{name}": Mention(user_key=name, name=name) for name in _MENTION.findall(text)}
        return Invocation(platform="console", team_key=self.team, team_name=self.team, channel="console",
                          user_key=user, user_name=user, text=text, mentions=mentions,
                          received_at=self.clock.now())

    def say(self, line: str) -> str:
        return render(self.dispatch(self.invocation(line)), image_dir=self.image_dir)


class ConsoleSender:
    """Delivers outbox messages by printing them: `→ bob: …`."""

    platform = "console"

    def __init__(self, write: Callable[[str], object] | None = None, image_dir: Path | None = None) -> None:
        self.write = write or (lambda text: print(text, file=sys.stdout, flush=True))
        self.image_dir = image_dir
        self.count = 0

    async def send(self, target: Target, reply: Reply) -> str:
        self.count += 1
        self.write(f"→ {target.label or target.key}: {render(reply, image_dir=self.image_dir)}")
        return target.label or target.key  # an edit prints "↻ bob: …": whose message changed

    async def update(self, message_ref: str, reply: Reply) -> None:
        self.write(f"↻ {message_ref}: {render(reply, image_dir=self.image_dir)}")
