"""The readings of a text the lexicons look in (guards/lexicon.py): as written and deobfuscated (guards/obfuscation.py),
each lowercased and split into its `\\w+` words, with what the lexicons found in it kept for every stage that asks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from guards.obfuscation import deobfuscate
from guards.text import WORD, for_matching

if TYPE_CHECKING:
    from guards.lexicon import Language, Match


class View:
    """One reading of a text: lowercased, its `\\w+` words with their spans, the positions of each word in a script, and
    per language an index of word keys (what a tasking keyword is looked up by)."""

    def __init__(self, text: str):
        self.text = text
        self.spans = [m.span() for m in WORD.finditer(text)]
        self.words = [text[s:e] for s, e in self.spans]
        self._index: dict[str, tuple[int, dict[str, list[int]]]] = {}
        self._in_script: dict[str, list[int]] = {}
        self._positions: dict[str, dict[str, list[int]]] = {}
        self._long: dict[int, list[int]] = {}
        self._longest: int | None = None
        self.terms: dict[object, dict] = {}  # what WordIndex found of every section's terms, per index

    def long_words(self, at_least: int) -> list[int]:
        """Positions of the words at least this long (misspelt hashtags are long words)."""
        if self._longest is None:
            self._longest = max(map(len, self.words), default=0)
        if at_least > self._longest:
            return []
        found = self._long.get(at_least)
        if found is None:
            found = self._long[at_least] = [p for p, w in enumerate(self.words) if len(w) >= at_least]
        return found

    def in_script(self, language: Language) -> list[int]:
        """Positions of the words written in the language's script (scanned once per view and script)."""
        found = self._in_script.get(language.script)
        if found is None:
            if self.text.isascii():  # ASCII words are Latin ([a-z0-9_]: a word of underscores alone is no term)
                found = list(range(len(self.words))) if language.script == "Latin" else []
            else:
                found = [p for p, w in enumerate(self.words) if language.script_pattern.search(w)]
            self._in_script[language.script] = found
        return found

    def positions(self, language: Language) -> dict[str, list[int]]:
        """Each word written in the language's script and its positions, in order (a post repeats its words)."""
        found = self._positions.get(language.script)
        if found is None:
            found = self._positions[language.script] = {}
            words = self.words
            for position in self.in_script(language):
                found.setdefault(words[position], []).append(position)
        return found

    def index(self, language: Language) -> dict[str, list[int]]:
        """The positions of the words by each of their keys in the language that some term begins with (not in order)."""
        built = self._index.get(language.code)
        if built is not None and built[0] == language.starts_version:
            return built[1]
        found: dict[str, list[int]] = {}
        for word, positions in self.positions(language).items():
            for key in language.start_keys(word):
                found.setdefault(key, []).extend(positions)
        self.indexed(language, found)
        return found

    def indexed(self, language: Language, index: dict[str, list[int]]) -> None:
        """Keep the view's index in the language, as `index` builds it (WordIndex.terms_in builds all in one pass)."""
        self._index[language.code] = (language.starts_version, index)


@dataclass
class Views:
    plain: View
    deobfuscated: View | None  # None when deobfuscation changes nothing
    found: dict[tuple, tuple[Match, ...]] = field(default_factory=dict)  # Lexicons.find, memoized for the stages

    @classmethod
    def of(cls, text: str) -> Views:
        lowered = for_matching(text).lower()
        clear = deobfuscate(lowered)
        return cls(View(lowered), View(clear) if clear != lowered else None)

    def each(self) -> Iterable[tuple[View, bool]]:
        yield self.plain, False
        if self.deobfuscated is not None:
            yield self.deobfuscated, True
