"""Rule 6, PII minimization (D3.IV.A.11.a, D1.IV.B.6): other people's contact details are masked before storage.

Emails, US phone numbers and street addresses are masked in the stored title and text, except the
author's own (an email whose local part is the author's name or handle, or a number or address the
author introduces as theirs: "call me at", "my shop is at") and those the tasking's predicate names.
Three separate patterns (BASELINES.md: faster than one alternation); phone and address with the `regex` package,
email with `re`, which scans a long run of dot-separated labels ("a@b.b.b.b...") in linear time where `regex`
backtracks in quadratic time.
"""
from __future__ import annotations

import re
from typing import Callable, Union

import regex

from guards.base import GuardContext, Stage, Verdict, cached
from pipeline.models import CollectedItem, Tasking

EMAIL = re.compile(r"(?<![\w.+@-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# Separated (312-555-0142, (312) 555 0142, +1.312.555.0142), or ten digits in a row when they are a North American
# number (area code and exchange start with 2-9: 3125550142, +13125550142; not a Unix time or most order numbers).
PHONE = regex.compile(r"(?<![\d\w])(?:(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}"
                      r"|(?<![$#/=])(?:\+?1)?[2-9]\d{2}[2-9]\d{6})(?!\d)")  # not a price, an order number, a path
ADDRESS = regex.compile(
    r"(?<!\w)\d{1,6}\s+(?:[\p{Lu}0-9][\w'-]*\.?\s+){1,4}"
    r"(?i:street|st|avenue|ave|road|rd|boulevard|blvd|drive|dr|lane|ln|court|ct|place|pl|way|terrace|parkway|pkwy|highway|hwy)\b\.?")
# An author introducing their own contact details right before them ("call me at", "my cell is", "my shop is at"):
# nothing but connecting words between, so "my neighbor's number is" or "contact me, or call Bob at" is not theirs.
OWN = regex.compile(r"(?i)(?:\b(?:call|text|reach|contact|email|e-mail|find|dm|message|meet|write)\s+me(?:\s+up)?"
                    r"|\bhit\s+me\s+up"
                    r"|\bmy\s+(?:(?:cell|mobile|work|home|new|personal|business|office|direct|private|main|own|phone|"
                    r"email|e-mail)\s+){0,2}(?:number|phone|cell|email|e-mail|address|shop|store|place|garage|house|office|line)"
                    r")\b(?:\s*(?:(?:at|on|via|by|is)\b|[:,-]))*\s*$")
Pattern = Union[re.Pattern, regex.Pattern]
PATTERNS: dict[str, Pattern] = {"email": EMAIL, "phone": PHONE, "address": ADDRESS}
# Cheap tests that skip a pattern when it cannot match (most texts have no "@" and few digits); on text that is not
# ASCII, where \d means more than 0-9, the patterns' own digits (`re`'s Unicode \d costs ~10 ns a character).
NON_ASCII_MAY_MATCH: dict[str, Callable[[str], object]] = {
    "phone": regex.compile(r"\d{3}").search,
    "address": regex.compile(r"\d").search,
}
# What the patterns need, tested fast: every EMAIL match contains EMAIL_HINT (ASCII classes and literals, the same in
# `re` and `regex`); on ASCII text (digits 0-9, `regex` spaces \t\n\v\f\r and space) every PHONE match has at least
# 10 digits and every ADDRESS match has a digit, spaces, then a capital or digit: "0 A" or "0 0" once shaped.
EMAIL_HINT = re.compile(r"@[A-Za-z0-9-]+\.[A-Za-z0-9-]").search
PHONE_DIGITS = 10
ADDRESS_SHAPES = bytes(ord("0") if "0" <= chr(b) <= "9" else ord(" ") if chr(b) in "\t\n\v\f\r " else
                       ord("A") if "A" <= chr(b) <= "Z" else ord("x") for b in range(256))
ADDRESS_HINT = re.compile(rb"0 +[0A]").search


def may_match(kind: str, text: str) -> bool:
    """False only when PATTERNS[kind] cannot match the text."""
    if kind == "email":
        return "@" in text and EMAIL_HINT(text) is not None
    if not text.isascii():
        return NON_ASCII_MAY_MATCH[kind](text) is not None
    raw = text.encode("ascii")
    if kind == "phone":
        return len(raw) - len(raw.translate(None, b"0123456789")) >= PHONE_DIGITS
    return ADDRESS_HINT(raw.translate(ADDRESS_SHAPES)) is not None


PHONE_GAP = 2  # the most characters between two digits of a PHONE match: ") " after the area code, " (" before it
# Digit runs no more than PHONE_GAP apart, as long as they go: every PHONE match lies in one such cluster. The ASCII
# form is scanned fast (`\d` looks up every character's Unicode category; `re` scans [0-9] one character at a time).
DIGIT_CLUSTER = regex.compile(rf"\d+(?:\D{{1,{PHONE_GAP}}}\d+)*")
DIGIT = regex.compile(r"\d")
ASCII_DIGIT_CLUSTER = regex.compile(rf"[0-9]+(?:[^0-9]{{1,{PHONE_GAP}}}[0-9]+)*")


def windows(kind: str, text: str) -> list[tuple[int, int]]:
    """(pos, endpos) stretches of the text that hold every match of PATTERNS[kind], each match inside one, the
    lookahead at each endpos seeing what it sees in the whole text (`regex` lookbehinds read before pos anyway): a
    scan of the stretches finds exactly the whole text's matches. [] when the pattern cannot match. A contact detail
    is a few characters of a long post, and a pattern costs per character scanned.

    An EMAIL match holds an "@" and no space: it lies between the spaces around the first and last "@", and its
    final \\b sees the space. A PHONE match's digits (10 or 11) are never more than PHONE_GAP characters apart, so
    they lie in one cluster of such digit runs; it starts at most one character ("+" or "(") before its first digit
    and ends with a digit, the next character being no digit."""
    if not may_match(kind, text):
        return []
    if kind == "phone":
        return phone_windows(text)
    if kind == "email":
        first, last = text.find("@"), text.rfind("@")
        end = text.find(" ", last)
        return [(text.rfind(" ", 0, first) + 1, end if end >= 0 else len(text))]
    return [(0, len(text))]


def phone_windows(text: str) -> list[tuple[int, int]]:
    found = []
    for cluster in (ASCII_DIGIT_CLUSTER if text.isascii() else DIGIT_CLUSTER).finditer(text):
        start, end = cluster.span()
        if len(DIGIT.findall(cluster.group(0))) >= PHONE_DIGITS:  # `regex`'s own \d: its Unicode tables may be newer than str's
            found.append((max(0, start - 1), end))
    return found


def normalized(kind: str, value: str) -> str:
    if kind == "phone":
        return "".join(c for c in value if c.isdigit())[-10:]
    return " ".join(value.lower().rstrip(".").split())


def named_by(tasking: Tasking) -> set[tuple[str, str]]:
    """Identifiers the tasking's predicate, activity, title or scope names: these are its subject, not masked."""
    text = "\n".join([tasking.title, tasking.predicate or "", tasking.criminal_activity or "", *tasking.scope.keywords])
    return {(kind, normalized(kind, m.group(0))) for kind, pattern in PATTERNS.items() if may_match(kind, text)
            for m in pattern.finditer(text)}


ASCII_NON_ALNUM = str.maketrans({i: None for i in range(128) if not chr(i).isalnum()})


def alnum(value: str) -> str:
    """The letters and digits of the lowercased value (on ASCII by a deletion table, not a test per character)."""
    lowered = value.lower()
    if lowered.isascii():
        return lowered.translate(ASCII_NON_ALNUM)
    return "".join(c for c in lowered if c.isalnum())


def author_names(item: CollectedItem) -> set[str]:
    names = {item.author or "", (item.handle or "").lstrip("@").split("@")[0]}
    return {alnum(n) for n in names if alnum(n)}


class PiiMinimization(Stage):
    rule = "pii_minimization"
    clause = "D3.IV.A.11.a; D1.IV.B.6"

    def check(self, item: CollectedItem, context: GuardContext) -> Verdict:
        tasking = context.tasking_for(item)
        named = cached(context, ("pii_named", item.tasking_id), lambda: named_by(tasking) if tasking else set())
        # information gathering keeps no person profile (rule 8): not even the author's own details
        authors = None if tasking is not None and tasking.kind == "information_gathering" else item
        counts: dict[str, int] = {}
        title, text = (self.mask(t, authors, named, counts) for t in (item.title, item.text))
        if not counts:
            return self.passed("no contact details of other people")
        masked = item.model_copy(update={"title": title, "text": text})
        return self.passed(f"masked {', '.join(f'{n} {k}' for k, n in counts.items())} of people other than the author",
                           *(f"{k}:{n}" for k, n in counts.items()), item=masked, annotations={"pii_masked": counts})

    @staticmethod
    def mask(text: str, item: CollectedItem | None, named: set[tuple[str, str]], counts: dict[str, int]) -> str:
        """Mask the contact details in the text, except those `named` and, when `item` is given, its author's own."""
        for kind, pattern in PATTERNS.items():
            spans = windows(kind, text)
            if not spans:  # most texts: no closure to build
                continue

            def replace(m: re.Match | regex.Match, kind: str = kind) -> str:
                value = m.group(0)
                if (kind, normalized(kind, value)) in named or (item and is_authors(kind, value, m.string, m.start(), item)):
                    return value
                counts[kind] = counts.get(kind, 0) + 1
                return f"[{kind} masked]"
            text = substitute(pattern, replace, text, spans)
        return text


def substitute(pattern: Pattern, replace: Callable, text: str, spans: list[tuple[int, int]]) -> str:
    """The matches inside these (pos, endpos) stretches, in order and apart, replaced in one pass over the text (one
    copy, however many stretches), each match seeing the whole text (m.string, m.start()); for `re` patterns too,
    whose sub takes no pos."""
    parts, done = [], 0
    for pos, endpos in spans:
        for m in pattern.finditer(text, pos, endpos):
            parts += [text[done:m.start()], replace(m)]
            done = m.end()
    return "".join(parts) + text[done:] if parts else text


def is_authors(kind: str, value: str, text: str, start: int, item: CollectedItem) -> bool:
    if kind == "email" and alnum(value.split("@")[0]) in author_names(item):
        return True
    before = text[max(0, start - 60):start]
    return may_introduce_own(before) and OWN.search(before) is not None


def may_introduce_own(before: str) -> bool:
    """False only when OWN cannot match: each of its matches holds "me" or "my", and only m/M, e/E and y/Y match
    those letters ignoring case (tests/test_guard_fast_paths.py checks every character)."""
    lowered = before.lower()
    return "me" in lowered or "my" in lowered
