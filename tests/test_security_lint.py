"""`make lint`: the dependency audit fails closed and honours only a reasoned allow-list; the lint's ignores say why;
checks that keep unlabelled or unpurposed items out survive `python -O` (which drops asserts)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AUDIT = [sys.executable, str(ROOT / "scripts" / "audit_deps.py")]
FAKE_ID = "PYSEC-0000-FAKE"


@pytest.fixture
def osv():
    """OSV's query endpoint on 127.0.0.1, knowing one advisory: FAKE_ID for the installed jinja2."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            asked.append(query["package"]["name"])
            vulns = [{"id": FAKE_ID, "summary": "a test advisory", "affected": [{
                "package": {"name": "jinja2", "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "999"}]}]}]}]
            body = json.dumps({"vulns": vulns} if query["package"]["name"] == "jinja2" else {}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/query", asked
    server.shutdown()
    server.server_close()


def audit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*AUDIT, *args], capture_output=True, text=True, timeout=240, check=False)


def test_an_advisory_fails_the_audit_unless_allowed_with_a_reason(osv, tmp_path):
    url, asked = osv
    allow = tmp_path / "allow.txt"
    allow.write_text("# none yet\n")
    found = audit("--services", "osv", "--osv-url", url, "--allow", str(allow))
    assert found.returncode == 1 and FAKE_ID in found.stdout, (found.stdout, found.stderr)
    assert "jinja2" in asked and "starlette" in asked and "fcmon" not in asked  # every installed package but ours
    allow.write_text(f"{FAKE_ID}  a test advisory, accepted here\n")
    passed = audit("--services", "osv", "--osv-url", url, "--allow", str(allow))
    assert passed.returncode == 0, (passed.stdout, passed.stderr)
    allow.write_text(f"{FAKE_ID}\n")
    unreasoned = audit("--services", "osv", "--osv-url", url, "--allow", str(allow))
    assert unreasoned.returncode != 0 and f"{FAKE_ID} has no reason" in unreasoned.stderr


def test_no_vulnerability_service_fails_the_audit_closed_saying_what_was_tried():
    """pip-audit without --strict reports an unreachable service as packages 'not found' and passes."""
    closed = audit("--services", "osv", "--osv-url", "http://127.0.0.1:9/v1/query")
    assert closed.returncode == 2
    assert "no vulnerability service answers, so no dependency was audited (failing closed)" in closed.stderr
    assert "http://127.0.0.1:9/v1/query" in closed.stderr
    warned = audit("--services", "osv", "--osv-url", "http://127.0.0.1:9/v1/query", "--if-unreachable", "warn")
    assert warned.returncode == 0 and "WARNING: the dependency audit did NOT run" in warned.stderr  # what CI passes


def test_warn_if_unreachable_still_fails_on_an_advisory(osv):
    url, _ = osv
    found = audit("--services", "osv", "--osv-url", url, "--if-unreachable", "warn")
    assert found.returncode == 1 and FAKE_ID in found.stdout


def test_the_allow_list_gives_a_reason_for_every_advisory():
    for line in (ROOT / "config" / "security" / "pip-audit-allow.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        assert not line or len(line.split(None, 1)) == 2, f"no reason for {line!r}"


def test_every_ignored_lint_rule_says_why():
    """Each per-file ignore in pyproject.toml's ruff section comes after a comment; nothing is ignored everywhere."""
    text = (ROOT / "pyproject.toml").read_text()
    ruff = text[text.index("[tool.ruff.lint]"):]
    assert re.search(r'^select = \["S"\]$', ruff, re.M) and not re.search(r"^(extend-)?ignore\s*=", ruff, re.M)
    lines = ruff[ruff.index("[tool.ruff.lint.per-file-ignores]"):].splitlines()[1:]
    for number, line in enumerate(lines):
        if line.startswith('"'):
            assert lines[number - 1].startswith("#") or lines[number - 1].startswith('"'), f"no reason above {line}"
    assert sum(line.startswith("#") for line in lines) >= 6


@pytest.mark.parametrize("code, message", [
    ("from guards.labels import recorded_predicate\n"
     "recorded_predicate(make_tasking(approved_by=None, approved_at=None))", "only approved taskings reach labelling"),
    ("from pipeline.worker import to_record\nfrom pipeline.models import GuardDecision, utcnow\n"
     "item = make_item()\n"
     "to_record(item, GuardDecision(item_id=item.id, tasking_id='T-1', decision='indexed', reasons=[],"
     " content_sha256=item.content_sha256, decided_at=utcnow()))", "nothing unlabelled is stored"),
])
def test_the_checks_that_keep_unlabelled_items_out_survive_python_O(code, message):
    """They were asserts, which `python -O` removes."""
    ran = subprocess.run([sys.executable, "-O", "-c", "from tests.factories_pipeline import make_item, make_tasking\n" + code],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode != 0 and message in ran.stderr, ran.stderr[-500:]
