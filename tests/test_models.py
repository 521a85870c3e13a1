"""The interchange format: models, exported JSON Schemas, deterministic ids."""
from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import ValidationError

from pipeline.models import CollectedItem, Tasking, record_id
from pipeline.schemas import SCHEMA_DIR, rendered
from tests.factories_pipeline import make_item, make_tasking


def test_exported_schemas_match_the_models():
    expected = rendered()
    on_disk = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.schema.json")}
    assert on_disk == expected, "run `python -m pipeline.schemas` and commit config/schemas/"


def test_an_item_validates_against_its_exported_schema():
    schema = json.loads((SCHEMA_DIR / "collected-item.schema.json").read_text())
    jsonschema.validate(json.loads(make_item().model_dump_json()), schema)
    bad = json.loads(make_item().model_dump_json()) | {"request": {"method": "GET", "headers": {"A": 1}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_the_sample_tasking_validates():
    schema = json.loads((SCHEMA_DIR / "tasking.schema.json").read_text())
    sample = json.loads((SCHEMA_DIR.parent / "taskings" / "demo-criminal-predicate.json").read_text())
    jsonschema.validate(sample, schema)
    Tasking.model_validate(sample)


def test_ids_are_deterministic_and_ignore_url_noise():
    a = make_item(url="https://forum.example/post/1?b=2&a=1#top")
    b = make_item(url="https://forum.example/post/1?a=1&b=2")
    assert a.id == b.id == record_id("T-1", "https://forum.example/post/1?a=1&b=2", a.content_sha256)
    assert make_item(text="other text").id != a.id
    assert make_item(tasking_id="T-2").id != a.id


def test_a_criminal_predicate_must_state_its_facts():
    with pytest.raises(ValidationError, match="28CFR23.20"):
        make_tasking(predicate=None)


def test_naive_times_and_unknown_fields_are_refused():
    data = json.loads(make_item().model_dump_json())
    with pytest.raises(ValidationError):
        CollectedItem.model_validate(data | {"fetched_at": "2026-11-01T12:00:00"})
    with pytest.raises(ValidationError):
        CollectedItem.model_validate(data | {"cookies": "x"})
