"""The views of an item's text several stages read (joined, lowercased, its words), computed once per item.

Stages get them with `item_text(item, context)`: the chain's context keeps the last item's views and
reuses them while the title and text are the very same strings (a masking stage's copy gets new ones).
The joined text is what the detectors read: text that is not ASCII is NFKC-normalized and loses its invisible
format characters, so that "pro\u00adtest" (a soft hyphen, common in scraped HTML), "pro\u200btest", fullwidth
letters or a long s are the words they show; stored text is never changed here.
"""
from __future__ import annotations

import re
import unicodedata

import regex

from guards.base import GuardContext
from guards.scope import keyword_hits_in
from pipeline.models import CollectedItem

WORD = re.compile(r"\w+")
# On ASCII text `\w` is [A-Za-z0-9_]: mapping every other character to a space and splitting gives the same words
# (a bytes table: `bytes.translate` is much faster than `str.translate` with a mapping).
ASCII_NON_WORD = bytes(b if b < 128 and (chr(b).isalnum() or chr(b) == "_") else ord(" ") for b in range(256))
CONTEXT_KEY = "item_text"
# Invisible to a reader, so nothing to a detector: format characters (soft hyphen, zero-width space and joiners, byte
# order mark), other default-ignorable code points (Hangul fillers, the combining grapheme joiner) and, after NFKD,
# combining marks (an accent or a strike-through laid over "protest" leaves the word the reader sees).
INVISIBLE = regex.compile(r"[\p{Cf}\p{Default_Ignorable_Code_Point}\p{Mn}]+")


def for_matching(text: str) -> str:
    """The text as the detectors read it (ASCII text is already that)."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", INVISIBLE.sub("", unicodedata.normalize("NFKD", text)))


def words_of(lowered: str) -> set[str]:
    """The set of `\\w+` words of a text: exactly `set(WORD.findall(lowered))`, about twice as fast on ASCII."""
    if lowered.isascii():
        return set(lowered.encode("ascii").translate(ASCII_NON_WORD).decode("ascii").split())
    return set(WORD.findall(lowered))


class ItemText:
    __slots__ = ("title", "text", "joined", "_lowered", "_words", "_hits", "_views")

    def __init__(self, title: str, text: str):
        self.title, self.text = title, text
        self.joined = for_matching(f"{title}\n{text}")
        self._lowered: str | None = None
        self._words: set[str] | None = None
        self._hits: dict[tuple[str, ...], list[str]] = {}
        self._views = None

    @property
    def views(self):
        """The joined text's lexicon views, as written and deobfuscated (guards/lexicon.py Views)."""
        if self._views is None:
            from guards.lexicon import Views  # guards.lexicon reads this module's normalization
            self._views = Views.of(self.joined)
        return self._views

    @property
    def lowered(self) -> str:
        if self._lowered is None:
            self._lowered = self.joined.lower()
        return self._lowered

    @property
    def words(self) -> set[str]:
        """The words of the lowercased joined text (do not mutate: it is shared by the stages)."""
        if self._words is None:
            self._words = words_of(self.lowered)
        return self._words

    def keyword_hits(self, keywords: list[str]) -> list[str]:
        """guards.scope.keyword_hits of the title and text (scope and relevance both ask for the tasking's keywords)."""
        key = tuple(keywords)
        hits = self._hits.get(key)
        if hits is None:  # keywords read as the text is (a decomposed "José" is the composed one)
            normalized = {for_matching(k): k for k in keywords}
            hits = self._hits[key] = [normalized[k] for k in keyword_hits_in(list(normalized), self.joined, self.lowered)]
        return list(hits)


def item_text(item: CollectedItem, context: GuardContext) -> ItemText:
    cached = context.extras.get(CONTEXT_KEY)
    if not isinstance(cached, ItemText) or cached.title is not item.title or cached.text is not item.text:
        cached = context.extras[CONTEXT_KEY] = ItemText(item.title, item.text)
    return cached
