"""One index of a text's words for the lexicons of every language that looks its terms up by a word's keys (Snowball
and exact matching, guards/lexicon.py), built in one pass over the view's distinct words for every section at once.

What each word begins (the terms whose first word it is, in every such language and section) and what each pair of
words begins are memoized across texts (words repeat: a word's keys are its Snowball stems in four languages), so
that a text costs about one look-up per distinct word. Each language's matches come out term by term in the
lexicon's order, at each term's positions in order: what `Language.find_section` gives (the definition;
tests/test_guard_equivalence.py).
"""
from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from guards.lexicon import Language, Term
    from guards.views import View

WORDS_CACHED = 200_000
Hit = tuple[int, str, int, "Term"]  # a term a word begins: (its language's place, its section, its place in the section, the term)


class WordIndex:
    def __init__(self, languages: list[Language]):
        self.languages = languages
        self._indexed: dict[str, list[tuple[int, Language]]] = {}  # the indexed languages, by script
        for place, language in enumerate(languages):
            if language.indexed:
                self._indexed.setdefault(language.script, []).append((place, language))
        self._begun: dict[str, dict[str, tuple]] = {s: {} for s in self._indexed}
        self._pairs: dict[str, dict[tuple[str, str], tuple[Hit, ...]]] = {s: {} for s in self._indexed}
        self._starts_versions: tuple[int, ...] = ()

    def terms_in(self, view: View) -> dict[tuple[str, int], list[tuple[Term, int, int]]]:
        """Every section's terms of the indexed languages in the view, by (section, language's place): what each
        language's `find_section` gives, for all of them in one pass over the view's distinct words (once per view).
        The same pass builds the view's index of each of those languages (View.index), which keywords are found by."""
        found = view.terms.get(self)
        if found is not None:
            return found
        self.starts_checked()
        places: dict[tuple[str, int], list[tuple[int, int, Term, int, int]]] = {}
        words, spans, count = view.words, view.spans, len(view.words)
        for script, languages in self._indexed.items():
            indexes: dict[int, dict[str, list[int]]] = {place: {} for place, _ in languages}
            for word, positions in view.positions(languages[0][1]).items():
                one, more, keyed = self.begun_by(script, word)
                for place, keys in keyed:
                    for key in keys:
                        indexes[place].setdefault(key, []).extend(positions)
                for place, section, rank, term in one:
                    bucket = places.setdefault((section, place), [])
                    for position in positions:
                        bucket.append((rank, position, term, *spans[position]))
                for position in positions if more else ():
                    if position + 1 == count:
                        continue
                    for place, section, rank, term in self.followed_by(script, word, words[position + 1], more):
                        language, last = self.languages[place], position + len(term.words) - 1
                        if last < count and all(language.same(term, j, words[position + j]) for j in range(2, len(term.words))):
                            places.setdefault((section, place), []).append((rank, position, term, spans[position][0],
                                                                            spans[last][1]))
            for place, language in languages:
                view.indexed(language, indexes[place])
        found = view.terms[self] = {k: [(t, s, e) for _, _, t, s, e in sorted(v, key=itemgetter(0, 1))]
                                    for k, v in places.items()}
        return found

    def starts_checked(self) -> None:
        """Forget the words' keys that terms begin with (`begun_by`) when a keyword compiled since added to them."""
        versions = tuple(language.starts_version for language in self.languages)
        if versions != self._starts_versions:
            self._starts_versions = versions
            for memo in self._begun.values():
                memo.clear()

    def begun_by(self, script: str, word: str) -> tuple[tuple[Hit, ...], tuple[Hit, ...], tuple[tuple[int, tuple[str, ...]], ...]]:
        """(language's place, section, term's place, term) of every term of the script's indexed languages whose first
        word the word is (by their keys; an exact term's only as written), of one word and of more, and per language
        the word's keys that some term or keyword begins with (`Language.start_keys`), memoized: words repeat."""
        memo = self._begun[script]
        found = memo.get(word)
        if found is None:
            if len(memo) >= WORDS_CACHED:
                memo.clear()
            begun: dict[tuple[int, str, int], Term] = {}
            for place, language in self._indexed[script]:
                first = language.first_keys()
                for key in language.keys(word):
                    for section, rank, term in first.get(key, ()):
                        if not term.exact or word == term.words[0]:
                            begun[(place, section, rank)] = term
            keyed = tuple((place, keys) for place, language in self._indexed[script] if (keys := language.start_keys(word)))
            found = memo[word] = (tuple((*k, t) for k, t in begun.items() if len(t.words) == 1),
                                  tuple((*k, t) for k, t in begun.items() if len(t.words) > 1), keyed)
        return found

    def followed_by(self, script: str, word: str, second: str, begun: tuple[Hit, ...]) -> tuple[Hit, ...]:
        """Those of the terms the word begins (`begun_by`) whose second word the next word is, memoized by the pair."""
        memo = self._pairs[script]
        found = memo.get((word, second))
        if found is None:
            if len(memo) >= WORDS_CACHED:
                memo.clear()
            found = memo[(word, second)] = tuple(h for h in begun if self.languages[h[0]].same(h[3], 1, second))
        return found
