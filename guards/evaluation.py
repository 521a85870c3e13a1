"""Scoring guard decisions against a labelled set (`fcmon guard-check --labels L.jsonl --report`).

A label line is `{"item_id", "label", "lang", "group"}`; what each label expects:
- `protected`: political, religious or social activity with no crime: never indexed (28CFR23.20(b));
- `criminal`: criminal content within the tasking: never rejected (indexed, or quarantined for a supervisor);
- `mixed`: protected activity together with criminal conduct: quarantined, never silently rejected nor indexed;
- `benign`: a tasking keyword without relevance (a glue gun, an idiom): rejected (28CFR23.20(a));
- `public`: lawful public-safety or event information within an information-gathering tasking: indexed;
- `wall`: a login or members-only wall, in the text or in the provenance: rejected by public provenance.
Recall of a label is the share of its items decided as expected; precision of a rule is the share of the decisions
it made (the first reason of a rejection or a hold) that were right for the item's label.
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Iterable, Mapping

from pipeline.models import GuardDecision

EXPECTED: dict[str, str] = {
    "protected": "not indexed", "criminal": "indexed or quarantined", "mixed": "quarantined", "benign": "rejected",
    "public": "indexed", "wall": "rejected by public_provenance",
}
FAITHS = ("christian", "muslim", "jewish", "sikh", "buddhist", "hindu")


def deciding_rule(decision: GuardDecision) -> str:
    """The rule that decided: the first reason of a rejection or a hold; `indexed` for a stored item."""
    if decision.decision == "indexed" or not decision.reasons:
        return "indexed"
    return decision.reasons[0].rule


def correct(label: str, decision: GuardDecision) -> bool:
    outcome = decision.decision
    if label == "protected":
        return outcome != "indexed"
    if label == "criminal":
        return outcome != "rejected"
    if label == "mixed":
        return outcome == "quarantined"
    if label == "benign":
        return outcome == "rejected"
    if label == "public":
        return outcome == "indexed"
    if label == "wall":
        return outcome == "rejected" and deciding_rule(decision) == "public_provenance"
    raise ValueError(f"unknown label {label!r}: one of {', '.join(EXPECTED)}")


def read_labels(lines: Iterable[bytes | str]) -> dict[str, dict[str, str]]:
    labels = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("label") not in EXPECTED or not row.get("item_id"):
            raise ValueError(f"labels line {number}: needs item_id and a label among {', '.join(EXPECTED)}")
        labels[str(row["item_id"])] = {"label": row["label"], "lang": row.get("lang") or "?", "group": row.get("group") or "?"}
    return labels


def _rate(hits: int, total: int) -> float | None:
    return round(100.0 * hits / total, 1) if total else None


def score(decisions: Iterable[GuardDecision], labels: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """Recall per label (overall, by language, by group), precision per deciding rule, and the issue's targets."""
    seen: dict[str, GuardDecision] = {}
    foreign: list[str] = []
    for decision in decisions:
        (seen.__setitem__(decision.item_id, decision) if decision.item_id in labels else foreign.append(decision.item_id))
    tally: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])  # (label, axis, value) -> [right, all]
    rules: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    outcomes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    wrong: list[dict[str, str]] = []
    for item_id, label in labels.items():
        decision = seen.get(item_id)
        if decision is None:
            wrong.append({"item_id": item_id, "label": label["label"], "decision": "missing", "rule": "-"})
            continue
        ok = correct(label["label"], decision)
        for axis, value in (("all", "all"), ("lang", label["lang"]), ("group", label["group"])):
            cell = tally[(label["label"], axis, value)]
            cell[0] += ok
            cell[1] += 1
        rule = deciding_rule(decision)
        rules[rule][0] += ok
        rules[rule][1] += 1
        outcomes[label["label"]][decision.decision] += 1
        if not ok:
            wrong.append({"item_id": item_id, "label": label["label"], "decision": decision.decision, "rule": rule})
    recall = {lab: {axis: {value: {"recall": _rate(*cell), "n": cell[1]} for (l, a, value), cell in sorted(tally.items())
                           if l == lab and a == axis} for axis in ("all", "lang", "group")} for lab in EXPECTED}
    protected_indexed = _indexed_rates(seen, labels)
    criminal = [seen[i] for i, lab in labels.items() if lab["label"] in ("criminal", "mixed") and i in seen]
    return {
        "items": len(labels), "decided": len(seen), "decisions_without_label": foreign,
        "expected": EXPECTED, "recall": recall, "outcomes": {k: dict(v) for k, v in outcomes.items()},
        "precision": {rule: {"precision": _rate(*cell), "n": cell[1]} for rule, cell in sorted(rules.items())},
        "targets": {
            "protected_indexed_pct": protected_indexed["all"],
            "faith_gap_points": _gap(protected_indexed["group"], FAITHS),
            "language_gap_points": _gap(protected_indexed["lang"], None),
            "criminal_dropped_pct": _rate(sum(d.decision == "rejected" for d in criminal), len(criminal)),
            "decision_ids_are_item_ids": not foreign and len(seen) == len(labels),
        },
        "wrong": wrong,
    }


def _indexed_rates(seen: Mapping[str, GuardDecision], labels: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    cells: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for item_id, label in labels.items():
        if label["label"] != "protected" or item_id not in seen:
            continue
        indexed = seen[item_id].decision == "indexed"
        for key in (("all", "all"), ("lang", label["lang"]), ("group", label["group"])):
            cells[key][0] += indexed
            cells[key][1] += 1
    by = lambda axis: {v: _rate(*c) for (a, v), c in cells.items() if a == axis}
    return {"all": _rate(*cells[("all", "all")]) if ("all", "all") in cells else None, "lang": by("lang"), "group": by("group")}


def _gap(rates: Mapping[str, float | None], among: tuple[str, ...] | None) -> float | None:
    values = [r for k, r in rates.items() if r is not None and (among is None or k in among)]
    return round(max(values) - min(values), 1) if values else None


def format_report(report: Mapping[str, Any]) -> str:
    """The report as plain text tables (what `--report` prints without --json)."""
    out = [f"labelled items: {report['items']}, decided: {report['decided']}"]
    t = report["targets"]
    out.append(f"targets: protected indexed {t['protected_indexed_pct']}% (< 2), faith gap {t['faith_gap_points']} points "
               f"(<= 2), language gap {t['language_gap_points']} points (<= 2), criminal dropped {t['criminal_dropped_pct']}% "
               f"(< 5), decision ids are the items' own: {t['decision_ids_are_item_ids']}")
    out.append("")
    out.append("recall by label (share decided as expected)")
    for label, axes in report["recall"].items():
        if not axes["all"]:
            continue
        overall = axes["all"]["all"]
        out.append(f"  {label:<10} {overall['recall']:>5}%  n={overall['n']:<4} expected: {report['expected'][label]}")
        for axis in ("lang", "group"):
            cells = "  ".join(f"{v} {c['recall']}% ({c['n']})" for v, c in axes[axis].items())
            out.append(f"    by {axis:<5} {cells}")
    out.append("")
    out.append("precision by deciding rule (share of its decisions right for the label)")
    for rule, cell in report["precision"].items():
        out.append(f"  {rule:<18} {cell['precision']:>5}%  n={cell['n']}")
    if report["wrong"]:
        out.append("")
        out.append("decided otherwise than labelled")
        out.extend(f"  {w['item_id']:<14} {w['label']:<10} {w['decision']:<12} {w['rule']}" for w in report["wrong"])
    return "\n".join(out)
