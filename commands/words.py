"""Commands as the reader types them (`/lead claim` · `/线索 领取`), spelled from the registry's own
words, so a button or a hint never names a command word the dispatcher would not take."""

from __future__ import annotations

import re

_CJK = re.compile(r"[\u3400-\u9fff]")


def spelling(locale: str, words: tuple[str, ...]) -> str:
    """The first of `words` written in the reader's language (they are listed English first)."""
    zh = locale == "zh"
    return next((word for word in words if bool(_CJK.search(word)) == zh), words[0])


def command(locale: str, family: str, verb: str = "", *more: str | tuple[str, ...]) -> str:
    """`/<family> [<verb>] [<word> …]` in the reader's words. `more` holds sub-words: a tuple of a
    sub-word's spellings (English first) is spelled for the reader, a plain string kept as is."""
    from commands import FAMILIES, VERBS

    found = next(f for f in FAMILIES if f.name == family)
    if verb:
        # The verb's usage opens with the command as help shows it (`/审批 同意`, `/报表 积分`).
        usage = next(v for v in VERBS if v.family == family and v.name == verb).usage(locale)
        parts = usage.split()[:2]
    else:
        # `/日报` means `/report today`: a word that implies arguments is not the family's own.
        parts = ["/" + spelling(locale, tuple(w for w in found.words if w not in found.implied))]
    parts += [spelling(locale, word) if isinstance(word, tuple) else word for word in more]
    return " ".join(parts)
