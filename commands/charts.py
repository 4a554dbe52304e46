"""The funnel chart attached to digests: a PNG drawn in memory with matplotlib's Agg backend."""

from __future__ import annotations

import io
import logging
import re
from functools import lru_cache
from typing import TYPE_CHECKING

import wording
from commands.types import Image
from models.reports import Digest

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger("dealbot.charts")


def _covering(text: str) -> str | None:
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    needed = [ord(ch) for ch in set(text) if not ch.isspace()]
    for entry in font_manager.fontManager.ttflist:
        if entry.name.replace(" ", "").startswith("LastResort"):
            continue  # matplotlib's own stand-in: a box for every character, drawing none
        try:
            font = FT2Font(entry.fname)
        except (OSError, RuntimeError, ValueError):
            continue  # a file matplotlib cannot read draws nothing
        if all(font.get_char_index(code) for code in needed):
            return entry.fname
    return None


@lru_cache(maxsize=16)
def font_for(text: str) -> str | None:
    """The file of an installed font that draws every character of `text`, if the machine has one.

    matplotlib remembers the fonts it found the first time it ran; a font installed since (say
    Debian's fonts-noto-cjk or fonts-wqy-microhei) is added here before giving up. Said once in
    the log when none fits, and the chart then uses English labels.
    """
    from matplotlib import font_manager

    found = _covering(text)
    if found is None:
        known = {entry.fname for entry in font_manager.fontManager.ttflist}
        for path in font_manager.findSystemFonts():
            if path not in known:
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        found = _covering(text)
    if found is None:
        log.warning("no installed font draws the chart labels %r, so charts use English labels; "
                    "install a font with Chinese glyphs (Debian: fonts-noto-cjk or "
                    "fonts-wqy-microhei)", text)
    return found


def funnel_text(digest: Digest, locale: str) -> str:
    """`Lead 42 → Contacted 30 (71%) → … → Won 3 (50%)`: what the digest says, the chart draws."""
    parts = []
    for step in digest.funnel:
        part = f"{step.stage.label(locale)} {step.count}"
        if step.conversion is not None and parts:
            part += wording.say(locale, " ({p}%)", p=step.conversion)
        parts.append(part)
    return " → ".join(parts)


def funnel_chart(digest: Digest, *, locale: str, audience: str = "team") -> Image:
    """The funnel chart as a PNG, captioned with `funnel_text`; `audience` names the file, so one
    reader's chart never replaces another's."""
    buffer = io.BytesIO()
    funnel_figure(digest, locale=locale).savefig(buffer, format="png")
    reader = re.sub(r"[^\w-]+", "_", audience).strip("_") or "team"
    period = digest.period
    return Image(png=buffer.getvalue(), alt=funnel_text(digest, locale),
                 filename=f"funnel-{period.kind}-{period.first_day}-{reader}.png")


def funnel_figure(digest: Digest, *, locale: str) -> Figure:
    """Leads that reached each stage, then won, as horizontal bars with the conversion from the
    step before: the numbers of `funnel_text`.

    Chinese labels need a font with Chinese glyphs; without one the chart uses English labels.
    """
    import matplotlib

    matplotlib.use("Agg")
    # matplotlib's own font chatter (a rebuilt cache, a family it could not find) is not for the
    # people reading the console; the one thing worth saying is said by font_for.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.ticker import MaxNLocator

    period = digest.period
    dates = f"  {period.first_day:%Y-%m-%d}"
    if period.last_day != period.first_day:
        dates += f" – {period.last_day:%Y-%m-%d}"
    font = None
    if locale == "zh":
        title = wording.say("zh", "Sales funnel")
        font = font_for(title + "".join(step.stage.label("zh") for step in digest.funnel))
    label_locale = "zh" if font else "en"
    labels = [step.stage.label(label_locale) for step in digest.funnel]
    counts = [step.count for step in digest.funnel]
    width, height = 6.0, 0.9 + 0.45 * max(len(labels), 1)
    figure = Figure(figsize=(width, height), dpi=100)
    # Margins from the labels' length rather than tight_layout, which draws the whole figure once
    # more only to measure it (a third of the chart's time).
    widest = max((sum(2 if ord(ch) > 0x2E80 else 1 for ch in label) for label in labels), default=1)
    figure.subplots_adjust(left=min(0.5, (0.3 + 0.08 * widest) / width), right=0.97,
                           top=1 - 0.45 / height, bottom=0.4 / height)
    axes = figure.subplots()
    family = {"fontproperties": FontProperties(fname=font)} if font else {}
    bars = axes.barh(range(len(labels)), counts, color="#3b82f6")
    axes.set_yticks(range(len(labels)), labels=labels, **family)
    axes.invert_yaxis()
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts of leads: no 0.5
    axes.set_title(wording.say(label_locale, "Sales funnel") + dates, **family)
    axes.spines[["top", "right"]].set_visible(False)
    peak = max(counts, default=0) or 1
    axes.set_xlim(0, peak * 1.35)
    for bar, step in zip(bars, digest.funnel, strict=True):
        note = str(step.count) if step.conversion is None else wording.say(
            label_locale, "{n}  ({p}%)", n=step.count, p=step.conversion
        )
        axes.text(bar.get_width() + peak * 0.02, bar.get_y() + bar.get_height() / 2, note, va="center", fontsize=9)
    return figure
