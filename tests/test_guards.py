"""Pure rule tests: the guard chain on hand-made items, no I/O."""
from __future__ import annotations

from datetime import timedelta

import pytest

from guards.chain import GuardChain
from pipeline.errors import FcmonError
from pipeline.models import RequestRecord, ResponseRecord
from pipeline.settings import DEFAULT_GUARDS, Settings
from tests.factories_pipeline import NOW, make_context, make_item, make_tasking

CHAIN = GuardChain.from_settings(Settings())


def decide(item, *taskings, **context):
    return CHAIN.decide(item, make_context(*(taskings or (make_tasking(),)), **context))


CASES = [
    # (name, item overrides, tasking overrides, expected decision, expected rule of the first reason)
    ("public in-scope post", {}, {}, "indexed", None),
    ("no such tasking", {"tasking_id": "T-404"}, {}, "rejected", "lawful_purpose"),
    ("unapproved tasking", {}, {"approved_by": None, "approved_at": None}, "rejected", "lawful_purpose"),
    ("self-approved tasking", {}, {"approved_by": "alice"}, "rejected", "lawful_purpose"),
    ("approved by a non-supervisor", {}, {"approved_by": "dana"}, "rejected", "lawful_purpose"),
    ("expired tasking", {}, {"expires_at": NOW - timedelta(seconds=1)}, "rejected", "lawful_purpose"),
    ("revoked tasking", {}, {"revoked": True}, "rejected", "lawful_purpose"),
    ("host outside the scope", {"url": "https://other.example/p/1"}, {}, "rejected", "lawful_purpose"),
    ("subdomain inside the scope", {"url": "https://www.forum.example/p/1"}, {}, "indexed", None),
    ("in-domain but no keyword", {"title": "Garden day", "text": "Volunteers wanted for the garden."}, {}, "rejected", "lawful_purpose"),
    ("keyword inside another word does not count", {"title": "x", "text": "reconverters anonymous"}, {}, "rejected", "lawful_purpose"),
    ("POST", {"request": RequestRecord(method="POST", headers={})}, {}, "rejected", "public_provenance"),
    ("HEAD is fine", {"request": RequestRecord(method="HEAD", headers={})}, {}, "indexed", None),
    ("cookie sent", {"request": RequestRecord(method="GET", headers={"Cookie": "s=1"})}, {}, "rejected", "public_provenance"),
    ("authorization sent", {"request": RequestRecord(method="GET", headers={"authorization": "Bearer x"})}, {}, "rejected", "public_provenance"),
    ("session token sent", {"request": RequestRecord(method="GET", headers={"X-Auth-Token": "x"})}, {}, "rejected", "public_provenance"),
    ("robots disallowed", {"robots_allowed": False}, {}, "rejected", "public_provenance"),
    ("login wall", {"login_wall_detected": True, "login_wall_reason": "password form"}, {}, "rejected", "public_provenance"),
    ("401", {"response": ResponseRecord(status=401)}, {}, "rejected", "public_provenance"),
    ("redirected to a login page", {"final_url": "https://forum.example/login?next=/p/1"}, {}, "rejected", "public_provenance"),
    ("unknown source kind", {"source_kind": "private_message"}, {}, "rejected", "public_provenance"),
    ("fetched in the future", {"fetched_at": NOW + timedelta(hours=1)}, {}, "rejected", "lawfully_obtained"),
    ("hash does not match", {"content_sha256": "0" * 64}, {}, "rejected", "lawfully_obtained"),
    ("protest about crime, no conduct", {"title": "March on City Hall", "text": "Peaceful march demanding action on catalytic converter thefts."},
     {}, "rejected", "first_amendment"),
    ("vigil mentioning converters", {"title": "Vigil", "text": "A vigil for the mechanic; bring candles, no converters talk."}, {}, "rejected", "first_amendment"),
    ("rally plus threat", {"title": "Rally at the scrapyard", "text": "After the rally we cut the converters off their trucks and torch the place."},
     {}, "quarantined", "first_amendment"),
]


@pytest.mark.parametrize("name,item,tasking,expected,rule", CASES, ids=[c[0] for c in CASES])
def test_guard_table(name, item, tasking, expected, rule):
    decision = decide(make_item(**item), make_tasking(**tasking))
    assert decision.decision == expected, decision.reasons
    if rule:
        assert decision.reasons[0].rule == rule
        assert decision.reasons[0].clause and decision.reasons[0].message


def test_indexed_decision_carries_labels_and_the_recorded_predicate():
    decision = decide(make_item())
    assert decision.labels and decision.predicate
    assert decision.labels.criminal_intelligence is False and decision.labels.review_status == "unreviewed"
    assert decision.labels.purge_by <= (NOW + timedelta(days=5 * 365)).date()
    assert decision.predicate.case_number == "2026-CR-1" and decision.predicate.approved_by == "sam"


def test_noncriminal_taskings_get_the_shorter_retention():
    tasking = make_tasking(kind="information_gathering", case_number=None, predicate=None, criminal_activity=None)
    decision = decide(make_item(), tasking)
    assert decision.labels.purge_by == (make_item().fetched_at + timedelta(days=365)).date()


def test_unknown_roles_fail_closed():
    assert decide(make_item(), make_tasking(), roles=None).decision == "rejected"


def test_first_amendment_verdict_names_what_fired():
    decision = decide(make_item(title="Rally", text="Rally then we torch the converters lot"))
    assert "protest:rally" in decision.reasons[0].signals and "violence:torch" in decision.reasons[0].signals


def test_chain_refuses_to_run_without_required_rules():
    guards = {k: v for k, v in DEFAULT_GUARDS.items() if "LawfulPurpose" not in k}
    with pytest.raises(FcmonError, match="lawful_purpose"):
        GuardChain.from_settings(Settings(guards=guards))


def test_chain_refuses_a_misspelled_guard():
    with pytest.raises(FcmonError, match="cannot be loaded"):
        GuardChain.from_settings(Settings(guards={**DEFAULT_GUARDS, "guards.purpose.LawfullPurpose": 50}))


def test_chain_order_comes_from_settings():
    reordered = {**DEFAULT_GUARDS, "guards.purpose.LawfulPurpose": 1}
    chain = GuardChain.from_settings(Settings(guards=reordered))
    assert chain.guards[0].rule == "lawful_purpose"


class RefusesOddItems:
    """A third-party stage, loaded from settings like any other: it raises on items whose title says so."""
    rule, clause = "odd_items", "local policy"

    def check(self, item, context):
        from guards.base import Verdict
        if item.title == "odd":
            raise RuntimeError("cannot read this item")
        return Verdict("pass", self.rule, self.clause, "not odd")


def test_a_stage_that_raises_rejects_the_item_and_the_chain_goes_on():
    chain = GuardChain.from_settings(Settings(guards={**DEFAULT_GUARDS, "tests.test_guards.RefusesOddItems": 5}))
    context = make_context(make_tasking())
    odd, plain = chain.decide(make_item(title="odd"), context), chain.decide(make_item(url="https://forum.example/post/2"), context)
    assert odd.decision == "rejected" and odd.reasons[0].rule == "odd_items"
    assert "could not decide this item (RuntimeError: cannot read this item): rejected, fail closed" in odd.reasons[0].message
    assert plain.decision == "indexed"


@pytest.mark.timeout(60)  # a liveness bound, far above what it takes: the quadratic email scan took minutes here
def test_a_long_run_of_dotted_labels_is_scanned_in_linear_time():
    text = "converters, mail a@" + "b." * 1_000_000  # 2 MB that backtracked in quadratic time in the email pattern
    decision = GuardChain.from_settings(Settings()).decide(make_item(text=text), make_context(make_tasking()))
    assert decision.decision == "indexed" and decision.pii_masked == {}
