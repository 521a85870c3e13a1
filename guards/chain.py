"""The guard chain: stages from settings, in order; the first rejection decides."""
from __future__ import annotations

import importlib
import json
import logging
from datetime import datetime
from typing import Any

from guards.base import Guard, GuardContext, Verdict, cached
from guards.labels import labels_for, recorded_predicate
from pipeline.errors import FcmonError
from pipeline.models import CollectedItem, GuardDecision, Reason, sha256_hex
from pipeline.settings import Settings

log = logging.getLogger(__name__)

# Without these the chain could store content with no lawful purpose or no proof of public access.
REQUIRED_RULES = frozenset({"lawful_purpose", "public_provenance", "lawfully_obtained"})


def load_guard(path: str, settings: Settings) -> Guard:
    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise FcmonError(f"guard {path!r} cannot be loaded ({exc})", "fix the `guards` setting") from exc
    guard = cls.from_settings(settings) if hasattr(cls, "from_settings") else cls()
    if not isinstance(guard, Guard) or not guard.rule or not guard.clause:
        raise FcmonError(f"guard {path!r} does not implement the Guard interface (rule, clause, check(item, context))",
                         "see guards/base.py")
    return guard


class GuardChain:
    def __init__(self, guards: list[Guard]):
        if not guards:
            raise FcmonError("the guard chain is empty", "enable guards in the `guards` setting; nothing is stored without them")
        self.guards = guards

    @classmethod
    def from_settings(cls, settings: Settings) -> GuardChain:
        ordered = sorted(settings.guards.items(), key=lambda kv: kv[1])
        chain = cls([load_guard(path, settings) for path, _ in ordered])
        missing = REQUIRED_RULES - {g.rule for g in chain.guards}
        if missing:
            raise FcmonError(f"the guard chain lacks required rules: {', '.join(sorted(missing))}",
                             "restore them in the `guards` setting; fcmon refuses to run without them")
        log.info("guard chain enabled=%s", ",".join(g.rule for g in chain.guards))
        return chain

    def run(self, item: CollectedItem, context: GuardContext) -> tuple[list[Verdict], CollectedItem]:
        """Every stage in order until the first rejection; returns the verdicts and the item as transformed."""
        verdicts = []
        for guard in self.guards:
            try:
                verdict = guard.check(item, context)
            except Exception as exc:  # noqa: BLE001  (a hostile item must not stop the batch, nor pass a check)
                log.warning("event=guard_failed rule=%s item=%s error=%r", guard.rule, item.id, exc)
                verdict = Verdict("reject", guard.rule, guard.clause, f"the {guard.rule} check could not decide this item "
                                  f"({type(exc).__name__}: {exc}): rejected, fail closed")
            verdicts.append(verdict)
            if verdict.outcome == "reject":
                break
            if verdict.item is not None:
                item = verdict.item
        return verdicts, item

    def apply(self, item: CollectedItem, context: GuardContext) -> tuple[GuardDecision, CollectedItem]:
        """The decision and the item to store (masked and labelled by the transforming stages)."""
        verdicts, stored = self.run(item, context)
        holds = [v for v in verdicts if v.outcome == "quarantine"]
        base = {"item_id": item.id, "tasking_id": item.tasking_id, "content_sha256": item.content_sha256, "decided_at": context.now}
        if verdicts[-1].outcome == "reject":  # the run stops at the first rejection
            return GuardDecision(decision="rejected", reasons=[v.as_reason() for v in (verdicts[-1], *holds)], **base), item
        tasking = context.tasking_for(item)
        if tasking is None:  # not an assert: `python -O` drops those, and this one keeps unpurposed items out
            raise RuntimeError("a chain without lawful_purpose must not store anything")
        labels, predicate = cached(context, ("labelled", tasking.id, item.fetched_at.date()),
                                   lambda: (labels_for(tasking, item.fetched_at, context.settings), recorded_predicate(tasking)))
        return GuardDecision(decision="quarantined" if holds else "indexed", reasons=[v.as_reason() for v in (holds or verdicts)],
                             labels=labels, predicate=predicate, **merged_annotations(verdicts), **base), stored

    def decide(self, item: CollectedItem, context: GuardContext) -> GuardDecision:
        return self.apply(item, context)[0]


def merged_annotations(verdicts: list[Verdict]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for verdict in verdicts:
        if not verdict.annotations:
            continue
        for key, value in verdict.annotations.items():
            if isinstance(value, dict):
                bucket = merged.setdefault(key, {})
                for k, n in value.items():
                    bucket[k] = bucket.get(k, 0) + n
            elif isinstance(value, list):
                merged.setdefault(key, []).extend(v for v in value if v not in merged.get(key, []))
            else:
                merged[key] = value
    return merged


def rejected_for_schema(raw: str | bytes, error: str, now: datetime, read_id: bool = True) -> GuardDecision:
    """The decision for input that is not a valid CollectedItem: rejected, with the schema error as the reason, keyed
    by the item's own id (and tasking) when the input is a JSON object that states one, so that an operator can
    match the decision to the input; `invalid-<hash>` only when no id can be read."""
    own = readable_fields(raw) if read_id else {}
    return GuardDecision(item_id=own.get("id") or f"invalid-{sha256_hex(raw)[:24]}", tasking_id=own.get("tasking_id"),
                         decision="rejected", decided_at=now, content_sha256=sha256_hex(raw),
                         reasons=[Reason(rule="schema", clause="28CFR23.20(d)", message=error)])


READABLE_MAX = 200  # an id or tasking id longer than this, or not printable, is not taken from a broken item


def readable_fields(raw: str | bytes) -> dict[str, str]:
    """`id` and `tasking_id` of a JSON object, where they are short printable strings; {} when there is none."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v.strip() for k in ("id", "tasking_id") if isinstance(v := data.get(k), str) and v.strip()
            and len(v) <= READABLE_MAX and v.isprintable()}
