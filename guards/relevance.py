"""Rule 4, relevance (28CFR23.20(a)): under a criminal predicate or a public-safety tasking, only items linked to the
tasking's criminal conduct are stored, and one keyword is no link.

An item is relevant when it is written by an account the tasking names, or when it mentions a scope keyword (by
its stem, in any language, also obfuscated; not inside a harmless phrase: a glue gun is no gun) together with a
second, independent sign (guards/conduct.py): a strong sign of crime (violence, a threat, "no FOID", "serials
filed"), or a sign of a transaction or a word of the stated criminal activity where nothing says the context is
lawful (a licensed dealer, a question whether something is legal). A tasking without keywords needs the same
second sign. The verdict names the keyword and the sign, or what was missing.
"""
from __future__ import annotations

import regex

from guards.base import GuardContext, Stage, Verdict, cached
from guards.conduct import Conduct, conduct_of
from guards.lexicon import Lexicons, Match, Views, load
from guards.pii import alnum, author_names
from guards.text import item_text
from pipeline.models import CollectedItem, Tasking
from pipeline.settings import Settings

STOPWORDS = frozenset("about after against being their there these those under which while with within other "
                      "others activity activities criminal crime crimes related involving possible suspected".split())
KINDS = frozenset({"criminal_predicate", "public_safety"})


def activity_terms(tasking: Tasking) -> list[str]:
    """Significant words (5+ letters) of the stated criminal activity."""
    words = regex.findall(r"[^\W\d_]{5,}", (tasking.criminal_activity or "").lower())
    return sorted({w for w in words if w not in STOPWORDS})


def found_terms(lexicons: Lexicons, compiled: dict[str, list], views: Views, masked: list[Match]) -> list[Match]:
    """The first match of each term that lies outside the masked spans."""
    found = []
    for terms in compiled.values():
        match = next((m for m in lexicons.keyword_matches(terms, views) if not overlaps(m, masked)), None)
        if match is not None:
            found.append(match)
    return found


def overlaps(match: Match, masked: list[Match] | tuple[Match, ...]) -> bool:
    return any(m.obfuscated == match.obfuscated and match.start < m.end and m.start < match.end for m in masked)


def keyword_hits(lexicons: Lexicons, tasking: Tasking, views: Views, conduct: Conduct, context: GuardContext
                 ) -> tuple[list[Match], list[str]]:
    """The tasking's keywords found outside harmless uses, and the weak signs that link them to its activity
    (transactions, words of the stated criminal activity) where nothing says the context is lawful."""
    keywords, activity = cached(context, ("relevance_terms", tasking.id), lambda: (
        {k: lexicons.keyword_terms(k) for k in tasking.scope.keywords},
        {t: lexicons.keyword_terms(t) for t in activity_terms(tasking)}))
    hits = found_terms(lexicons, keywords, views, list(conduct.harmless))
    linked = found_terms(lexicons, activity, views, [*conduct.harmless, *hits])
    weak = list(conduct.weak) + [f"activity:{m.term}" for m in linked]
    return hits, weak


class Relevance(Stage):
    rule = "relevance"
    clause = "28CFR23.20(a)"

    def __init__(self, lexicons: Lexicons):
        self.lexicons = lexicons

    @classmethod
    def from_settings(cls, settings: Settings) -> Relevance:
        return cls(load(settings))

    def check(self, item: CollectedItem, context: GuardContext) -> Verdict:
        tasking = context.tasking_for(item)
        if tasking is None or tasking.kind not in KINDS:
            return self.passed("information gathering: relevance is the scope check")
        scope = tasking.scope
        if scope.accounts and author_names(item) & {alnum(a.lstrip("@").split("@")[0]) for a in scope.accounts}:
            return self.passed("written by an account the tasking names", "account")
        views = item_text(item, context).views
        conduct = conduct_of(self.lexicons, views)
        hits, weak = keyword_hits(self.lexicons, tasking, views, conduct, context)
        if scope.keywords and not hits:
            harmless = sorted({f"harmless:{m.term}" for m in conduct.harmless})
            return self.rejected(f"the tasking's keywords appear only in harmless uses ({', '.join(h[9:] for h in harmless)}): "
                                 f"no link to {tasking.criminal_activity or tasking.title or tasking.id}", *harmless)
        named = [f"keyword:{m.term}" for m in hits]
        if conduct.strong:
            return self.passed("a keyword together with a sign of criminal conduct", *named, *conduct.strong)
        if weak and not conduct.lawful:
            return self.passed("a keyword together with a sign of the stated activity", *named, *weak)
        what = tasking.criminal_activity or tasking.title or tasking.id
        if weak:
            return self.rejected(f"a keyword and a transaction in a lawful context ({', '.join(conduct.lawful)}): not relevant "
                                 f"to {what}", *named, *weak, *conduct.lawful)
        return self.rejected(f"{'a keyword' if named else 'the item'} with no second sign of {what} (a keyword alone is "
                             "not relevance): not relevant to the predicate", *named)
