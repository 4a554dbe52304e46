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
