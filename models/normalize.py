"""Normalised forms of contact facts, so that one customer typed two ways is found as one."""

from __future__ import annotations

import re
import unicodedata

_COMPANY_SUFFIXES = (
    "co ltd", "co limited", "company limited", "limited", "ltd", "inc", "incorporated", "llc",
    "corp", "corporation", "co", "gmbh", "plc", "pte ltd", "pte",
    "股份有限公司", "有限责任公司", "有限公司", "集团", "公司",
)


def normalize_phone(phone: str | None) -> str | None:
    """`+86 138-0013-8000`, `(138) 0013 8000` and `13800138000` are one number."""
    if not phone:
        return None
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", phone))
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    if len(digits) == 15 and digits.startswith("0086"):
        digits = digits[4:]
    return digits or None


def normalize_email(email: str | None) -> str | None:
    if not email:
        return None
    value = unicodedata.normalize("NFKC", email).strip().casefold()
    return value or None


def normalize_company(company: str | None) -> str | None:
    """`ACME Ltd.`, `acme ltd` and `Acme` are one company; so are `华为技术有限公司` and `华为技术`."""
    if not company:
        return None
    value = unicodedata.normalize("NFKC", company).casefold()
    if re.search(r"[^\w\s]", value) and not any(char.isalpha() for char in value):
        # Digits and symbols only (`-1+1`, `=1+1`, `;=1+1`): without its symbols such a name is
        # not itself any more, and unrelated ones would meet in one key ("11"). It names no
        # company to compare; a name of digits alone (`360`) still does.
        return None
    value = re.sub(r"[^\w\s]", " ", value)
    value = re.sub(r"\s+", " ", value).strip()
    changed = True
    while changed and value:
        changed = False
        for suffix in _COMPANY_SUFFIXES:
            if value.endswith(" " + suffix) or (value.endswith(suffix) and not suffix.isascii()):
                trimmed = value[: -len(suffix)].strip()
                if trimmed:
                    value = trimmed
                    changed = True
    return value.replace(" ", "") or None


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def looks_like_email(text: str) -> bool:
    return bool(_EMAIL.match(text.strip()))


def looks_like_phone(text: str) -> bool:
    digits = normalize_phone(text) or ""
    return 5 <= len(digits) <= 15 and bool(re.fullmatch(r"[\d\s+\-().]+", unicodedata.normalize("NFKC", text)))


# Characters that reorder what is shown (embeddings, overrides, isolates): `Acme\u202emoc.live`
# shows as another name than it holds. Nothing a team types or imports needs them: Unicode's own
# bidirectional rules already lay out Arabic or Hebrew text correctly without them.
DIRECTION_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_DIRECTION = re.compile("[" + "".join(sorted(DIRECTION_CONTROLS)) + "]")
# Characters that show nothing: zero-width spaces, the byte-order mark, direction marks, soft
# hyphens, Hangul fillers (blank names), invisible operators. They only make two names that look
# alike differ, so they are dropped wherever they come from.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200e\u200f\u2060-\u2064"
    "\u3164\ufeff\uffa0]"
)
# A joiner (U+200C, U+200D) between two characters it can shape — emoji sequences (👨‍👩‍👧),
# Persian, Indic scripts — stays; next to Latin, Chinese, Japanese, Korean or a space it shapes
# nothing and is just invisible.
_UNJOINABLE = (
    "\x00-\x7f\\s\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0003ffff"
)
_STRAY_JOINER = re.compile(
    f"(?<![^{_UNJOINABLE}])[\u200c\u200d]|[\u200c\u200d](?![^{_UNJOINABLE}])"
)
# Tag characters are invisible too, except in the flag sequences that follow a black flag (🏴).
_STRAY_TAGS = re.compile("(?<![\U0001f3f4\U000e0020-\U000e007f])[\U000e0000-\U000e007f]+")


def direction_controls(text: str) -> list[str]:
    """The direction controls in `text`, each as `U+202E`, in order of first appearance."""
    return list(dict.fromkeys(f"U+{ord(char):04X}" for char in _DIRECTION.findall(text)))


def drop_invisible(text: str) -> str:
    """`text` without the characters that show nothing (joiners inside emoji and the scripts that
    need them stay); direction controls are left for the caller to refuse or drop."""
    return _STRAY_TAGS.sub("", _STRAY_JOINER.sub("", _INVISIBLE.sub("", text)))


def visible(text: str) -> str:
    """`text` without invisible characters and direction controls: what a reader sees is what it
    holds. For text nobody can be asked to retype (names from a platform, data already stored)."""
    return drop_invisible(_DIRECTION.sub("", text))
