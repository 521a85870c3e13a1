"""Lexicons, one file per language (config/lexicons/<code>.toml), and how their terms are found in a text.

Each file says how its language is matched: `snowball:<algorithm>` (a word and a term's word match when they or
their Snowball stems are equal, so "mosques", "pistolety" and "matarlos" are "mosque", "pistolet" and "matar"),
`prefix` (Korean: a term matches the start of a word, which carries its particles: "교회에서" is "교회"),
`substring` (Chinese, written without spaces) or `exact`. `stem_prefix = true` also matches a word whose stem
begins with a term's (Arabic, where Snowball leaves plural endings: "مسدسات" is "مسدس"); a `[lemmas]` table maps
forms the stemmer cannot join to their lemma (Polish "zastrzelę" to "strzelać"; Tagalog, which has no stemmer,
"papatayin" to "patayin"). A table of a file is a section (`protected`,
`criminal_conduct`, `threat`, `not_protected`, `harmless`, `lawful`, `login_wall`) whose keys are categories
listing terms; a table named `<section>_patterns` adds regular expressions to the section's categories, and one named
`<section>_fuzzy` words that also match misspelt (one edit per FUZZY_LETTERS letters, `regex`'s fuzzy matching).

Texts are read in two views (guards/obfuscation.py): as written and deobfuscated; a match found only in the second
says so in its signal. Every match names its category, the term as the lexicon lists it and its language.
"""
from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, NamedTuple

import regex
import snowballstemmer

from guards.text import WORD, for_matching
from guards.views import View, Views
from guards.word_index import WordIndex
from pipeline.errors import FcmonError
from pipeline.settings import Settings

SCRIPTS = {"Latin": regex.compile(r"[\p{Latin}0-9]"), "Arabic": regex.compile(r"\p{Arabic}"),
           "Hangul": regex.compile(r"\p{Hangul}"), "Han": regex.compile(r"\p{Han}")}
METHODS = ("snowball", "prefix", "substring", "exact")
NOT_LANGUAGE_FILES = frozenset({"tasking_rules.toml"})
KEYS_CACHED = 200_000
KEYWORDS_CACHED = 4096
STEM_PREFIX_MIN = 3
FUZZY_LETTERS = 8
STEM_MAX_CHARS = 64  # no word of a language is longer; a longer run is not stemmed (a 2 MB word was)


class Match(NamedTuple):  # (a tuple: the stages make thousands a second)
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
    fuzzy: dict[str, list[tuple[str, str, regex.Pattern]]] = field(default_factory=dict)
    lemmas: dict[str, str] = field(default_factory=dict)
    stem_prefix: bool = False

    def __post_init__(self) -> None:
        self.script_pattern = SCRIPTS[self.script]
        # whether the terms are looked up by a word's keys (Snowball and exact matching; not by prefix or substring)
        self.indexed = self.method in ("snowball", "exact") and not self.stem_prefix
        self._stemmer = snowballstemmer.stemmer(self.algorithm) if self.algorithm else None
        self._keys: dict[str, frozenset[str]] = {}
        self._first: dict[str, list[tuple[str, int, Term]]] | None = None
        self._starts: set[str] = set()
        self.starts_version = 0
        self._start_keys: dict[str, tuple[str, ...]] = {}

    @property
    def starts(self) -> set[str]:
        """The keys of the first word of every term `find` was asked for (the keywords compiled: what a view's index
        keeps; the sections' terms are found by WordIndex.terms_in); `starts_version` counts its growth, so that an
        index built before a keyword was compiled is rebuilt."""
        return self._starts

    def add_starts(self, term: Term) -> None:
        if term.words and not term.keys[0] <= self._starts:
            self.starts.update(term.keys[0])
            self.starts_version += 1
            self._start_keys.clear()

    def start_keys(self, word: str) -> tuple[str, ...]:
        """The word's keys that some term begins with (what a view's index keeps: most words begin none), memoized."""
        found = self._start_keys.get(word)
        if found is None:
            if len(self._start_keys) >= KEYS_CACHED:
                self._start_keys.clear()
            starts = self.starts
            found = self._start_keys[word] = tuple(k for k in self.keys(word) if k in starts)
        return found

    def first_keys(self) -> dict[str, list[tuple[str, int, Term]]]:
        """Every section's terms by the keys of their first word, with the section and the term's place in it: a
        text's words look up the terms they may begin (guards/word_index.py)."""
        if self._first is None:
            self._first = {}
            for section, terms in self.sections.items():
                for place, term in enumerate(terms):
                    for key in term.keys[0] if term.words else ():
                        self._first.setdefault(key, []).append((section, place, term))
        return self._first

    def find_section(self, section: str, view: View) -> Iterable[tuple[Term, int, int]]:
        """Every (term, start, end) of the section in the view, term by term in the lexicon's order, each where `find`
        finds it (the definition: guards/word_index.py gives the same in one pass over the words for every section)."""
        if not view.in_script(self):
            return
        for term in self.sections.get(section, ()):
            for start, end in self.find(term, view):
                yield term, start, end

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
            self.add_starts(term)  # (a keyword's are added when it is compiled)
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
        self.word_index = WordIndex(languages)
        self._having: dict[str, list[tuple[int, Language, list, list]]] = {}
        self._keyword_keys: dict[int, tuple[list, tuple]] = {}

    def find(self, section: str, views: Views, masked: list[Match] | tuple = ()) -> list[Match]:
        """The section's matches in the text, leaving out those that overlap a masked match of the same view: per view,
        per language in order, its terms (term by term, in the lexicon's order), then its fuzzy words and patterns."""
        key = (self, section, tuple((m.start, m.end, m.obfuscated) for m in masked))
        cached = views.found.get(key)
        if cached is not None:
            return list(cached)
        if masked:
            blocked = {obfuscated: [(m.start, m.end) for m in masked if m.obfuscated == obfuscated] for obfuscated in (False, True)}
            found = [m for m in self.find(section, views)
                     if not any(m.start < e and s < m.end for s, e in blocked[m.obfuscated])]
        else:
            found = [m for view, obfuscated in views.each() for m in self._matches(section, view, obfuscated)]
        views.found[key] = tuple(found)
        return found

    def _matches(self, section: str, view: View, obfuscated: bool) -> Iterable[Match]:
        terms = self.word_index.terms_in(view)
        for place, language, fuzzy, patterns in self.having(section):
            if not view.in_script(language):  # a language none of whose script is in the text matches nothing
                continue
            found = terms.get((section, place), ()) if language.indexed else language.find_section(section, view)
            for term, start, end in found:
                yield Match(section, term.category, term.listed, language.code, start, end, obfuscated)
            for category, word, pattern in fuzzy:
                for position in view.long_words(len(word) - len(word) // FUZZY_LETTERS):  # a few per post
                    candidate = view.words[position]
                    if abs(len(candidate) - len(word)) <= len(word) // FUZZY_LETTERS and pattern.fullmatch(candidate):
                        start, end = view.spans[position]
                        yield Match(section, category, word, language.code, start, end, obfuscated)
            for category, pattern in patterns:
                for m in pattern.finditer(view.text):
                    yield Match(section, category, pattern.pattern, language.code, m.start(), m.end(), obfuscated)

    def having(self, section: str) -> list[tuple[int, Language, list, list]]:
        """The languages with terms, fuzzy words or patterns in the section, with their place and those lists."""
        found = self._having.get(section)
        if found is None:
            found = self._having[section] = [
                (place, language, language.fuzzy.get(section, []), language.patterns.get(section, []))
                for place, language in enumerate(self.languages)
                if language.sections.get(section) or language.fuzzy.get(section) or language.patterns.get(section)]
        return found

    def keyword_terms(self, keyword: str) -> list[tuple[Language, Term]]:
        """A tasking keyword compiled for every language of its script (a hashtag is its word)."""
        bare = keyword.lstrip("#")
        compiled = [(language, language.term("keyword", bare)) for language in self.languages
                    if language.script_pattern.search(for_matching(bare).lower())]
        for language, term in compiled:
            language.add_starts(term)
        return compiled

    def keyword_matches(self, compiled: list[tuple[Language, Term]], views: Views) -> list[Match]:
        """Where a compiled keyword stands, as written first, then deobfuscated (memoized per text: the purpose,
        First Amendment and relevance stages look for the same keywords)."""
        known = self._keyword_keys.get(id(compiled))  # (the list is kept, so its id names no other while it is)
        if known is None or known[0] is not compiled:
            if len(self._keyword_keys) >= KEYWORDS_CACHED:
                self._keyword_keys.clear()
            known = self._keyword_keys[id(compiled)] = (compiled, (self, "keyword", tuple(
                (language.code, term.listed, term.exact) for language, term in compiled)))
        key = known[1]
        found = views.found.get(key)
        if found is None:
            found = views.found[key] = tuple(self._keyword_matches(compiled, views))
        return list(found)

    def _keyword_matches(self, compiled: list[tuple[Language, Term]], views: Views) -> Iterable[Match]:
        for language, term in compiled:
            language.add_starts(term)  # (done when it was compiled: a view's index keeps its keys)
        for view, obfuscated in views.each():
            self.word_index.terms_in(view)  # which indexes the view's words for every language at once
            indexes: dict[str, dict[str, list[int]]] = {}
            for language, term in compiled:
                if language.indexed and term.words:  # no word has a key of its first word: `find` finds nothing
                    index = indexes.get(language.code)
                    if index is None:
                        index = indexes[language.code] = view.index(language)
                    if not any(key in index for key in term.keys[0]):
                        continue
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
            if name.endswith("_fuzzy"):
                language.fuzzy[name.removesuffix("_fuzzy")] = [
                    (category, w.lower(), regex.compile(f"(?:{regex.escape(w.lower())}){{e<={max(1, len(w) // FUZZY_LETTERS)}}}"))
                    for category, ws in table.items() for w in ws]
            elif name.endswith("_patterns"):
                language.patterns[name.removesuffix("_patterns")] = [
                    (category, regex.compile(p, regex.IGNORECASE)) for category, ps in table.items() for p in ps]
            else:
                language.sections[name] = [language.term(category, t) for category, terms in table.items() for t in terms]
        return language
    except (OSError, KeyError, ValueError, TypeError, regex.error, tomllib.TOMLDecodeError) as exc:
        raise FcmonError(f"cannot load the lexicon {path} ({exc})", f"fix or restore config/lexicons/{path.name}") from exc
