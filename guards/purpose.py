"""Rule 1, lawful purpose: no tasking, no storage; and rule 7's tasking checks, applied again at use."""
from __future__ import annotations

from datetime import datetime

from guards.base import GuardContext, Stage, Verdict, cached
from guards.lexicon import Lexicons, load
from guards.provenance import CLOCK_SKEW
from guards.scope import uncovered
from guards.tasking_rules import TaskingLexicon, load_tasking_lexicon, use_problems
from guards.text import item_text
from pipeline.models import CollectedItem, Tasking
from pipeline.settings import Settings


class LawfulPurpose(Stage):
    rule = "lawful_purpose"
    clause = "D3.IV.A.11.a; D3.IV.B.2.d; 28CFR23.20(a)"

    def __init__(self, lexicon: TaskingLexicon, lexicons: Lexicons):
        self.lexicon, self.lexicons = lexicon, lexicons

    @classmethod
    def from_settings(cls, settings: Settings) -> LawfulPurpose:
        return cls(load_tasking_lexicon(settings), load(settings))

    def check(self, item: CollectedItem, context: GuardContext) -> Verdict:
        tasking = context.tasking_for(item)
        if tasking is None:
            return self.rejected(f"no tasking {item.tasking_id!r}: nothing is stored without a lawful purpose")
        problems = cached(context, ("tasking_problems", tasking.id),
                          lambda: use_problems(tasking, context.roles, context.now, self.lexicon))
        if problems:
            return self.rejected("; ".join(p.message for p in problems), clause=problems[0].clause)
        earliest, latest = cached(context, ("fetch_window", tasking.id), lambda: fetch_window(tasking))
        if (earliest and item.fetched_at < earliest) or (latest and item.fetched_at > latest):
            return self.rejected(f"fetched at {item.fetched_at.isoformat()}, outside the time tasking {tasking.id} was "
                                 f"approved for ({tasking.approved_at} to {tasking.expires_at}): collected without a "
                                 "lawful purpose")
        compiled = cached(context, ("scope_terms", tasking.id),
                          lambda: {k: self.lexicons.keyword_terms(k) for k in tasking.scope.keywords})
        views = item_text(item, context).views

        def hits(keywords: list[str]) -> list[str]:  # by stem, in any language, also obfuscated (guards/lexicon.py)
            return [k for k in keywords if next(iter(self.lexicons.keyword_matches(compiled[k], views)), None)]
        outside = uncovered(tasking.scope, item, hits)
        if outside:
            return self.rejected(f"out of the scope of tasking {tasking.id}: {outside}")
        return self.passed(f"approved tasking {tasking.id} covers the item")


def fetch_window(tasking: Tasking) -> tuple[datetime | None, datetime | None]:
    """When an item of the tasking may have been fetched: from its approval to its expiry (give or take clock skew)."""
    return (tasking.approved_at - CLOCK_SKEW if tasking.approved_at else None,
            tasking.expires_at + CLOCK_SKEW if tasking.expires_at else None)
