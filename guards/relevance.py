"""Rule 4, relevance (28CFR23.20(a)): under a criminal predicate, only items linked to the tasking's
scope or its criminal activity are stored; a scope domain alone is no link."""
from __future__ import annotations

import regex

from guards.base import GuardContext, Stage, Verdict, cached
from guards.first_amendment import Lexicon, load_lexicons
from guards.pii import alnum, author_names
from guards.text import item_text
from pipeline.models import CollectedItem, Tasking
from pipeline.settings import Settings

STOPWORDS = frozenset("about after against being their there these those under which while with within other "
                      "others activity activities criminal crime crimes related involving possible suspected".split())


def activity_terms(tasking: Tasking) -> list[str]:
    """Significant words (5+ letters) of the stated criminal activity."""
    words = regex.findall(r"[^\W\d_]{5,}", (tasking.criminal_activity or "").lower())
    return sorted({w for w in words if w not in STOPWORDS})


class Relevance(Stage):
    rule = "relevance"
    clause = "28CFR23.20(a)"

    def __init__(self, criminal_conduct: Lexicon):
        self.criminal_conduct = criminal_conduct

    @classmethod
    def from_settings(cls, settings: Settings) -> Relevance:
        return cls(load_lexicons(settings)["criminal_conduct"])

    def check(self, item: CollectedItem, context: GuardContext) -> Verdict:
        tasking = context.tasking_for(item)
        if tasking is None or tasking.kind != "criminal_predicate":
            return self.passed("not a criminal predicate: relevance is the scope check")
        scope = tasking.scope
        if scope.accounts and author_names(item) & {alnum(a.lstrip("@").split("@")[0]) for a in scope.accounts}:
            return self.passed("written by an account the predicate names", "account")
        shared = item_text(item, context)
        hits = shared.keyword_hits(scope.keywords)
        if hits:
            return self.passed("mentions the tasking's keywords", *(f"keyword:{k}" for k in hits))
        terms = cached(context, ("activity_terms", tasking.id), lambda: activity_terms(tasking))
        hits = shared.keyword_hits(terms)
        conduct = self.criminal_conduct.signals(shared.joined, shared.words)
        if hits or conduct:
            return self.passed("linked to the stated criminal activity", *(f"activity:{t}" for t in hits), *conduct)
        return self.rejected(f"no link to tasking {tasking.id}'s keywords, accounts or criminal activity "
                             f"({tasking.criminal_activity}): not relevant to the predicate")
