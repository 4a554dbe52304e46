"""Splitting a command line into words and `key=value` options, Chinese keys included."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from commands.names import option_aliases
from commands.parsing_values import parse_date
from models.normalize import drop_invisible

# Chinese (and short) spellings of option keys → the canonical key (names: commands/names.py).
KEY_ALIASES: dict[str, str] = option_aliases()

_QUOTES = {'"': '"', "“": "”", "「": "」", "'": "'", "‘": "’"}
_OPTION = re.compile(r"^([^\W\d][\w.\-]*)=(.*)$", re.S)
_MAX_LINE = 8000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def normalize_line(text: str) -> str:
    """Full-width punctuation people type on Chinese keyboards → plain ASCII where it is syntax."""
    text = text.replace("＝", "=").replace("／", "/").replace("＠", "@").replace("\u3000", " ")
    text = _CONTROL.sub("", text)  # NUL and other control characters are never meant, and Postgres refuses NUL
    text = drop_invisible(text)  # zero-width characters would make look-alike names differ
    return unicodedata.normalize("NFC", text).strip()


def tokenize(text: str) -> list[str]:
    """Words separated by spaces; "quoted words" stay together, quotes of any kind removed.

    A quote that is never closed is an ordinary character (`'; DROP …` or `"unterminated` stay as typed).
    """
    text = text[:_MAX_LINE]
    last = {closer: text.rfind(closer) for closer in set(_QUOTES.values())}
    tokens: list[str] = []
    current: list[str] = []
    closing: str | None = None
    started = False
    for index, char in enumerate(text):
        if closing is not None:
            if char == closing:
                closing = None
            else:
                current.append(char)
        elif char in _QUOTES and not current and last[_QUOTES[char]] > index:
            closing = _QUOTES[char]
            started = True
        elif char.isspace():
            if current or started:
                tokens.append("".join(current))
            current, started = [], False
        else:
            current.append(char)
    if current or started:
        tokens.append("".join(current))
    return tokens


@dataclass
class Args:
    words: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    unknown: list[tuple[str, str]] = field(default_factory=list)  # key=value pairs no verb option matches

    def text(self) -> str:
        """The free words (and unknown key=value pairs) as the user typed them, e.g. a note."""
        return " ".join(self.words).strip()


# Options whose value is free text: the words after them belong to them up to the next option, so
# `contact=Mr Li`, `company=ACME Ltd.` and `stages=Lead, Demo` need no quotes. A phone may be typed
# in digit groups (`phone=+86 139 1234 5678`).
TEXT_OPTIONS = frozenset({"company", "contact", "source", "tag", "name", "stages"})
_DIGIT_GROUP = re.compile(r"^[\d\-()]+$")


def _phone_incomplete(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    return len(digits) < (13 if value.startswith("+") or digits.startswith("00") else 11)


# Options whose value is a date: `next=next mon`, `下次=下周 三` take the words that complete it.
DATE_OPTIONS = frozenset({"next", "until", "from", "signed", "start", "end", "delivered", "accepted"})
_ANY_DAY = date(2024, 1, 3)  # only whether words make a date is asked, not which one
# Chinese keyboards type `，` and `：` where English ones type a space and `=`: `电话：136…，来源=展会`.
_LIST_MARKS = "，,、；;"
_WIDE_COLON = re.compile(r"^([^\W\d][\w.\-]*)：(.*)$", re.S)


def canonical_key(raw_key: str) -> str:
    return KEY_ALIASES.get(raw_key, KEY_ALIASES.get(raw_key.casefold(), raw_key.casefold()))


def _as_option(piece: str, known: frozenset[str]) -> str:
    """`电话：136…` is `电话=136…` when the verb has that option; any other `：` stays text."""
    match = _WIDE_COLON.match(piece)
    if match and canonical_key(match.group(1)) in known:
        return f"{match.group(1)}={match.group(2)}"
    return piece


def _separate(tokens: list[str], known: frozenset[str]) -> list[str]:
    """Words cut where a comma (full-width or not) comes before an option: `5万，来源=朋友` is two
    words, and a comma just before an option (`5万 ，来源=朋友`, `50k, source=fair`) is dropped.
    A comma inside a note stays where it is."""
    words: list[str] = []
    for token in tokens:
        pieces = re.split(f"([{_LIST_MARKS}]+)", token)  # text and the marks between, alternating
        words.append(_as_option(pieces[0], known))
        for mark, piece in zip(pieces[1::2], pieces[2::2], strict=True):
            piece = _as_option(piece, known)
            if _OPTION.match(piece):
                words.append(piece)
            else:  # not an option: the piece stays joined to the one before it
                words[-1] += mark + piece
    for index in range(len(words) - 1):
        if _OPTION.match(words[index + 1]):
            words[index] = words[index].rstrip(_LIST_MARKS)
    return [word for word in words if word]


def split(tokens: list[str], known: frozenset[str]) -> Args:
    """Options the verb knows become `options`; other `a=b` words stay in the text (a note may say x=y)."""
    args = Args()
    open_key: str | None = None  # the option the following plain words may still belong to
    for token in _separate(tokens, known):
        match = _OPTION.match(token)
        if match:
            raw_key = match.group(1)
            key = canonical_key(raw_key)
            if key in known:
                args.options[key] = match.group(2).strip().rstrip("，、；")
                open_key = key
                continue
            args.unknown.append((raw_key, match.group(2)))
            open_key = None
        elif open_key in DATE_OPTIONS and parse_date(f"{args.options[open_key]} {token}", _ANY_DAY):
            args.options[open_key] = f"{args.options[open_key]} {token}"
            continue
        elif open_key in TEXT_OPTIONS or (open_key == "phone" and _DIGIT_GROUP.match(token)
                                          and _phone_incomplete(args.options["phone"])):
            args.options[open_key] = f"{args.options[open_key]} {token}".strip()
            continue
        else:
            open_key = None
        args.words.append(token)
    return args
