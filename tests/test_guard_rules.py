"""Rule 7 at request time (`fcmon tasking add`), and the PII patterns on their own."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from guards.pii import PATTERNS
from pipeline.app import App
from pipeline.models import utcnow
from pipeline.settings import Settings
from tests.datadirs import fcmon, make_app
from tests.factories_guards import tasking_fields

IGA = {"kind": "information_gathering", "case_number": None, "predicate": None, "criminal_activity": None}


@pytest.mark.parametrize("overrides,fragment", [
    ({"scope": {"domains": ["forum.example"], "keywords": ["#NoDAPL"]}}, "denied list"),
    ({"scope": {"keywords": ["converters", "protesters"]}}, "denied list"),
    (IGA | {"scope": {"accounts": ["@wrenchman"]}}, "never persons or accounts"),
    ({"criminal_activity": "suspicious activity"}, "not a definable criminal activity"),
    ({"predicate": "he is bad"}, "state the facts"),
], ids=["hashtag", "protesters", "iga-account", "vague-activity", "no-facts"])
def test_request_refuses_unlawful_taskings(tmp_path, overrides, fragment):
    app = make_app(tmp_path / "data")
    app.close()
    body = tasking_fields("T-9", utcnow(), **overrides) | {"approved_by": None, "approved_at": None}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(body, default=str))
    result = fcmon("--data-dir", str(tmp_path / "data"), "--as", "alice", "tasking", "add", "--file", str(path))
    assert result.returncode == 2 and fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    app = App(Settings(data_dir=tmp_path / "data"))
    assert app.state.taskings() == [] and list(app.audit.entries(["tasking.request"])) == []
    app.close()


def test_request_accepts_a_lawful_information_gathering_tasking(tmp_path):
    app = make_app(tmp_path / "data")
    app.close()
    body = tasking_fields("T-8", utcnow(), **IGA) | {"approved_by": None, "approved_at": None,
                                                     "expires_at": (utcnow() + timedelta(days=3)).isoformat(),
                                                     "scope": {"domains": ["forum.example"], "keywords": ["fireworks"]}}
    (tmp_path / "t.json").write_text(json.dumps(body, default=str))
    fcmon("--data-dir", str(tmp_path / "data"), "--as", "alice", "tasking", "add", "--file", str(tmp_path / "t.json"), check=True)


@pytest.mark.parametrize("kind,text,expected", [
    ("email", "write a.b+c@mail.example.org now", ["a.b+c@mail.example.org"]),
    ("email", "@alice@mastodon.social is a handle", []),
    ("phone", "call (312) 555-0142 or +1 312.555.0143", ["(312) 555-0142", "+1 312.555.0143"]),
    ("phone", "$150 each, 6 left, order 12345678", []),
    ("address", "at 4200 W Grand Ave. tonight", ["4200 W Grand Ave."]),
    ("address", "I have 3 old cars in the court", []),
])
def test_pii_patterns(kind, text, expected):
    assert [m.group(0) for m in PATTERNS[kind].finditer(text)] == expected
