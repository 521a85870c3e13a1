"""Lexicons, one file per language (config/lexicons/<code>.toml), and how their terms are found in a text.

Each file says how its language is matched: `snowball:<algorithm>` (a word and a term's word match when they or
their Snowball stems are equal, so "mosques", "pistolety" and "matarlos" are "mosque", "pistolet" and "matar"),
`prefix` (Korean: a term matches the start of a word, which carries its particles: "교회에서" is "교회"),
`substring` (Chinese, written without spaces) or `exact`. `stem_prefix = true` also matches a word whose stem
begins with a term's (Arabic, where Snowball leaves plural endings: "مسدسات" is "مسدس"); a `[lemmas]` table maps
forms the stemmer cannot join to their lemma (Polish "zastrzelę" to "strzelać"; Tagalog, which has no stemmer,
"papatayin" to "patayin"). A table of a file is a section (`protected`,
`criminal_conduct`, `threat`, `not_protected`, `harmless`, `lawful`, `login_wall`) whose keys are categories
listing terms; a table named `<section>_patterns` adds regular expressions to the section's categories.

Texts are read in two views (guards/obfuscation.py): as written and deobfuscated; a match found only in the second
says so in its signal. Every match names its category, the term as the lexicon lists it and its language.
"""
from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import regex
import snowballstemmer

from guards.obfuscation import deobfuscate
from guards.text import WORD, for_matching
from pipeline.errors import FcmonError
from pipeline.settings import Settings

SCRIPTS = {"Latin": regex.compile(r"[\p{Latin}0-9]"), "Arabic": regex.compile(r"\p{Arabic}"),
           "Hangul": regex.compile(r"\p{Hangul}"), "Han": regex.compile(r"\p{Han}")}
METHODS = ("snowball", "prefix", "substring", "exact")
NOT_LANGUAGE_FILES = frozenset({"tasking_rules.toml"})
KEYS_CACHED = 200_000
STEM_PREFIX_MIN = 3
STEM_MAX_CHARS = 64  # no word of a language is longer; a longer run is not stemmed (a 2 MB word was)


@dataclass(frozen=True)
class Match:
    section: str
    category: str
    term: str
    lang: str
    start: int
    end: int
    obfuscated: bool = False

    @property
    def signal(self) -> str:
        return f"{self.category}:{self.term}" + ("" if self.lang == "en" else f"@{self.lang}") + \
            (" (deobfuscated)" if self.obfuscated else "")


class View:
    """One reading of a text: lowercased, its `\\w+` words with their spans, and per language an index of word keys."""

    def __init__(self, text: str):
        self.text = text
        self.spans = [m.span() for m in WORD.finditer(text)]
        self.words = [text[s:e] for s, e in self.spans]
        self._index: dict[str, dict[str, list[int]]] = {}
        self._in_script: dict[str, list[int]] = {}

    def in_script(self, language: Language) -> list[int]:
        """Positions of the words written in the language's script (scanned once per view and script)."""
        found = self._in_script.get(language.script)
        if found is None:
            found = self._in_script[language.script] = [p for p, w in enumerate(self.words) if language.script_pattern.search(w)]
        return found

    def index(self, language: Language) -> dict[str, list[int]]:
        found = self._index.get(language.code)
        if found is None:
            found = self._index[language.code] = {}
            for position in self.in_script(language):
                for key in language.keys(self.words[position]):
                    found.setdefault(key, []).append(position)
        return found


@dataclass
class Views:
    plain: View
    deobfuscated: View | None  # None when deobfuscation changes nothing

    @classmethod
    def of(cls, text: str) -> Views:
        lowered = for_matching(text).lower()
        clear = deobfuscate(lowered)
        return cls(View(lowered), View(clear) if clear != lowered else None)

    def each(self) -> Iterable[tuple[View, bool]]:
        yield self.plain, False
        if self.deobfuscated is not None:
            yield self.deobfuscated, True


@dataclass
class Term:
    category: str
    listed: str
    words: tuple[str, ...]
    keys: tuple[frozenset[str], ...]
    text: str  # the lowercased term (substring matching)
    exact: bool = False  # listed as "=term": its words match only as written (a short stem would match other words)
    stems: tuple[str, ...] = ()


@dataclass
class Language:
    code: str
    method: str
    script: str
    algorithm: str | None
    sections: dict[str, list[Term]] = field(default_factory=dict)
    patterns: dict[str, list[tuple[str, regex.Pattern]]] = field(default_factory=dict)
    lemmas: dict[str, str] = field(default_factory=dict)
    stem_prefix: bool = False

    def __post_init__(self) -> None:
        self.script_pattern = SCRIPTS[self.script]
        self._stemmer = snowballstemmer.stemmer(self.algorithm) if self.algorithm else None
        self._keys: dict[str, frozenset[str]] = {}

    def keys(self, word: str) -> frozenset[str]:
        """What a word is compared by: itself and, under Snowball, its stem (memoized: words repeat across items)."""
        found = self._keys.get(word)
        if found is None:
            if len(self._keys) >= KEYS_CACHED:
                self._keys.clear()
            forms = {word, self.lemmas.get(word, word)}
            if self._stemmer is not None and len(word) <= STEM_MAX_CHARS:
                forms |= {self._stemmer.stemWord(f) for f in tuple(forms)}
            found = self._keys[word] = frozenset(forms)
        return found

    def stem(self, word: str) -> str:
        return self._stemmer.stemWord(word) if self._stemmer is not None and len(word) <= STEM_MAX_CHARS else word

    def term(self, category: str, listed: str) -> Term:
        exact = listed.startswith("=")
        listed = listed.removeprefix("=")
        lowered = for_matching(listed).lower().strip()
        words = tuple(WORD.findall(lowered))
        keys = tuple(frozenset((w,)) if exact else self.keys(w) for w in words)
        return Term(category, listed, words, keys, lowered, exact, tuple(self.stem(w) for w in words))

    def find(self, term: Term, view: View) -> Iterable[tuple[int, int]]:
        """Character spans of the view where the term stands."""
        if self.method == "substring":
            start = view.text.find(term.text)
            while start >= 0 and term.text:
                yield start, start + len(term.text)
                start = view.text.find(term.text, start + 1)
            return
        if not term.words:
            return
        if self.method == "prefix":
            starts = [p for p in view.in_script(self) if view.words[p].startswith(term.words[0])]
        elif self.stem_prefix and not term.exact:
            starts = [p for p in view.in_script(self) if self.same(term, 0, view.words[p])]
        else:
            index = view.index(self)
            starts = sorted({p for key in term.keys[0] for p in index.get(key, ())
                             if not term.exact or view.words[p] == term.words[0]})
        for position in starts:
            last = position + len(term.words) - 1
            if last < len(view.words) and all(self.same(term, j, view.words[position + j]) for j in range(1, len(term.words))):
                yield view.spans[position][0], view.spans[last][1]

    def same(self, term: Term, j: int, word: str) -> bool:
        if self.method == "prefix":
            return word.startswith(term.words[j])
        if term.exact:
            return word in term.keys[j]
        keys = self.keys(word)
        if not term.keys[j].isdisjoint(keys):
            return True
        stem = term.stems[j]
        return self.stem_prefix and len(stem) >= STEM_PREFIX_MIN and any(k.startswith(stem) for k in keys)


class Lexicons:
    """Every language's lexicons; `find` looks for a section's terms in all of them (a post may mix languages)."""

    def __init__(self, languages: list[Language]):
        self.languages = languages

    def find(self, section: str, views: Views, masked: list[Match] | tuple = ()) -> list[Match]:
        """The section's matches in the text, leaving out those that overlap a masked match of the same view."""
        found: list[Match] = []
        for view, obfuscated in views.each():
            blocked = [(m.start, m.end) for m in masked if m.obfuscated == obfuscated]
            for language in self.languages:
                for term in language.sections.get(section, ()):
                    for start, end in language.find(term, view):
                        if not any(start < e and s < end for s, e in blocked):
                            found.append(Match(section, term.category, term.listed, language.code, start, end, obfuscated))
                for category, pattern in language.patterns.get(section, ()):
                    for m in pattern.finditer(view.text):
                        if not any(m.start() < e and s < m.end() for s, e in blocked):
                            found.append(Match(section, category, pattern.pattern, language.code, m.start(), m.end(), obfuscated))
        return found

    def keyword_terms(self, keyword: str) -> list[tuple[Language, Term]]:
        """A tasking keyword compiled for every language of its script (a hashtag is its word)."""
        bare = keyword.lstrip("#")
        return [(language, language.term("keyword", bare)) for language in self.languages
                if language.script_pattern.search(for_matching(bare).lower())]

    def keyword_matches(self, compiled: list[tuple[Language, Term]], views: Views) -> Iterable[Match]:
        """Where a compiled keyword stands, as written first, then deobfuscated."""
        for view, obfuscated in views.each():
            for language, term in compiled:
                for start, end in language.find(term, view):
                    yield Match("keyword", "keyword", term.listed, language.code, start, end, obfuscated)


def signals(matches: Iterable[Match]) -> list[str]:
    """`category:term[@lang]` of each match, once: one language's term per stretch of text (English first, a word
    that is a term in several languages is one finding), and no deobfuscated twin of a term seen as written."""
    by_span: dict[tuple[int, int, bool], Match] = {}
    for m in sorted(matches, key=lambda m: (m.lang != "en", m.lang)):
        by_span.setdefault((m.start, m.end, m.obfuscated), m)
    kept = list(by_span.values())
    plain = {(m.category, m.term, m.lang) for m in kept if not m.obfuscated}
    return sorted({m.signal for m in kept if not m.obfuscated or (m.category, m.term, m.lang) not in plain})


def load(settings: Settings) -> Lexicons:
    return _load(Path(settings.config_dir) / "lexicons")


@functools.cache
def _load(directory: Path) -> Lexicons:
    files = sorted(p for p in directory.glob("*.toml") if p.name not in NOT_LANGUAGE_FILES)
    if not files:
        raise FcmonError(f"no language lexicons in {directory}", "restore config/lexicons/<language>.toml")
    return Lexicons([language_of(path) for path in files])


def language_of(path: Path) -> Language:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        method, _, algorithm = data["matching"].partition(":")
        if method not in METHODS or data["script"] not in SCRIPTS:
            raise ValueError(f"matching {data['matching']!r} or script {data['script']!r} is not known")
        language = Language(data["code"], method, data["script"], algorithm or None,
                            lemmas={for_matching(k).lower(): for_matching(v).lower() for k, v in data.get("lemmas", {}).items()},
                            stem_prefix=bool(data.get("stem_prefix", False)))
        for name, table in data.items():
            if not isinstance(table, dict) or name == "lemmas":
                continue
            if name.endswith("_patterns"):
                language.patterns[name.removesuffix("_patterns")] = [
                    (category, regex.compile(p, regex.IGNORECASE)) for category, ps in table.items() for p in ps]
            else:
                language.sections[name] = [language.term(category, t) for category, terms in table.items() for t in terms]
        return language
    except (OSError, KeyError, ValueError, TypeError, regex.error, tomllib.TOMLDecodeError) as exc:
        raise FcmonError(f"cannot load the lexicon {path} ({exc})", f"fix or restore config/lexicons/{path.name}") from exc
