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
from typing import Any, Callable, Literal, Mapping, Protocol, runtime_checkable

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
    _reason: Reason | None = field(default=None, init=False, repr=False, compare=False)

    def as_reason(self) -> Reason:
        """The decision's reason: built from a stage's own strings without validation, and shared between decisions
        that give the same one (most passes), so treat it as immutable (the hot path needs one per stage per item).
        Kept on the verdict too: a stage's plain verdicts are themselves shared."""
        if self._reason is not None:
            return self._reason
        key = (self.rule, self.clause, self.reason, self.signals)
        reason = _REASONS.get(key)
        if reason is None:
            if len(_REASONS) >= REASONS_CACHED:
                _REASONS.clear()
            reason = _REASONS[key] = Reason.model_construct(rule=self.rule, clause=self.clause, message=self.reason,
                                                            signals=list(self.signals))
        object.__setattr__(self, "_reason", reason)
        return reason


REASONS_CACHED = 4096
_REASONS: dict[tuple[str, str, str, tuple[str, ...]], Reason] = {}


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


def cached(context: GuardContext, key: tuple, make: Callable[[], Any]) -> Any:
    """Per-context memo (one worker batch, one guard-check run): what depends only on the tasking repeats across items."""
    try:
        return context.extras[key]
    except KeyError:
        value = context.extras[key] = make()
        return value


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
        if signals or item is not None or annotations:
            return Verdict("pass", self.rule, self.clause, reason, signals, item, annotations or {})
        return self._plain("pass", reason, self.clause)

    def rejected(self, reason: str, *signals: str, clause: str | None = None) -> Verdict:
        if not signals:
            return self._plain("reject", reason, clause or self.clause)
        return Verdict("reject", self.rule, clause or self.clause, reason, signals)

    def quarantined(self, reason: str, *signals: str) -> Verdict:
        return Verdict("quarantine", self.rule, self.clause, reason, signals)

    def _plain(self, outcome: Outcome, reason: str, clause: str) -> Verdict:
        """A verdict with no signals, item or annotations: immutable, so one instance serves every item it fits."""
        key = (outcome, reason, clause)
        try:
            return self._plain_verdicts[key]
        except AttributeError:
            self._plain_verdicts: dict[tuple[str, str, str], Verdict] = {}
        except KeyError:
            if len(self._plain_verdicts) >= PLAIN_VERDICTS_CACHED:
                self._plain_verdicts.clear()
        verdict = self._plain_verdicts[key] = Verdict(outcome, self.rule, clause, reason)
        return verdict


PLAIN_VERDICTS_CACHED = 1024
