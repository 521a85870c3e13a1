"""Rule 3, First Amendment protection (28CFR23.20(b), D3.II).

Content about political, religious or social views, associations or activities is never stored on that basis:
it is rejected, or held in quarantine for a supervisor when it also shows criminal conduct, never silently dropped
then: a strong sign (violence, a threat, "no FOID"; guards/conduct.py), or a tasking keyword together with a sale
outside a lawful context (a gun sale after church). A protest against the crime itself (a petition about converter
thefts) is no sign of it: the words of the stated activity count for relevance only. The lexicons are one file per language (config/lexicons/<code>.toml; guards/lexicon.py):
every faith's houses of worship, services, holy days and offices, protests, causes and hashtags, unions and strikes,
petitions and elections, matched by their stems, in every language at once, also when obfuscated. Place names and
idioms that contain a protected word ("Union Park", "strike a deal") are left out first. Explainable by
construction: the verdict lists every term that fired, with its language.
"""
from __future__ import annotations

from guards.base import GuardContext, Stage, Verdict
from guards.conduct import conduct_of
from guards.lexicon import Lexicons, load, signals
from guards.relevance import keyword_hits
from guards.text import item_text
from pipeline.models import CollectedItem
from pipeline.settings import Settings


def protected_signals(lexicons: Lexicons, views) -> list[str]:
    """The protected activity a text shows, as `category:term[@lang]` signals."""
    return signals(lexicons.find("protected", views, lexicons.find("not_protected", views)))


class FirstAmendment(Stage):
    rule = "first_amendment"
    clause = "28CFR23.20(b); D3.II"

    def __init__(self, lexicons: Lexicons):
        self.lexicons = lexicons

    @classmethod
    def from_settings(cls, settings: Settings) -> FirstAmendment:
        return cls(load(settings))

    def check(self, item: CollectedItem, context: GuardContext) -> Verdict:
        views = item_text(item, context).views
        protected = protected_signals(self.lexicons, views)
        if not protected:
            return self.passed("no political, religious or social activity detected")
        conduct = conduct_of(self.lexicons, views)
        found = list(conduct.strong)
        tasking = context.tasking_for(item)
        if tasking is not None and not conduct.lawful:
            hits, _ = keyword_hits(self.lexicons, tasking, views, conduct, context)
            if hits and conduct.weak:
                found += [f"keyword:{m.term}" for m in hits] + list(conduct.weak)
        if found:
            return self.quarantined("protected activity together with signs of criminal conduct: a supervisor decides",
                                    *protected, *found)
        return self.rejected("about protected political, religious or social activity with no direct link to criminal conduct",
                             *protected)
