"""The guard case table: every rule, hand-written cases, run through `fcmon guard-check` (JSONL files,
a real subprocess) and through the worker (a real data directory: bus, index, state)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from guards.chain import GuardChain
from pipeline.bus import COLLECTED
from pipeline.models import utcnow
from pipeline.worker import Worker
from tests.datadirs import fcmon, make_app
from tests.factories_guards import PREDICATE, build, item_fields, tasking_fields
from tests.factories_pipeline import ROLES

NOW = utcnow()
GET = {"method": "GET", "headers": {"User-Agent": "fcmon/0.1"}}
NO_TASKING = {"__none__": True}


@dataclass
class Case:
    name: str
    expect: str
    rule: str | None = None
    item: dict[str, Any] = field(default_factory=dict)
    tasking: dict[str, Any] = field(default_factory=dict)
    clause: str | None = None           # a fragment of the first reason's clause
    fields: dict[str, Any] = field(default_factory=dict)   # on the decision and the stored record
    stored_has: tuple[str, ...] = ()    # in the stored text (worker path)
    stored_lacks: tuple[str, ...] = ()


def headers(**sent: str) -> dict[str, Any]:
    return {"method": "GET", "headers": {"User-Agent": "fcmon/0.1", **sent}}


IGA = {"kind": "information_gathering", "case_number": None, "predicate": None, "criminal_activity": None,
       "scope": {"domains": ["forum.example"], "keywords": ["fireworks"]}}
DOMAIN_ONLY = {"scope": {"domains": ["forum.example"]}}

CASES = [
    # rule 1: lawful purpose
    Case("in-scope-post", "indexed"),
    Case("no-tasking", "rejected", "lawful_purpose", tasking=NO_TASKING),
    Case("unapproved", "rejected", "lawful_purpose", tasking={"approved_by": None, "approved_at": None}),
    Case("self-approved", "rejected", "lawful_purpose", tasking={"requested_by": "sam"}),
    Case("approved-by-detective", "rejected", "lawful_purpose", tasking={"approved_by": "dana"}),
    Case("approved-by-admin", "rejected", "lawful_purpose", tasking={"approved_by": "ada"}),
    Case("approver-unknown", "rejected", "lawful_purpose", tasking={"approved_by": "ghost"}),
    Case("expired", "rejected", "lawful_purpose", tasking={"expires_at": NOW - timedelta(minutes=1)}),
    Case("revoked", "rejected", "lawful_purpose", tasking={"revoked": True, "revoked_by": "sam"}),
    Case("host-outside-scope", "rejected", "lawful_purpose", item={"url": "https://other.example/p/1"}),
    Case("lookalike-host", "rejected", "lawful_purpose", item={"url": "https://evilforum.example/p/1"}),
    Case("subdomain-in-scope", "indexed", item={"url": "https://www.forum.example/p/1"}),
    Case("in-domain-off-topic", "rejected", "lawful_purpose", item={"title": "Garden day", "text": "Volunteers wanted for the garden."}),
    Case("keyword-inside-a-word", "rejected", "lawful_purpose", item={"title": "x", "text": "reconverters anonymous"}),
    Case("decomposed-keyword", "indexed", tasking={"scope": {"domains": ["forum.example"], "keywords": ["Jose\u0301"]}},
         item={"text": "Jos\u00e9 sells the parts, cash."}),
    Case("hashtag-keyword", "indexed", tasking={"scope": {"domains": ["forum.example"], "keywords": ["#catcon"]}},
         item={"text": "got a #catcon for you, cash"}),
    Case("account-scope-author", "indexed", tasking={"scope": {"accounts": ["wrenchman"]}}, item={"text": "Parts for sale."}),
    Case("account-mentioned-not-author", "rejected", "lawful_purpose", tasking={"scope": {"accounts": ["wrenchman"]}},
         item={"author": "neighbor", "text": "I think @wrenchman is selling parts."}),
    # rule 7: taskings
    Case("denied-keyword-protest", "rejected", "lawful_purpose", clause="28CFR23.20(b)",
         tasking={"scope": {"domains": ["forum.example"], "keywords": ["converters", "protest"]}}),
    Case("denied-keyword-inflected", "rejected", "lawful_purpose", clause="28CFR23.20(b)",
         tasking={"scope": {"domains": ["forum.example"], "keywords": ["converters", "protestors"]}}),
    Case("fetched-before-approval", "rejected", "lawful_purpose", item={"fetched_at": NOW - timedelta(days=3)}),
    Case("fetched-in-year-1", "rejected", "lawful_purpose", item={"fetched_at": "0001-01-01T00:00:00Z"}),
    Case("unparseable-final-url", "rejected", "lawful_purpose", item={"id": "f" * 32, "final_url": "https://[forum.example/p"}),
    Case("denied-hashtag", "rejected", "lawful_purpose", clause="28CFR23.20(b)",
         tasking={"scope": {"domains": ["forum.example"], "keywords": ["converters", "#BlackLivesMatter"]}}),
    Case("iga-names-account", "rejected", "lawful_purpose", clause="D3.III",
         tasking=IGA | {"scope": {"domains": ["forum.example"], "keywords": ["fireworks"], "accounts": ["wrenchman"]}}),
    Case("iga-keyword-handle", "rejected", "lawful_purpose", clause="D3.III",
         tasking=IGA | {"scope": {"domains": ["forum.example"], "keywords": ["@wrenchman"]}}),
    Case("iga-topic-no-profile", "indexed", tasking=IGA, item={"text": "Illegal fireworks sold from a van, ask @sparky"},
         fields={"pii_masked": {"author": 1, "account": 1}}, stored_lacks=("@sparky", "wrenchman")),
    Case("public-safety-person-profile", "indexed", tasking={"kind": "public_safety", "case_number": None},
         item={"text": "Converters sold by Marcus Hill, 34, who lives at 1422 W Walton, $150 each."},
         fields={"pii_masked": {"person": 1, "address": 1}}, stored_lacks=("Marcus Hill", "1422 W Walton")),
    Case("iga-feed-byline", "indexed", tasking=IGA, item={"author": None, "text": "Illegal fireworks sold from a van. submitted by /u/fireguy22"},
         fields={"pii_masked": {"account": 1}}, stored_lacks=("fireguy22",)),
    Case("iga-profile-link", "indexed", tasking=IGA, item={"author": None, "text": "Fireworks sale, see https://mastodon.social/@sparky"},
         fields={"pii_masked": {"account": 1}}, stored_lacks=("mastodon.social", "sparky")),
    Case("iga-person-with-age", "indexed", tasking=IGA, item={"author": None, "text": "Fireworks: a 19-year-old Jose Ramirez of 5530 S Kedzie sells them."},
         fields={"pii_masked": {"person": 1, "address": 1}}, stored_lacks=("Jose Ramirez", "5530 S Kedzie")),
    Case("vague-criminal-activity", "rejected", "lawful_purpose", clause="28CFR23.20(c)", tasking={"criminal_activity": "criminal activity"}),
    Case("predicate-without-facts", "rejected", "lawful_purpose", clause="28CFR23.20(c)", tasking={"predicate": "suspicious people"}),
    Case("public-safety-tasking", "indexed", tasking={"kind": "public_safety", "case_number": None}),
    # rule 2: public provenance
    Case("post-method", "rejected", "public_provenance", item={"request": {"method": "POST", "headers": {}}}),
    Case("put-method", "rejected", "public_provenance", item={"request": {"method": "PUT", "headers": {}}}),
    Case("options-method", "rejected", "public_provenance", item={"request": {"method": "OPTIONS", "headers": {}}}),
    Case("head-method", "indexed", item={"request": {"method": "HEAD", "headers": {}}}),
    Case("lowercase-get", "indexed", item={"request": {"method": "get", "headers": {}}}),
    Case("cookie-sent", "rejected", "public_provenance", item={"request": headers(Cookie="s=1")}),
    Case("lowercase-cookie-sent", "rejected", "public_provenance", item={"request": headers(cookie="consent=yes")}),
    Case("authorization-sent", "rejected", "public_provenance", item={"request": headers(Authorization="Bearer x")}),
    Case("proxy-authorization-sent", "rejected", "public_provenance", item={"request": headers(**{"Proxy-Authorization": "Basic x"})}),
    Case("auth-token-sent", "rejected", "public_provenance", item={"request": headers(**{"X-Auth-Token": "x"})}),
    Case("csrf-token-sent", "rejected", "public_provenance", item={"request": headers(**{"X-CSRF-Token": "x"})}),
    Case("session-id-sent", "rejected", "public_provenance", item={"request": headers(**{"X-Session-Id": "x"})}),
    Case("api-key-sent", "rejected", "public_provenance", item={"request": headers(**{"X-Goog-Api-Key": "k"})}),
    Case("cookie2-sent", "rejected", "public_provenance", item={"request": headers(Cookie2="$Version=1")}),
    Case("credentials-in-url", "rejected", "public_provenance", item={"url": "https://user:pw@forum.example/post/1"}),
    Case("token-in-url", "rejected", "public_provenance", item={"url": "https://forum.example/post/1?access_token=x"}),
    Case("session-in-path", "rejected", "public_provenance", item={"url": "https://forum.example/post/1;jsessionid=A1"}),
    Case("session-after-semicolon", "rejected", "public_provenance", item={"url": "https://forum.example/post/1?a=1;jsessionid=x"}),
    Case("token-in-fragment", "rejected", "public_provenance", item={"url": "https://forum.example/post/1#access_token=x"}),
    Case("presigned-url", "rejected", "public_provenance", item={"url": "https://forum.example/p/1?X-Amz-Security-Token=x"}),
    Case("bearer-in-any-header", "rejected", "public_provenance", item={"request": headers(**{"X-Custom": "Bearer abc"})}),
    Case("unparseable-request-url", "rejected", "public_provenance",
         item={"request": {"method": "GET", "headers": {}, "url": "https://u:pw@[forum.example/post/1?access_token=x"}}),
    Case("login-page-requested", "rejected", "public_provenance",
         item={"url": "https://forum.example/login", "final_url": "https://forum.example/post/1"}),
    Case("robots-disallowed", "rejected", "public_provenance", clause="D3.IV.B.2.e", item={"robots_allowed": False}),
    Case("login-wall", "rejected", "public_provenance", item={"login_wall_detected": True, "login_wall_reason": "password form"}),
    Case("status-401", "rejected", "public_provenance", item={"response": {"status": 401}}),
    Case("status-403", "rejected", "public_provenance", item={"response": {"status": 403}}),
    Case("status-500", "rejected", "public_provenance", item={"response": {"status": 500}}),
    Case("status-302-not-followed", "rejected", "public_provenance", item={"response": {"status": 302}}),
    Case("redirect-to-login", "rejected", "public_provenance", item={"final_url": "https://forum.example/login?next=/p/1"}),
    Case("redirect-to-signup", "rejected", "public_provenance", item={"final_url": "https://forum.example/sign-up"}),
    Case("redirect-to-devise-sign-in", "rejected", "public_provenance", item={"final_url": "https://forum.example/users/sign_in"}),
    Case("redirect-to-encoded-login", "rejected", "public_provenance", item={"final_url": "https://forum.example/%6Cogin"}),
    Case("redirect-to-wp-login", "rejected", "public_provenance", item={"final_url": "https://forum.example/wp-login.php"}),
    Case("api-answered-by-login-page", "rejected", "public_provenance",
         item={"response": {"status": 200, "url": "https://forum.example/login?next=/api/posts"}}),
    Case("private-message-kind", "rejected", "public_provenance", item={"source_kind": "private_message"}),
    # rule 5: lawfully obtained
    Case("fetched-in-future", "rejected", "lawfully_obtained", item={"fetched_at": NOW + timedelta(hours=1)}),
    Case("hash-mismatch", "rejected", "lawfully_obtained", item={"content_sha256": "0" * 64}),
    Case("not-http-url", "rejected", "lawfully_obtained", item={"url": "ftp://forum.example/p/1"}),
    # rule 3: First Amendment
    Case("protest-no-conduct", "rejected", "first_amendment",
         item={"title": "March on City Hall", "text": "Peaceful march demanding action on catalytic converter thefts."}),
    Case("vigil", "rejected", "first_amendment", item={"title": "Vigil", "text": "A vigil for the mechanic; bring candles, no converters talk."}),
    Case("rally-plus-threat", "quarantined", "first_amendment",
         item={"title": "Rally at the scrapyard", "text": "After the rally we cut the converters off their trucks and torch the place."}),
    Case("worship-no-conduct", "rejected", "first_amendment",
         item={"title": "Sunday", "text": "Prayer for the families whose converters were stolen, after worship."}),
    Case("crime-at-church-lot", "quarantined", "first_amendment",
         item={"title": "Church lot", "text": "Tonight we break into the vans in the church lot and cut the converters."}),
    Case("union-organizing", "rejected", "first_amendment",
         item={"title": "Plant", "text": "Union organizing meeting for the converter plant workers on Friday."}),
    Case("strike-with-threat", "quarantined", "first_amendment",
         item={"title": "Plant", "text": "Strikers say they will torch the converter warehouse tonight."}),
    Case("advocacy-petition", "rejected", "first_amendment",
         item={"title": "Petition", "text": "Sign the petition for converter theft laws in Springfield."}),
    Case("protestors-and-churches", "rejected", "first_amendment",
         item={"title": "Downtown", "text": "Protestors gathered outside the churches about converter thefts."}),
    Case("soft-hyphen-protest", "rejected", "first_amendment", item={"title": "Converters", "text": "Join the pro\u00adtest about converter thefts."}),
    Case("fullwidth-protest", "rejected", "first_amendment", item={"title": "Converters", "text": "Join the \uff50\uff52\uff4f\uff54\uff45\uff53\uff54 on converters."}),
    Case("long-s-protest", "rejected", "first_amendment", item={"title": "Converters", "text": "Join the prote\u017ft about converter thefts."}),
    Case("hidden-mark-protest", "rejected", "first_amendment", item={"title": "Converters", "text": "Join the pro\u034ft\u0336est about converter thefts."}),
    Case("hangul-filler-protest", "rejected", "first_amendment", item={"title": "Converters", "text": "Join the pro\u3164test about converter thefts."}),
    Case("slang-killing-me", "indexed", item={"text": "These converter prices are killing me lol, $150 each."}),
    Case("month-march-not-protest", "indexed", item={"text": "Sold six converters in March, more on March 3rd."}),
    Case("mass-air-flow-not-worship", "indexed", item={"text": "Converters and a mass air flow sensor, cash."}),
    Case("joke-bomb-deal", "indexed", item={"text": "This converter deal is the bomb, seriously."}),
    # rule 4: relevance
    Case("relevant-by-activity", "indexed", tasking=DOMAIN_ONLY, item={"title": "Parts", "text": "Stolen cats, no questions."}),
    Case("irrelevant-in-domain", "rejected", "relevance", tasking=DOMAIN_ONLY, item={"title": "Garden day", "text": "Volunteers wanted."}),
    Case("relevant-by-conduct", "indexed", tasking=DOMAIN_ONLY, item={"title": "Lot", "text": "We break into the lot on 5th tonight."}),
    Case("iga-needs-no-predicate-link", "indexed", tasking=IGA | {"scope": {"domains": ["forum.example"]}},
         item={"title": "Garden day", "text": "Volunteers wanted."}, fields={"pii_masked": {"author": 1}}),
    # rule 6: PII minimization
    Case("other-email-masked", "indexed", item={"text": "Converters: ask his buddy at joe.smith@mail.example"},
         fields={"pii_masked": {"email": 1}}, stored_has=("[email masked]",), stored_lacks=("joe.smith",)),
    Case("author-email-kept", "indexed", item={"text": "Converters, write wrenchman@mail.example"},
         fields={"pii_masked": {}}, stored_has=("wrenchman@mail.example",)),
    Case("other-phone-masked", "indexed", item={"text": "Converters; his number is 312-555-0142."},
         fields={"pii_masked": {"phone": 1}}, stored_lacks=("0142",)),
    Case("author-phone-kept", "indexed", item={"text": "Converters, call me at (312) 555-0199."},
         fields={"pii_masked": {}}, stored_has=("555-0199",)),
    Case("neighbors-phone-masked", "indexed", item={"text": "Converters; my neighbors number is 312-555-0142."},
         fields={"pii_masked": {"phone": 1}}, stored_lacks=("0142",)),
    Case("not-me-call-bob-masked", "indexed", item={"text": "Converters. Don't contact me, call Bob at 312-555-0142."},
         fields={"pii_masked": {"phone": 1}}, stored_lacks=("0142",)),
    Case("told-me-phone-masked", "indexed", item={"text": "Converters; Bob told me 312-555-0142."},
         fields={"pii_masked": {"phone": 1}}, stored_lacks=("0142",)),
    Case("my-phone-number-kept", "indexed", item={"text": "Converters, my phone number is 312-555-0199."},
         fields={"pii_masked": {}}, stored_has=("312-555-0199",)),
    Case("order-number-not-a-phone", "indexed", item={"text": "Converters, order #2026112412, paid $2125550142."},
         fields={"pii_masked": {}}, stored_has=("2026112412", "2125550142")),
    Case("unseparated-phones-masked", "indexed", item={"text": "Converters, text 3125550142 or +13125550143."},
         fields={"pii_masked": {"phone": 2}}, stored_lacks=("5550142", "5550143")),
    Case("unix-time-not-a-phone", "indexed", item={"text": "Converters listed at 1732400000."},
         fields={"pii_masked": {}}, stored_has=("1732400000",)),
    Case("accented-street-masked", "indexed", item={"text": "Converters at 12 \u00c9clair Street tonight."},
         fields={"pii_masked": {"address": 1}}, stored_lacks=("12 \u00c9clair",)),
    Case("iga-author-details-masked", "indexed", tasking=IGA,
         item={"text": "Illegal fireworks: email me wrenchman@mail.example or call me at 312-555-0199, see https://forum.example/@wrenchman"},
         fields={"pii_masked": {"author": 1, "email": 1, "phone": 1, "account": 1}}, stored_lacks=("wrenchman", "555-0199")),
    Case("address-masked", "indexed", item={"text": "Converters from the van parked at 4200 W Grand Ave."},
         fields={"pii_masked": {"address": 1}}, stored_lacks=("4200 W Grand",)),
    Case("predicate-named-phone-kept", "indexed", item={"text": "Converters, text 312-555-0177"},
         tasking={"predicate": PREDICATE + " The seller's number is 312-555-0177."},
         fields={"pii_masked": {}}, stored_has=("312-555-0177",)),
    Case("predicate-named-email-kept", "indexed", item={"text": "Converters, mail cats@parts.example today, or joe@x.example"},
         tasking={"predicate": PREDICATE + " Orders go to cats@parts.example."},
         fields={"pii_masked": {"email": 1}}, stored_has=("cats@parts.example",), stored_lacks=("joe@x.example",)),
    # rule 8: people who are not the subject
    Case("bystander-labelled", "indexed", item={"text": "Converters; @bystander saw the sale."},
         fields={"non_subject_identifiers": ["@bystander"]}),
    Case("subject-mention-not-labelled", "indexed", item={"text": "Converters; ask @wrenchman."},
         fields={"non_subject_identifiers": []}),
]
IDS = [c.name for c in CASES]
assert len(set(IDS)) == len(IDS)


def case_data(n: int, case: Case) -> tuple[dict | None, dict]:
    tasking_id = f"C{n:03d}"
    tasking = None if case.tasking is NO_TASKING else tasking_fields(tasking_id, NOW, **case.tasking)
    item = item_fields(tasking_id, n, NOW, **case.item)
    return tasking, item


def built_cases() -> list[tuple[Case, Any, Any]]:
    return [(case, *build(*case_data(n, case))) for n, case in enumerate(CASES)]


MALFORMED = ["{not json", json.dumps({"tasking_id": "C000"}), "[]",
             json.dumps(item_fields("C000", 999, NOW) | {"schema_version": 99}, default=str)]


@pytest.fixture(scope="module")
def guard_check_output(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard-check")
    cases = built_cases()
    (root / "t.jsonl").write_text("".join(t.model_dump_json() + "\n" for _, t, _ in cases if t))
    items = [i.model_dump_json() for _, _, i in cases]
    (root / "i.jsonl").write_text("\n".join(items[:5] + MALFORMED + items[5:]) + "\n")
    (root / "u.jsonl").write_text("".join(json.dumps({"name": n, "role": r}) + "\n" for n, r in ROLES.items()))
    result = fcmon("guard-check", "--taskings", str(root / "t.jsonl"), "--items", str(root / "i.jsonl"),
                   "--users", str(root / "u.jsonl"), "--json", check=True)
    return [json.loads(line) for line in result.stdout.splitlines()], {i.id: c for c, _, i in cases}


@pytest.fixture(scope="module")
def worker_outcome(tmp_path_factory):
    cases = built_cases()
    app = make_app(tmp_path_factory.mktemp("worker-cases"), *[t for _, t, _ in cases if t])
    for _, _, item in cases:
        app.bus.produce(COLLECTED, item.source_id, item.model_dump_json().encode())
    app.bus.flush()
    Worker(app.settings, app.bus, app.index, app.state, GuardChain.from_settings(app.settings)).run(until_idle=True)
    yield app, {c.name: i for c, _, i in cases}
    app.close()


def test_the_table_is_big_enough():
    assert len(CASES) >= 60


def assert_case(case: Case, decision: dict) -> None:
    assert decision["decision"] == case.expect, decision["reasons"]
    if case.rule:
        first = decision["reasons"][0]
        assert first["rule"] == case.rule and first["message"], first
        assert case.clause is None or case.clause in first["clause"], first
    for name, value in case.fields.items():
        assert decision[name] == value, (name, decision[name])
    if case.expect == "indexed":
        labels = decision["labels"]
        assert labels["criminal_intelligence"] is False and labels["review_status"] == "unreviewed"
        assert decision["predicate"]["approved_by"] == "sam"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_guard_check(case, guard_check_output):
    decisions, by_id = guard_check_output
    matching = [d for d in decisions if by_id.get(d["item_id"]) is case]
    assert len(matching) == 1
    assert_case(case, matching[0])


def test_guard_check_rejects_malformed_lines_without_stopping(guard_check_output):
    decisions, by_id = guard_check_output
    schema = [d for d in decisions if d["item_id"] not in by_id]
    assert len(decisions) == len(CASES) + len(MALFORMED)
    assert len(schema) == len(MALFORMED)
    assert all(d["decision"] == "rejected" and d["reasons"][0]["rule"] == "schema" and d["reasons"][0]["message"] for d in schema)
    assert any("schema_version 99" in d["reasons"][0]["message"] for d in schema)


def test_guard_check_rejects_a_line_that_is_not_utf8_and_a_tasking_given_twice(tmp_path):
    tasking = tasking_fields("T1", NOW)
    (tmp_path / "t.jsonl").write_text(json.dumps(tasking, default=str) + "\n" +
                                      json.dumps(tasking | {"revoked": True, "extra": 1}, default=str) + "\n")
    good = [json.dumps(item_fields("T1", n, NOW), default=str).encode() for n in (1, 2)]
    (tmp_path / "i.jsonl").write_bytes(good[0] + b'\n{"tasking_id": "T1", "text": "\xff\xfe"}\n' + good[1] + b"\n")
    (tmp_path / "u.jsonl").write_text("".join(json.dumps({"name": n, "role": r}) + "\n" for n, r in ROLES.items()))
    result = fcmon("guard-check", "--taskings", str(tmp_path / "t.jsonl"), "--items", str(tmp_path / "i.jsonl"),
                   "--users", str(tmp_path / "u.jsonl"), "--json", check=True)
    decisions = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(d["decision"], d["reasons"][0]["rule"]) for d in decisions] == [
        ("rejected", "lawful_purpose"), ("rejected", "schema"), ("rejected", "lawful_purpose")]
    assert "tasking T1 is given more than once" in decisions[0]["reasons"][0]["message"]
    assert "lines 1, 2" in result.stderr


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_worker(case, worker_outcome):
    app, items = worker_outcome
    item = items[case.name]
    record = app.index.get(item.id)
    held = {h["item_id"]: h for h in app.state.quarantined()}
    rejected = dict(app.state.conn.execute("SELECT item_id, rule FROM rejections").fetchall())
    outcome = "indexed" if record else "quarantined" if item.id in held else "rejected" if item.id in rejected else "lost"
    assert outcome == case.expect
    if case.expect == "rejected":
        assert rejected[item.id] == case.rule
    if case.expect == "quarantined":
        assert held[item.id]["decision"]["reasons"][0]["rule"] == case.rule
    if record:
        for name, value in case.fields.items():
            assert getattr(record, name) == value
        text = f"{record.title}\n{record.text}\n{record.author or ''}"
        assert all(s in text for s in case.stored_has) and not any(s in text for s in case.stored_lacks), text
        assert record.labels.criminal_intelligence is False and record.labels.review_status == "unreviewed"


def test_guard_check_reads_a_bom_and_any_line_ending(tmp_path):
    tasking = tasking_fields("T1", NOW)
    (tmp_path / "t.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(tasking, default=str).encode() + b"\r\n")
    items = [json.dumps(item_fields("T1", n, NOW), default=str).encode() for n in (1, 2)]
    (tmp_path / "i.jsonl").write_bytes(b"\xef\xbb\xbf" + items[0] + b"\r" + items[1] + b"\r")
    (tmp_path / "u.jsonl").write_text("".join(json.dumps({"name": n, "role": r}) + "\n" for n, r in ROLES.items()))
    result = fcmon("guard-check", "--taskings", str(tmp_path / "t.jsonl"), "--items", str(tmp_path / "i.jsonl"),
                   "--users", str(tmp_path / "u.jsonl"), "--json", check=True)
    assert [json.loads(line)["decision"] for line in result.stdout.splitlines()] == ["indexed", "indexed"]
