"""The one interface every guard stage implements, and what it returns.

A guard is a small class, built `from_settings` when it needs configuration, with one method:
`check(item, context) -> Verdict`. A verdict always says which rule decided, the clause of law or
directive behind it and, in words, why; never a bare bool.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Mapping, Protocol, runtime_checkable

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

    def as_reason(self) -> Reason:
        return Reason(rule=self.rule, clause=self.clause, message=self.reason, signals=list(self.signals))


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

    def passed(self, reason: str, *signals: str) -> Verdict:
        return Verdict("pass", self.rule, self.clause, reason, signals)

    def rejected(self, reason: str, *signals: str, clause: str | None = None) -> Verdict:
        return Verdict("reject", self.rule, clause or self.clause, reason, signals)

    def quarantined(self, reason: str, *signals: str) -> Verdict:
        return Verdict("quarantine", self.rule, self.clause, reason, signals)
