"""The API as docs/openapi.yaml describes it: schemathesis generates requests from the document (a bounded number
per operation) and sends them over HTTP to the console on 127.0.0.1, signed in as an analyst with real records and
the real audit log; every answer must be one the document names, shaped as it says, and never a 500."""
from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from pipeline.models import utcnow
from pipeline.passwords import hash_password
from tests.datadirs import make_app
from tests.factories import make_record
from tests.factories_pipeline import make_tasking
from tests.factories_web import running_console

DOCUMENT = Path(__file__).parent.parent / "docs" / "openapi.yaml"
PASSWORD = "correct horse battery"
schema = schemathesis.openapi.from_path(str(DOCUMENT))
NOW = utcnow()


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("openapi") / "d", make_tasking(approved_at=NOW - timedelta(days=1),
                                                                        expires_at=NOW + timedelta(days=30)))
    app.state.set_password_hash("alice", hash_password(PASSWORD))
    app.index.upsert([make_record(url=f"https://forum.example/p/{n}", text=f"converter number {n}") for n in range(5)])
    with running_console(app) as base:
        yield base, "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode(), app
    app.close()


@schema.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_answers_as_documented_and_never_with_a_500(case, api):
    base, auth, _ = api
    case.call_and_validate(base_url=base, headers={"Authorization": auth}, checks=[
        not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance])


def test_the_document_is_the_apis(api):
    base, auth, app = api
    response = schema["/api/search"]["GET"].Case(query={"tasking": "T-1", "q": "converter"}).call(
        base_url=base, headers={"Authorization": auth})
    assert response.status_code == 200 and response.json()["total"] == 5  # the operation answers as described
    assert [e.payload["interface"] for e in app.audit.entries(["query"])][-1] == "api"
