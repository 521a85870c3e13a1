"""Signs of criminal conduct in a text, from the language lexicons (guards/lexicon.py), shared by the First
Amendment and relevance stages so that both read a text the same way.

- strong: `violence` and `illegal` terms of `criminal_conduct` ("shoot up", "no FOID", "serials filed"), and threats:
  a `threat` act within THREAT_WINDOW characters of an intent or time marker ("gonna ... kill", "bomb ... tomorrow");
  an act in the English past tense ("killed", "bombed", whichever language's term matched it) is a report of what
  happened, not a threat;
- weak: `sale` terms and price patterns ("selling", "$150 each", "hmu"): a sign of a transaction, not of a crime;
- lawful: a lawful context ("licensed dealer", "is it legal"), which a weak sign alone does not outweigh.
Uses of the words that are no link to crime (`harmless`: "glue gun", "killed it", "heart attack") are left out first.
Categories of `criminal_conduct` other than `sale` count as strong (a lexicon's new category fails closed).
"""
from __future__ import annotations

from dataclasses import dataclass

from guards.lexicon import Lexicons, Match, Views, signals

THREAT_WINDOW = 60
WEAK = frozenset({"sale"})


@dataclass(frozen=True)
class Conduct:
    strong: tuple[str, ...]
    weak: tuple[str, ...]
    lawful: tuple[str, ...]
    harmless: tuple[Match, ...]

    @property
    def any(self) -> tuple[str, ...]:
        return self.strong + self.weak


def conduct_of(lexicons: Lexicons, views: Views) -> Conduct:
    harmless = lexicons.find("harmless", views)
    found = lexicons.find("criminal_conduct", views, harmless)
    strong = [m for m in found if m.category not in WEAK]
    weak = [m for m in found if m.category in WEAK]
    return Conduct(tuple(signals(strong) + threats(lexicons, views, harmless)), tuple(signals(weak)),
                   tuple(signals(lexicons.find("lawful", views))), tuple(harmless))


def threats(lexicons: Lexicons, views: Views, harmless: list[Match]) -> list[str]:
    found = lexicons.find("threat", views, harmless)
    acts = [m for m in found if m.category == "act" and not past_tense(m, views)]
    intents = [m for m in found if m.category != "act"]
    pairs = {(a.term, i.term, a.lang, a.obfuscated) for a in acts for i in intents
             if a.obfuscated == i.obfuscated and (a.start, a.end) != (i.start, i.end)
             and max(a.start, i.start) - min(a.end, i.end) <= THREAT_WINDOW}
    plain = {p[:3] for p in pairs if not p[3]}
    return sorted({f"threat:{a}+{i}" + ("" if lang == "en" else f"@{lang}") + (" (deobfuscated)" if obf else "")
                   for a, i, lang, obf in pairs if not obf or (a, i, lang) not in plain})


def past_tense(match: Match, views: Views) -> bool:
    view = views.deobfuscated if match.obfuscated and views.deobfuscated is not None else views.plain
    word = view.text[match.start:match.end]
    return word.isascii() and word.endswith("ed")
