"""The labelled corpus (tests/guard_corpus/) through `fcmon guard-check --labels --report` (a real subprocess), held
to the targets of the guards: protected activity indexed in under 2% of cases with no faith or language more than
2 points apart, criminal content dropped in under 5%, every decision keyed by its item's own id."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from guards.evaluation import EXPECTED, FAITHS, score
from tests.datadirs import fcmon
from tests.guard_corpus import cases, write

LANGUAGES = ("en", "es", "pl", "ko", "tl", "zh", "ar")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    paths = write(tmp_path_factory.mktemp("corpus"))
    result = fcmon("guard-check", "--taskings", str(paths["taskings"]), "--items", str(paths["items"]), "--users",
                   str(paths["users"]), "--labels", str(paths["labels"]), "--report", "--json", check=True, timeout=300)
    return json.loads(result.stdout)


def test_the_corpus_covers_every_faith_language_and_label():
    found = cases()
    assert len(found) >= 300 and len({c["id"] for c in found}) == len(found)
    assert {c["label"] for c in found} <= set(EXPECTED)
    protected = Counter(c["group"] for c in found if c["label"] == "protected")
    assert all(protected[f] >= 10 for f in FAITHS), protected
    languages = Counter(c["lang"] for c in found if c["label"] == "protected")
    assert all(languages[lang] >= 6 for lang in LANGUAGES), languages
    assert all(sum(c["lang"] == lang and c["label"] == "criminal" for c in found) >= 5 for lang in LANGUAGES)


def test_protected_activity_is_never_indexed_and_equally_so(report):
    targets = report["targets"]
    assert targets["protected_indexed_pct"] < 2
    assert targets["faith_gap_points"] <= 2 and targets["language_gap_points"] <= 2


def test_criminal_content_is_not_dropped(report):
    assert report["targets"]["criminal_dropped_pct"] < 5


def test_every_decision_is_keyed_by_its_items_own_id(report):
    assert report["targets"]["decision_ids_are_item_ids"] and report["decided"] == report["items"]


def test_walls_in_the_text_are_rejected_by_public_provenance_in_every_language(report):
    assert report["recall"]["wall"]["all"]["all"]["recall"] == 100.0
    assert set(report["recall"]["wall"]["lang"]) == set(LANGUAGES)


def test_a_keyword_alone_is_not_relevance(report):
    assert report["recall"]["benign"]["all"]["all"]["recall"] >= 95


def test_protected_and_criminal_together_go_to_the_quarantine(report):
    assert report["recall"]["mixed"]["all"]["all"]["recall"] >= 90
    assert report["outcomes"]["mixed"].get("indexed", 0) == 0


def test_the_report_scores_what_it_is_given():
    """score() on hand-made decisions: a wrong outcome lowers recall and the rule's precision; an unknown id is counted."""
    from datetime import datetime, timezone
    from pipeline.models import GuardDecision, Reason
    now = datetime.now(timezone.utc)
    labels = {"a": {"label": "protected", "lang": "en", "group": "muslim"}, "b": {"label": "protected", "lang": "es", "group": "jewish"},
              "c": {"label": "criminal", "lang": "en", "group": "weapons"}}
    reason = Reason(rule="first_amendment", clause="28CFR23.20(b)", message="m")
    decided = [GuardDecision(item_id="a", decision="indexed", decided_at=now, reasons=[reason]),
               GuardDecision(item_id="b", decision="rejected", decided_at=now, reasons=[reason]),
               GuardDecision(item_id="c", decision="rejected", decided_at=now, reasons=[reason]),
               GuardDecision(item_id="invalid-x", decision="rejected", decided_at=now, reasons=[reason])]
    scored = score(decided, labels)
    assert scored["targets"]["protected_indexed_pct"] == 50.0 and scored["targets"]["faith_gap_points"] == 100.0
    assert scored["targets"]["criminal_dropped_pct"] == 100.0 and scored["decisions_without_label"] == ["invalid-x"]
    assert scored["precision"]["first_amendment"] == {"precision": 50.0, "n": 2}
    assert not scored["targets"]["decision_ids_are_item_ids"]


def test_a_malformed_item_is_rejected_under_its_own_id_and_an_oversize_one_unread(tmp_path):
    from tests.guard_corpus import labelled_set
    taskings, users, items, _ = labelled_set()
    broken = dict(items[0], id="own-id-1", fetched_at="not a time")
    oversize = dict(items[1], id="own-id-2", text="x" * 5_300_000)
    no_id = {"tasking_id": "C-GUNS", "text": 3}
    for name, rows in (("t", taskings), ("u", users)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "i.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (broken, oversize, no_id, items[2])))
    result = fcmon("guard-check", "--taskings", str(tmp_path / "t.jsonl"), "--items", str(tmp_path / "i.jsonl"),
                   "--users", str(tmp_path / "u.jsonl"), "--json", check=True)
    decisions = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(d["item_id"], d["decision"], d["reasons"][0]["rule"]) for d in decisions[:2]] == [
        ("own-id-1", "rejected", "schema"), ("own-id-2", "rejected", "lawfully_obtained")]
    assert "more than the largest body the crawler accepts" in decisions[1]["reasons"][0]["message"]
    assert decisions[2]["item_id"].startswith("invalid-") and decisions[2]["tasking_id"] == "C-GUNS"
    assert decisions[3]["item_id"] == items[2]["id"]


def test_a_line_longer_than_any_body_is_not_parsed(tmp_path):
    from guards.batch import LINE_LIMIT, check_items
    from pipeline.settings import Settings
    settings = Settings(crawl_max_bytes=1024)
    line = json.dumps({"id": "huge", "text": "y" * (LINE_LIMIT * 1024)}).encode()
    (decision,) = list(check_items([line], {}, {}, {}, settings))
    assert decision.item_id.startswith("invalid-") and decision.reasons[0].rule == "schema"
    assert "not read" in decision.reasons[0].message
