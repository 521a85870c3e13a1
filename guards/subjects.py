"""Rule 8, people who are not the subject (the 1998 clarification of 28 CFR Part 23) and, for
information-gathering taskings, no person profile (D3.III, D3.IV.B.2.d).

Accounts an item mentions, other than its author and the accounts the tasking names, are labelled
`non_subject_identifiers` on the record; scope and relevance look at the author only, so a mention
never counts toward a predicate. Records of an information-gathering tasking keep no author, handle
or mentioned account: they are about places, events and topics, never persons.
"""
from __future__ import annotations

import regex

from guards.base import GuardContext, Stage, Verdict, cached
from guards.pii import alnum, author_names
from pipeline.models import CollectedItem, Tasking

MENTION = regex.compile(r"(?<![\w@/])@([A-Za-z0-9_]{2,30}(?:@[A-Za-z0-9.-]+\.[A-Za-z]{2,})?)")
# Information gathering keeps no account at all, also where a link names it (https://host/@name).
ANY_MENTION = regex.compile(r"(?<![\w@])@([A-Za-z0-9_]{2,30}(?:@[A-Za-z0-9.-]+\.[A-Za-z]{2,})?)")


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
        title, text = (ANY_MENTION.sub(mask, t) if "@" in t else t for t in (item.title, item.text))
        if not counts:
            return self.passed("information gathering: no person in the item")
        stripped = item.model_copy(update={"author": None, "handle": None, "title": title, "text": text})
        return self.passed("information gathering: author and mentioned accounts removed, no person profile",
                           *(f"{k}:{n}" for k, n in counts.items()), item=stripped, annotations={"pii_masked": counts})
