"""Rule 7, taskings checked when requested and whenever used: pure functions returning problems with clauses.

`request_problems` is what `fcmon tasking add` refuses; `use_problems` adds approval, expiry and
revocation and is what the lawful-purpose stage (hence the worker and guard-check) applies per item.
"""
from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Mapping

import regex

from guards.lexicon import Lexicons, Views
from guards.lexicon import _load as load_languages
from guards.obfuscation import deobfuscate
from pipeline.errors import FcmonError
from pipeline.models import Tasking
from pipeline.settings import Settings

LEXICON_FILE = "lexicons/tasking_rules.toml"
MIN_PREDICATE_WORDS = 12
PERSONAL_KEYWORD = regex.compile(r"^@|@.+\.[a-z]{2,}$|^\+?[\d\s().-]{7,}$")


@dataclass(frozen=True)
class Problem:
    clause: str
    message: str


@dataclass(frozen=True)
class TaskingLexicon:
    denied_words: frozenset[str]
    denied_hashtags: frozenset[str]
    vague_activities: frozenset[str]
    languages: Lexicons | None = None  # the protected lexicons of every language (config/lexicons/<code>.toml)


def load_tasking_lexicon(settings: Settings) -> TaskingLexicon:
    return _load(Path(settings.config_dir) / LEXICON_FILE)


@functools.cache
def _load(path: Path) -> TaskingLexicon:
    try:
        data = tomllib.loads(path.read_text())
        return TaskingLexicon(frozenset(w.lower() for w in data["denied_scope"]["words"]),
                              frozenset(h.lower().lstrip("#") for h in data["denied_scope"]["hashtags"]),
                              frozenset(p.lower() for p in data["vague_criminal_activity"]["phrases"]),
                              load_languages(path.parent))
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise FcmonError(f"cannot load the tasking lexicons from {path} ({exc})", f"restore config/{LEXICON_FILE}") from exc


INSIDE_MIN = 6  # denied words and hashtags this long are also found inside a longer hashtag ("#chicagoprotest")
FUZZY_MIN = 8  # and this long also misspelt, one error per eight letters ("#blaklivesmatter"; "protect" is no "protest")


def denied_terms(keywords: list[str], lexicon: TaskingLexicon) -> list[str]:
    """The keywords that name a protest, a cause, worship or organizing, whatever the spelling: a denied word or
    hashtag as written, deobfuscated ("pr0test"), misspelt ("#BlakLivesMatter") or inside a longer hashtag
    ("#chicagoprotest"), or a term of any language's protected lexicon read by its stem ("huelgas", "mezquita")."""
    return [k for k in keywords if denial(k, lexicon)]


def denial(keyword: str, lexicon: TaskingLexicon) -> str | None:
    bare = keyword.lower().lstrip("#")
    for form in dict.fromkeys((bare, deobfuscate(bare))):
        words = set(regex.findall(r"\w+", form)) | {joined := regex.sub(r"[\W_]+", "", form)}
        if form in lexicon.denied_hashtags or words & lexicon.denied_words:
            return form
        for term in lexicon.denied_hashtags | lexicon.denied_words:
            if (len(term) >= INSIDE_MIN and term in joined) or (len(term) >= FUZZY_MIN and fuzzy(term).search(joined)):
                return term
    if lexicon.languages is not None:
        views = Views.of(keyword.lstrip("#"))
        found = lexicon.languages.find("protected", views, lexicon.languages.find("not_protected", views))
        if found:
            return found[0].signal
    return None


@functools.lru_cache(maxsize=1024)
def fuzzy(term: str) -> regex.Pattern:
    return regex.compile(f"(?:{regex.escape(term)}){{e<={max(1, len(term) // 8)}}}")


def request_problems(tasking: Tasking, lexicon: TaskingLexicon) -> list[Problem]:
    """What makes a tasking unlawful as written, whoever approves it."""
    problems = []
    denied = denied_terms(tasking.scope.keywords, lexicon)
    if denied:
        problems.append(Problem("28CFR23.20(b); D3.II", f"scope keywords {', '.join(denied)} are protest, advocacy, worship "
                                "or organizing terms on the denied list: not a lawful purpose"))
    if tasking.kind == "information_gathering":
        personal = tasking.scope.accounts + [k for k in tasking.scope.keywords if PERSONAL_KEYWORD.search(k)]
        if personal:
            problems.append(Problem("D3.III; D3.IV.B.2.d", f"an information-gathering tasking may name places, events and "
                                    f"topics but never persons or accounts ({', '.join(personal)})"))
    if tasking.kind == "criminal_predicate":
        activity = " ".join((tasking.criminal_activity or "").lower().split())
        if activity in lexicon.vague_activities or len(activity) < 5:
            problems.append(Problem("28CFR23.20(c)", f"criminal_activity {tasking.criminal_activity!r} is not a definable "
                                    "criminal activity: name the offence"))
        if len((tasking.predicate or "").split()) < MIN_PREDICATE_WORDS:
            problems.append(Problem("28CFR23.20(c)", f"the predicate must state the facts behind the reasonable suspicion "
                                    f"(at least {MIN_PREDICATE_WORDS} words): who, what, where, and why it suggests the crime"))
    return problems


def use_problems(tasking: Tasking, roles: Mapping[str, str] | None, now: datetime, lexicon: TaskingLexicon) -> list[Problem]:
    """What stops a stored tasking from covering anything now; roles None (unknown) fails closed."""
    purpose = "D3.IV.A.11.a; D3.IV.B.2.d; 28CFR23.20(a)"
    if tasking.revoked:
        return [Problem(purpose, f"tasking {tasking.id} was revoked")]
    if tasking.expires_at <= now:
        return [Problem(purpose, f"tasking {tasking.id} expired at {tasking.expires_at.isoformat()}")]
    if not tasking.approved_by or not tasking.approved_at:
        return [Problem(purpose, f"tasking {tasking.id} is not approved by a supervisor")]
    if tasking.approved_by == tasking.requested_by:
        return [Problem(purpose, f"tasking {tasking.id} was approved by its own requester")]
    if roles is None:
        return [Problem(purpose, f"tasking {tasking.id}: the approver's role cannot be proven (no user list): failing closed")]
    if roles.get(tasking.approved_by) != "supervisor":
        return [Problem(purpose, f"tasking {tasking.id} approver {tasking.approved_by} does not hold the supervisor role")]
    return request_problems(tasking, lexicon)
