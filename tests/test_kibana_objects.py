"""The Kibana saved objects in config/kibana/: valid NDJSON, required attributes, references that resolve,
and only fields the Elasticsearch templates map (and the documents fcmon writes carry)."""
from __future__ import annotations

import json
import re
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from pipeline.audit import AuditEntry
from pipeline.index.elasticsearch import load_template
from pipeline.review import QueryRow, audit_document
from pipeline.settings import REPO_CONFIG_DIR
from tests.servers import serving

KIBANA = REPO_CONFIG_DIR / "kibana"
TEMPLATES = REPO_CONFIG_DIR / "elasticsearch"
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "import-kibana-objects"
REQUIRED = {"index-pattern": {"title", "timeFieldName"}, "visualization": {"title", "visState", "kibanaSavedObjectMeta"},
            "dashboard": {"title", "panelsJSON", "kibanaSavedObjectMeta"}}
DATA_VIEWS = {"fcmon-records*": "records-template.json", "fcmon-audit*": "audit-template.json"}
KQL_FIELD = re.compile(r"([A-Za-z_@][\w.@]*)\s*:")


def objects() -> list[dict]:
    found = []
    for path in sorted(KIBANA.glob("*.ndjson")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            assert line.strip(), f"{path.name}:{number} is empty"
            found.append({**json.loads(line), "_file": f"{path.name}:{number}"})
    return found


def mapped(template: str) -> set[str]:
    def walk(properties: dict, prefix: str = "") -> set[str]:
        paths = set()
        for name, spec in properties.items():
            paths.add(prefix + name)
            paths |= walk(spec.get("properties", {}), f"{prefix}{name}.")
            paths |= {f"{prefix}{name}.{sub}" for sub in spec.get("fields", {})}
        return paths
    return walk(load_template(TEMPLATES / template)["template"]["mappings"]["properties"])


OBJECTS = objects()
BY_ID = {(o["type"], o["id"]): o for o in OBJECTS}


def test_files_hold_the_three_views():
    titles = {o["attributes"]["title"] for o in OBJECTS if o["type"] in ("index-pattern", "dashboard")}
    assert titles == {"fcmon-records*", "fcmon-audit*", "fcmon: analyst", "fcmon: supervisor review"}
    assert len(BY_ID) == len(OBJECTS)  # ids are unique


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: o["id"])
def test_required_attributes_and_embedded_json(obj):
    assert REQUIRED[obj["type"]] <= set(obj["attributes"]), obj["_file"]
    for key in ("visState", "panelsJSON", "optionsJSON", "uiStateJSON"):
        if key in obj["attributes"]:
            json.loads(obj["attributes"][key])
    meta = obj["attributes"].get("kibanaSavedObjectMeta")
    if meta:
        json.loads(meta["searchSourceJSON"])


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: o["id"])
def test_references_resolve(obj):
    for reference in obj.get("references", []):
        assert (reference["type"], reference["id"]) in BY_ID, f"{obj['_file']}: {reference}"
    if obj["type"] == "dashboard":
        names = {r["name"] for r in obj["references"]}
        assert {p["panelRefName"] for p in json.loads(obj["attributes"]["panelsJSON"])} == names
    if obj["type"] == "visualization" and "indexRefName" in obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]:
        assert [r["name"] for r in obj["references"]] == ["kibanaSavedObjectMeta.searchSourceJSON.index"]


def fields_used(obj: dict) -> tuple[str, set[str]]:
    """The data view a visualization reads and every field it names (aggregations, KQL, Vega bodies)."""
    state = json.loads(obj["attributes"]["visState"])
    source = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    fields = {agg["params"]["field"] for agg in state.get("aggs", []) if "field" in agg.get("params", {})}
    fields |= set(KQL_FIELD.findall(source.get("query", {}).get("query", "")))
    if state["type"] == "vega":
        spec = json.loads(state["params"]["spec"])
        view = spec["data"]["url"]["index"]
        fields |= set(re.findall(r'"field":\s*"([^"]+)"', json.dumps(spec["data"]["url"]["body"])))
        fields.add(spec["data"]["url"]["%timefield%"])
        return view, fields
    (reference,) = obj["references"]
    return BY_ID[("index-pattern", reference["id"])]["attributes"]["title"], fields


@pytest.mark.parametrize("obj", [o for o in OBJECTS if o["type"] == "visualization"], ids=lambda o: o["id"])
def test_fields_exist_in_the_mapping(obj):
    view, fields = fields_used(obj)
    assert fields and fields <= mapped(DATA_VIEWS[view]), f"{obj['_file']}: {fields - mapped(DATA_VIEWS[view])}"


def test_data_views_use_a_mapped_time_field():
    for obj in OBJECTS:
        if obj["type"] == "index-pattern":
            assert obj["attributes"]["timeFieldName"] in mapped(DATA_VIEWS[obj["attributes"]["title"]])


def test_audit_documents_fill_the_supervisor_fields():
    entry = AuditEntry(seq=7, at="2026-11-02T03:00:00+00:00", kind="query", actor="alice", prev_hash="0" * 64, hash="f" * 64,
                       payload={"id": "q1", "at": "2026-11-02T03:00:00+00:00", "user": "alice", "role": "analyst",
                                "tasking_id": "T-1", "case_number": "C-1", "query": "converter", "filters": {},
                                "client": "10.0.0.5", "interface": "kibana"})
    row = QueryRow(seq=7, query_id="q1", at=entry.at, user="alice", role="analyst", interface="kibana", client="10.0.0.5",
                   tasking_id="T-1", case_number="C-1", query="converter", outcome="run", off_hours=True)
    doc = audit_document(entry, row)
    paths = mapped("audit-template.json")

    def leaves(node: dict, prefix: str = "") -> set[str]:
        out = set()
        for key, value in node.items():
            if isinstance(value, dict) and key != "payload":
                out |= leaves(value, f"{prefix}{key}.")
            else:
                out.add(prefix + key)
        return out
    assert leaves(doc) <= paths
    assert doc["fcm"]["off_hours"] is True and doc["fcm"]["review_status"] == "unreviewed"
    assert doc["event"]["kind"] == "query" and doc["user"]["name"] == "alice" and doc["fcm"]["query_id"] == "q1"


class FakeKibana(BaseHTTPRequestHandler):
    uploads: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.uploads.append({"path": self.path, "xsrf": self.headers.get("kbn-xsrf"), "auth": self.headers.get("Authorization"),
                             "body": body.decode()})
        payload = json.dumps({"success": True, "successCount": body.count(b'"type":')}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


def test_the_import_script_uploads_every_file(tmp_path):
    with serving(FakeKibana) as url:
        result = subprocess.run([str(SCRIPT), "--space", "fusion"], capture_output=True, text=True, timeout=30,
                                env={"PATH": "/usr/bin:/bin", "KIBANA_URL": url, "KIBANA_AUTH": "sam:secret"})
        assert result.returncode == 0, result.stderr
        assert [u["path"] for u in FakeKibana.uploads] == ["/s/fusion/api/saved_objects/_import?overwrite=true"] * 2
        assert all(u["xsrf"] == "true" and u["auth"].startswith("Basic ") for u in FakeKibana.uploads)
        sent = "".join(u["body"] for u in FakeKibana.uploads)
        assert all(f'"id":"{o["id"]}"' in sent for o in OBJECTS)
        missing = subprocess.run([str(SCRIPT)], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
        assert missing.returncode == 2 and "KIBANA_URL" in missing.stderr
