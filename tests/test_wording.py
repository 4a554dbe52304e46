"""The one wording catalog: every sentence the code says is in it, each has its Chinese with the
same placeholders, and no English/Chinese pair is written inline beside the code any more."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path
from string import Formatter

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po

import wording

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("adapters", "bot", "commands", "models", "reminders", "wording")
CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef]")


def catalog() -> Catalog:
    with wording.CATALOG.open("rb") as handle:
        return read_po(handle, locale="zh_CN")


@cache
def entries() -> list[Message]:
    return [entry for entry in catalog() if entry.id]


def fields(text: str) -> set[str]:
    return {
        name.split(".")[0].split("[")[0].split("!")[0]
        for _, name, _, _ in Formatter().parse(text)
        if name
    }


@cache
def sources() -> list[tuple[Path, ast.Module]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                found.append((path, ast.parse(path.read_text(), str(path))))
    return found


def text_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(p.value if isinstance(p, ast.Constant) else "{}" for p in node.values)
    return None


def name_of(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def test_every_entry_has_its_chinese_with_the_same_placeholders() -> None:
    problems = []
    for entry in entries():
        ids = list(entry.id) if isinstance(entry.id, tuple | list) else [entry.id]
        texts = list(entry.string) if isinstance(entry.string, tuple | list) else [entry.string]
        where = f"{entry.context or ''} {ids[0]!r}"
        if entry.fuzzy:
            problems.append(f"{where}: marked fuzzy")
        if not all(texts):
            problems.append(f"{where}: no Chinese")
            continue
        english = set().union(*map(fields, ids))
        chinese = set().union(*map(fields, texts))
        if len(ids) > 1:  # a plural: `{n}` is the count, which Chinese may leave to its wording
            english, chinese = english - {"n"}, chinese - {"n"}
        if english != chinese:
            problems.append(f"{where}: placeholders {sorted(english)} vs {sorted(chinese)}")
    assert problems == []
    assert len(entries()) > 400  # the whole bot's wording, not a sample


def test_the_catalog_reads_as_the_bot_speaks() -> None:
    assert wording.say("zh", "Claim") == "领取"
    assert wording.say("en", "Claim") == "Claim"
    assert wording.message("zh", "quote.own") == "不能审批自己提交的报价。"
    assert (
        wording.say_n(
            "en",
            "{n} row: {c} created, {m} merged as duplicates, {x} rejected.",
            "{n} rows: {c} created, {m} merged as duplicates, {x} rejected.",
            1,
            c=1,
            m=0,
            x=0,
        )
        == "1 row: 1 created, 0 merged as duplicates, 0 rejected."
    )
    assert wording.say_n("zh", "{n} pending quote", "{n} pending quotes", 3) == "3 个待审批报价"


def test_no_english_chinese_pair_is_written_inline() -> None:
    """A sentence is said with say(msgid) and its Chinese lives in the catalog; `pick(en, zh)`,
    `N_(en, zh)` or `say_n(one, many, zh, n)` left in the code means the codemod was not run."""
    found = []
    for path, tree in sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if name_of(node) in ("pick", "_pick"):
                found.append(f"{where}: {ast.unparse(node)[:80]}")
                continue
            texts = [text_of(arg) for arg in node.args]
            for first, second in zip(texts, texts[1:], strict=False):
                if (
                    first is not None
                    and second is not None
                    and re.search(r"[A-Za-z]{2}", first)
                    and not CJK.search(first)
                    and CJK.search(second)
                ):
                    found.append(f"{where}: {ast.unparse(node)[:80]}")
                    break
    assert found == []


def chooses_by_language(test: ast.expr) -> bool:
    """`ctx.zh`, `zh`, `locale == "zh"`: a condition that picks by the reader's language."""
    for node in ast.walk(test):
        if isinstance(node, ast.Attribute) and node.attr == "zh":
            return True
        if isinstance(node, ast.Name) and node.id == "zh":
            return True
        if isinstance(node, ast.Constant) and node.value == "zh":
            return True
    return False


def test_no_sentence_is_chosen_by_language_inline() -> None:
    """`"…" if ctx.zh else "…"` is a pair written inline too: the sentence belongs in the catalog,
    a command word to `Ctx.command`, a separator to `wording.join`."""
    found = []
    for path, tree in sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.IfExp) or not chooses_by_language(node.test):
                continue
            texts = [
                text_of(leaf) for branch in (node.body, node.orelse) for leaf in ast.walk(branch)
            ]
            if any(text is not None and CJK.search(text) for text in texts):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert found == []


@pytest.mark.parametrize("function", ["say", "say_n", "N_"])
def test_every_sentence_the_code_says_is_in_the_catalog(function: str) -> None:
    known = {
        (entry.context, entry.id[0] if isinstance(entry.id, tuple | list) else entry.id)
        for entry in entries()
    }
    missing = []
    for path, tree in sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or name_of(node) != function:
                continue
            func = node.func
            # wording.say(lang, msgid, …) names the language first; ctx.say(msgid, …) does not.
            module = isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "wording"
            first = node.args[1:2] if module else node.args[:1]
            literal = next(
                (
                    a.value
                    for a in first
                    if isinstance(a, ast.Constant) and isinstance(a.value, str)
                ),
                None,
            )
            if literal is None:
                continue  # worded from a table of N_() entries, checked where the table is
            context = next(
                (
                    k.value.value
                    for k in node.keywords
                    if k.arg == "context" and isinstance(k.value, ast.Constant)
                ),
                None,
            )
            if (context, literal) not in known:
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {literal!r}")
    assert missing == []
