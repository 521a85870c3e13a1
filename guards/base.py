"""The one interface every guard stage implements, and what it returns.

A guard is a small class, built `from_settings` when it needs configuration, with one method:
`check(item, context) -> Verdict`. A verdict always says which rule decided, the clause of law or
directive behind it and, in words, why; never a bare bool.

Stages that transform (PII masking, person-profile removal) return the changed item in `Verdict.item`;
the chain hands it to the next stages and the worker stores it. `Verdict.annotations` are fields of the
GuardDecision (and of the stored IndexedRecord) the stage contributes, e.g. `pii_masked` counts or
`non_subject_identifiers`; the chain merges them (dicts are summed, lists concatenated).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Mapping, Protocol, runtime_checkable

from pipeline.models import CollectedItem, Reason, Tasking
from pipeline.settings import Settings

Outcome = Literal["pass", "quarantine", "reject"]


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    rule: str
    clause: str
    reason: str
    signals: tuple[str, ...] = ()
    item: CollectedItem | None = None
    annotations: Mapping[str, Any] = field(default_factory=dict)

    def as_reason(self) -> Reason:
        # Built from a stage's own strings: no validation needed (the hot path builds one per stage per item).
        return Reason.model_construct(rule=self.rule, clause=self.clause, message=self.reason, signals=list(self.signals))


@dataclass(frozen=True)
class GuardContext:
    """What a guard may consult besides the item. `roles` is None when user roles are unknown (guards then fail closed)."""
    taskings: Mapping[str, Tasking]
    roles: Mapping[str, str] | None
    now: datetime
    settings: Settings
    extras: dict[str, object] = field(default_factory=dict)

    def tasking_for(self, item: CollectedItem) -> Tasking | None:
        return self.taskings.get(item.tasking_id)


@runtime_checkable
class Guard(Protocol):
    rule: str
    clause: str

    def check(self, item: CollectedItem, context: GuardContext) -> Verdict:
        """Decide one item: pass, quarantine or reject, with the reason."""


class Stage:
    """Convenience base: verdict constructors that fill in the stage's rule and clause."""
    rule = ""
    clause = ""

    def passed(self, reason: str, *signals: str, item: CollectedItem | None = None,
               annotations: Mapping[str, Any] | None = None) -> Verdict:
        return Verdict("pass", self.rule, self.clause, reason, signals, item, annotations or {})

    def rejected(self, reason: str, *signals: str, clause: str | None = None) -> Verdict:
        return Verdict("reject", self.rule, clause or self.clause, reason, signals)

    def quarantined(self, reason: str, *signals: str) -> Verdict:
        return Verdict("quarantine", self.rule, self.clause, reason, signals)
