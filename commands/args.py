"""Splitting a command line into words and `key=value` options, Chinese keys included."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from models.normalize import drop_invisible

# Chinese (and short) spellings of option keys → the canonical key.
KEY_ALIASES: dict[str, str] = {
    "电话": "phone", "手机": "phone", "tel": "phone",
    "邮箱": "email", "mail": "email", "e-mail": "email",
    "公司": "company",
    "联系人": "contact",
    "来源": "source",
    "预计": "value", "金额": "value", "预计金额": "value",
    "标签": "tag",
    "下次": "next", "下次跟进": "next",
    "方式": "via",
    "折扣": "discount",
    "强制": "force",
    "负责人": "owner",
    "页": "page", "页码": "page",
    "阶段": "stage",
    "经理": "manager",
    "名称": "name",
}

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


def split(tokens: list[str], known: frozenset[str]) -> Args:
    """Options the verb knows become `options`; other `a=b` words stay in the text (a note may say x=y)."""
    args = Args()
    open_key: str | None = None  # the option the following plain words may still belong to
    for token in tokens:
        match = _OPTION.match(token)
        if match:
            raw_key = match.group(1)
            key = KEY_ALIASES.get(raw_key, KEY_ALIASES.get(raw_key.casefold(), raw_key.casefold()))
            if key in known:
                args.options[key] = match.group(2).strip()
                open_key = key
                continue
            args.unknown.append((raw_key, match.group(2)))
            open_key = None
        elif open_key in TEXT_OPTIONS or (open_key == "phone" and _DIGIT_GROUP.match(token)
                                          and _phone_incomplete(args.options["phone"])):
            args.options[open_key] = f"{args.options[open_key]} {token}".strip()
            continue
        else:
            open_key = None
        args.words.append(token)
    return args
