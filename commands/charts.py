"""The funnel chart attached to digests: a PNG drawn in memory with matplotlib's Agg backend."""

from __future__ import annotations

import io
from functools import lru_cache

from commands.types import Image
from models.reports import Digest

_CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "WenQuanYi Zen Hei", "Source Han Sans SC",
              "SimHei", "Microsoft YaHei", "PingFang SC")


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """A font that can draw Chinese, if the machine has one (Debian: fonts-noto-cjk)."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    return next((name for name in _CJK_FONTS if name in installed), None)


def funnel_chart(digest: Digest, *, locale: str) -> Image:
    """Open leads per stage as horizontal bars, with the stage-to-stage conversion beside each bar.

    Chinese labels need a CJK font; without one the chart falls back to the English stage names.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    font = cjk_font() if locale == "zh" else None
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
    family = {"fontfamily": font} if font else {}
    bars = axes.barh(range(len(labels)), counts, color="#3b82f6")
    axes.set_yticks(range(len(labels)), labels=labels, **family)
    axes.invert_yaxis()
    period = digest.period
    title = ("销售漏斗" if label_locale == "zh" else "Sales funnel") + f"  {period.first_day:%Y-%m-%d}"
    if period.last_day != period.first_day:
        title += f" – {period.last_day:%Y-%m-%d}"
    axes.set_title(title, **family)
    axes.spines[["top", "right"]].set_visible(False)
    peak = max(counts, default=0) or 1
    axes.set_xlim(0, peak * 1.35)
    for bar, step in zip(bars, digest.funnel, strict=True):
        note = str(step.count) + (f"  ({step.conversion}%)" if step.conversion is not None else "")
        axes.text(bar.get_width() + peak * 0.02, bar.get_y() + bar.get_height() / 2, note, va="center", fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    alt = " → ".join(f"{label} {count}" for label, count in zip(labels, counts, strict=True))
    return Image(png=buffer.getvalue(), alt=alt, filename=f"funnel-{digest.period.kind}-{digest.period.first_day}.png")
