"""Rule 8, people who are not the subject (the 1998 clarification of 28 CFR Part 23) and, for
information-gathering taskings, no person profile (D3.III, D3.IV.B.2.d).

Accounts an item mentions, other than its author and the accounts the tasking names, are labelled
`non_subject_identifiers` on the record; scope and relevance look at the author only, so a mention
never counts toward a predicate. Records of an information-gathering tasking keep no author, handle
or mentioned account: they are about places, events and topics, never persons: a feed's "submitted by NAME"
line and a profile link (https://host/@name, /u/name) go too, whole, domain and all. Information-gathering and
public-safety records keep no person profile either: a name given with an age ("Marcus Hill, 34") and a home
address without a street suffix ("1422 W Walton") are masked.
"""
from __future__ import annotations

import regex

from guards.base import GuardContext, Stage, Verdict, cached
from guards.pii import alnum, author_names
from pipeline.models import CollectedItem, Tasking

MENTION = regex.compile(r"(?<![\w@/])@([A-Za-z0-9_]{2,30}(?:@[A-Za-z0-9.-]+\.[A-Za-z]{2,})?)")
# Information gathering keeps no account at all, also where a link names it (https://host/@name).
ANY_MENTION = regex.compile(r"(?<![\w@])@([A-Za-z0-9_]{2,30}(?:@[A-Za-z0-9.-]+\.[A-Za-z]{2,})?)")
PROFILE_LINK = regex.compile(r"(?i)\b(?:https?://)?[a-z0-9.-]+\.[a-z]{2,}/(?:@|u/|user/|users/|profile/)[\w.-]+/?")
BYLINE = regex.compile(r"(?i)\b((?:submitted|posted|shared|uploaded|written|sent|reported)\s+by\s+)(?:/?u/|@)?[\w.-]{2,40}")
NAME = r"\p{Lu}[\p{Ll}'\-]+(?:\s+\p{Lu}\.)?(?:\s+\p{Lu}[\p{Ll}'\-]+){1,2}"
# An age as news and posts give it: "Name, 34," "Name (34)" "Name, age 34" "Name, 34 years old" "a 34-year-old Name"
AGE = r"(?:\s*\(\d{1,3}\)|,\s*\d{1,3}\s*(?:,|years?\s+old\b|-year-old\b)|,?\s+aged?\s+\d{1,3}\b)"
PERSON_WITH_AGE = regex.compile(rf"(?<!\w){NAME}(?={AGE})|(?<=\b\d{{1,3}}-year-old\s+){NAME}")
HOME_ADDRESS = regex.compile(r"(?<!\w)\d{1,6}\s+(?:[NSEW]|North|South|East|West)\.?\s+\p{Lu}[\w'-]+(?:\s+\p{Lu}[\w'-]+){0,2}")
PROFILE_KINDS = frozenset({"information_gathering", "public_safety"})


def tasking_subjects(tasking: Tasking) -> set[str]:
    """The accounts a tasking's scope or predicate names: its subjects, never labelled."""
    accounts = {alnum(a.split("@")[0] if not a.startswith("@") else a.lstrip("@").split("@")[0]) for a in tasking.scope.accounts}
    return accounts | {alnum(m.group(1).split("@")[0]) for m in MENTION.finditer(tasking.predicate or "")}


class NonSubjects(Stage):
    rule = "non_subjects"
    clause = "28CFR23 (1998 clarification); D3.III; D3.IV.B.2.d"

    def check(self, item: CollectedItem, context: GuardContext) -> Verdict:
        tasking = context.tasking_for(item)
        if tasking is not None and tasking.kind == "information_gathering":
            return self.without_profile(item)
        if tasking is not None and tasking.kind in PROFILE_KINDS:
            counts: dict[str, int] = {}
            title, text = (mask_profile(t, counts) for t in (item.title, item.text))
            if counts:
                item = item.model_copy(update={"title": title, "text": text})
                verdict = self.labelled(item, tasking, context)
                return self.passed(f"public safety: no person profile ({verdict.reason})",
                                   *(f"{k}:{n}" for k, n in counts.items()), *verdict.signals, item=item,
                                   annotations={"pii_masked": counts, **verdict.annotations})
        return self.labelled(item, tasking, context)

    def labelled(self, item: CollectedItem, tasking: Tasking | None, context: GuardContext) -> Verdict:
        text = f"{item.title}\n{item.text}"
        if "@" not in text:
            return self.passed("no other accounts mentioned")
        subjects = author_names(item)
        if tasking is not None:
            subjects |= cached(context, ("subject_accounts", tasking.id), lambda: tasking_subjects(tasking))
        others = sorted({"@" + m.group(1) for m in MENTION.finditer(text) if alnum(m.group(1).split("@")[0]) not in subjects})
        if not others:
            return self.passed("only the subject's accounts are mentioned")
        return self.passed(f"{len(others)} mentioned account(s) labelled as not the subject", *others,
                           annotations={"non_subject_identifiers": others})

    def without_profile(self, item: CollectedItem) -> Verdict:
        counts: dict[str, int] = {}
        if item.author or item.handle:
            counts["author"] = 1

        def mask(m: regex.Match) -> str:
            counts["account"] = counts.get("account", 0) + 1
            return "[account masked]"

        def byline(m: regex.Match) -> str:
            counts["account"] = counts.get("account", 0) + 1
            return f"{m.group(1)}[account masked]"

        def masked(t: str) -> str:
            t = BYLINE.sub(byline, PROFILE_LINK.sub(mask, t))
            return mask_profile(ANY_MENTION.sub(mask, t) if "@" in t else t, counts)
        title, text = (masked(t) for t in (item.title, item.text))
        if not counts:
            return self.passed("information gathering: no person in the item")
        stripped = item.model_copy(update={"author": None, "handle": None, "title": title, "text": text})
        return self.passed("information gathering: author and mentioned accounts removed, no person profile",
                           *(f"{k}:{n}" for k, n in counts.items()), item=stripped, annotations={"pii_masked": counts})


def mask_profile(text: str, counts: dict[str, int]) -> str:
    """A name given with an age and a home address without a street suffix, masked; counted in `counts`."""
    def person(m: regex.Match) -> str:
        counts["person"] = counts.get("person", 0) + 1
        return "[person masked]"

    def address(m: regex.Match) -> str:
        counts["address"] = counts.get("address", 0) + 1
        return "[address masked]"
    if any(c.isdigit() for c in text):
        text = HOME_ADDRESS.sub(address, PERSON_WITH_AGE.sub(person, text))
    return text
