"""How a verb is described: its words in both languages, its options, its help (worded from the
catalog), its handler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from commands.args import Args
from commands.types import Reply
from wording import say

Handler = Callable[..., Reply]


@dataclass(frozen=True)
class Family:
    """A top-level command word (`/lead`, `/线索`) and the sub-verbs under it."""

    name: str
    words: tuple[str, ...]  # every spelling, Chinese included
    summary_en: str  # the catalog's msgid: the Chinese is in the catalog
    # Words that stand for a family *and* a first argument: `/日报` is `/report today`.
    implied: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def summary(self, locale: str) -> str:
        return say(locale, self.summary_en)


@dataclass(frozen=True)
class Verb:
    family: str
    name: str  # "" for the verb that runs when no sub-verb word matches
    words: tuple[str, ...]
    handler: Handler
    # In the English command words; the catalog spells them in the Chinese ones.
    usage_en: str
    example_en: str
    options: frozenset[str] = frozenset()

    def usage(self, locale: str) -> str:
        return say(locale, self.usage_en)

    def example(self, locale: str) -> str:
        return say(locale, self.example_en)


@dataclass
class ParsedCommand:
    verb: Verb | None
    family: Family | None
    args: Args
    locale: str | None  # the language the command word was typed in
