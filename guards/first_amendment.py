"""Rule 3, First Amendment protection (28CFR23.20(b), D3.II).

Content about political, religious or social views, associations or activities is never stored on
that basis. Explainable by construction: the verdict lists every lexicon term that fired.
"""
from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from re import _parser as sre_parse  # the standard library's own pattern parser

import regex

from guards.base import GuardContext, Stage, Verdict
from guards.scope import ascii_bounded
from guards.text import WORD, item_text, words_of
from pipeline.errors import FcmonError
from pipeline.models import CollectedItem
from pipeline.settings import Settings

LEXICON_FILE = "lexicons/first_amendment.toml"


class Lexicon:
    """Named term lists compiled to one whole-word pattern per category."""

    def __init__(self, categories: dict[str, list[str]], exceptions: list[str] | None = None):
        # Phrases that look like a term but are not one ("in March", "mass air flow"): blanked before matching.
        self.exceptions = regex.compile("|".join(f"(?:{p})" for p in exceptions), regex.IGNORECASE) if exceptions else None
        # What each exception's matches must contain (lowercased); None when a pattern has no such literal.
        self.exception_literals = [required_literal(p) for p in exceptions or []]
        ordered = {name: sorted(terms, key=len, reverse=True) for name, terms in categories.items() if terms}
        self.patterns = {name: regex.compile(r"(?<!\w)(?:" + "|".join(regex.escape(t) for t in terms) + r")(?!\w)", regex.IGNORECASE)
                         for name, terms in ordered.items()}
        # The same alternatives lowercased, each with its first word, for categories of non-empty ASCII terms
        # (see `matched`).
        self.ascii_terms = {name: [(t.lower(), first_word(t)) for t in terms] for name, terms in ordered.items()
                            if all(t and t.isascii() for t in terms)}
        # The first word of every term: a category's pattern runs only when one of them is in the text (fast path).
        self.first_words = {name: frozenset(first_word(t) for t in terms if first_word(t))
                            for name, terms in categories.items() if terms}
        self.any_first_word = frozenset().union(*self.first_words.values())

    def candidates(self, text: str, words: set[str] | None = None) -> list[str]:
        """Categories one of whose first words is a word of the text (`words`: the text's words, when known)."""
        if words is None:
            words = words_of(text.lower())
        found = self.any_first_word.intersection(words)  # mostly empty: one pass over the text's words
        return [name for name, firsts in self.first_words.items() if not firsts.isdisjoint(found)] if found else []

    def signals(self, text: str, words: set[str] | None = None) -> list[str]:
        """Every `category:term` found; `words`, when given, must be `words_of(text.lower())` (guards/text.py)."""
        found: list[str] = []
        if words is None:
            words = words_of(text.lower())
        names = self.candidates(text, words)
        if names and self.exceptions is not None and self.may_have_exceptions(text):
            text, blanked = self.exceptions.subn(" ", text)
            if blanked:
                words = words_of(text.lower())
                names = self.candidates(text, words)
        for name in names:
            found.extend(f"{name}:{term}" for term in sorted(self.matched(name, text, words)))
        return found

    def may_have_exceptions(self, text: str) -> bool:
        """False only when no exception can match: on ASCII text, ignoring case is lowering, and an exception whose
        literal is not in the lowered text cannot match there (a scan of the exceptions costs more than the rest of
        the stage)."""
        if not text.isascii() or None in self.exception_literals:
            return True
        lowered = text.lower()
        return any(literal in lowered for literal in self.exception_literals)

    def matched(self, name: str, text: str, words: set[str] | None = None) -> set[str]:
        """The lowercased terms of a category the text holds: its pattern's matches or, on ASCII text, the same
        leftmost-first non-overlapping scan done with str.find (there ignoring case is lowering), skipping the terms
        whose first word is not one of the text's `words` (`words_of(text.lower())`, when given): a whole-word match
        of a term holds its first word as a whole word."""
        terms = self.ascii_terms.get(name)
        if terms is None or not text.isascii():
            return {m.group(0).lower() for m in self.patterns[name].finditer(text)}
        lowered = text.lower()
        first_at: dict[int, int] = {}  # start -> the first alternative (pattern order) that matches there
        for index, (term, first) in enumerate(terms):
            if words is not None and first and first not in words:
                continue
            start = lowered.find(term)
            while start >= 0:
                if ascii_bounded(lowered, start, start + len(term)):
                    first_at.setdefault(start, index)
                start = lowered.find(term, start + 1)
        found: set[str] = set()
        resume = 0
        for start in sorted(first_at):
            if start >= resume:
                term = terms[first_at[start]][0]
                found.add(term)
                resume = start + len(term)
        return found


def first_word(term: str) -> str | None:
    """The first `\\w+` word of the lowercased term (None when it has none)."""
    words = WORD.findall(term.lower())
    return words[0] if words else None


def required_literal(pattern: str) -> str | None:
    """The longest run of ASCII literal characters in the pattern's top-level sequence, lowercased: every match holds
    it. None when there is none of two or more characters, or the pattern is beyond `re`'s syntax (then the
    exceptions always run)."""
    try:
        sequence = sre_parse.parse(pattern)
    except sre_parse.error:
        return None
    runs, run = [], ""
    for op, value in sequence:
        if op is sre_parse.LITERAL and value < 128:
            run += chr(value).lower()
        else:
            runs.append(run)
            run = ""
    longest = max([*runs, run], key=len)
    return longest if len(longest) >= 2 else None


def load_lexicons(settings: Settings) -> dict[str, Lexicon]:
    """The `protected` and `criminal_conduct` lexicons of config/lexicons/first_amendment.toml."""
    return _load(Path(settings.config_dir) / LEXICON_FILE)


@functools.cache
def _load(path: Path) -> dict[str, Lexicon]:
    try:
        data = tomllib.loads(path.read_text())
        exceptions = data.get("not_protected", {}).get("patterns", [])
        return {"protected": Lexicon(data["protected"], exceptions), "criminal_conduct": Lexicon(data["criminal_conduct"])}
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise FcmonError(f"cannot load the First Amendment lexicons from {path} ({exc})",
                         "restore config/lexicons/first_amendment.toml") from exc


class FirstAmendment(Stage):
    rule = "first_amendment"
    clause = "28CFR23.20(b); D3.II"

    def __init__(self, protected: Lexicon, criminal_conduct: Lexicon):
        self.protected, self.criminal_conduct = protected, criminal_conduct

    @classmethod
    def from_settings(cls, settings: Settings) -> FirstAmendment:
        lexicons = load_lexicons(settings)
        return cls(lexicons["protected"], lexicons["criminal_conduct"])

    def check(self, item: CollectedItem, context: GuardContext) -> Verdict:
        shared = item_text(item, context)
        protected = self.protected.signals(shared.joined, shared.words)
        if not protected:
            return self.passed("no political, religious or social activity detected")
        conduct = self.criminal_conduct.signals(shared.joined, shared.words)
        if conduct:
            return self.quarantined("protected activity together with signs of criminal conduct: a supervisor decides",
                                    *protected, *conduct)
        return self.rejected("about protected political, religious or social activity with no direct link to criminal conduct",
                             *protected)
