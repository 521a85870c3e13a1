"""The `fcmon` command as operators run it: contracts, roles and one-line errors (never a traceback)."""
from __future__ import annotations

import json
import os
import pwd
import socket
from datetime import timedelta

import pytest

from pipeline.models import utcnow
from tests.datadirs import fcmon


@pytest.fixture
def home(tmp_path):
    env = {"FCMON_DATA_DIR": str(tmp_path / "data")}
    fcmon("init", env=env, check=True)
    for name, role in [("alice", "analyst"), ("sam", "supervisor"), ("sue", "supervisor"), ("ada", "admin")]:
        fcmon("user", "add", name, "--role", role, env=env, check=True)
    return tmp_path, env


FACTS = "Theft reports RD-1 to RD-9 list converters cut from cars; user wrenchman sells them on the forum."


def tasking_file(tmp_path, **overrides):
    body = {"id": "T-1", "kind": "criminal_predicate", "case_number": "C-1", "predicate": FACTS, "criminal_activity": "theft of catalytic converters",
            "requested_by": "alice", "expires_at": (utcnow() + timedelta(days=30)).isoformat(),
            "scope": {"domains": ["forum.example"], "keywords": ["converter"]}} | overrides
    path = tmp_path / f"{body['id']}.json"
    path.write_text(json.dumps(body))
    return str(path)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fcmon: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_every_command_has_help():
    for command in (["init"], ["demo"], ["user", "add"], ["user", "list"], ["tasking", "add"], ["tasking", "approve"],
                    ["tasking", "list"], ["tasking", "revoke"], ["crawl"], ["work"], ["search"], ["audit", "verify"], ["audit", "list"]):
        result = fcmon(*command, "--help")
        assert result.returncode == 0 and "Usage: " in result.stdout, command


def test_missing_data_directory(tmp_path):
    assert_one_line_error(fcmon("user", "list"), "no data directory", "--data-dir")
    assert_one_line_error(fcmon("--data-dir", str(tmp_path / "nowhere"), "user", "list"), "not an fcmon data directory", "init")


def test_the_data_directory_is_private_to_its_owner(home):
    tmp_path, env = home
    data = tmp_path / "data"
    assert data.stat().st_mode & 0o777 == 0o700  # init made it so, whatever the umask
    data.chmod(0o755)  # every account on the machine could read the records and the audit log without fcmon
    assert_one_line_error(fcmon("user", "list", env=env), "open to every account on this machine (mode 755)",
                          f"chmod o-rwx {data}")
    data.chmod(0o750)  # a group the operator chose may share it
    assert fcmon("user", "list", env=env).returncode == 0


def test_invalid_config(tmp_path):
    assert_one_line_error(fcmon("init", env={"FCMON_DATA_DIR": str(tmp_path), "FCMON_CRAWL_DEPTH_LIMIT": "deep"}),
                          "invalid configuration", "crawl_depth_limit")
    (tmp_path / "bad.toml").write_text("crawl_page_limit = 'many'\n")
    assert_one_line_error(fcmon("init", env={"FCMON_DATA_DIR": str(tmp_path), "FCMON_CONFIG": str(tmp_path / "bad.toml")}),
                          "invalid configuration")
    (tmp_path / "typo.toml").write_text("crawl_pagelimit = 3\n")
    assert_one_line_error(fcmon("init", env={"FCMON_DATA_DIR": str(tmp_path), "FCMON_CONFIG": str(tmp_path / "typo.toml")}),
                          "crawl_pagelimit")


def test_users_are_listed_as_json(home):
    _, env = home
    users = json.loads(fcmon("user", "list", "--json", env=env, check=True).stdout)
    assert {u["name"]: u["role"] for u in users} == {"alice": "analyst", "sam": "supervisor", "sue": "supervisor", "ada": "admin"}
    assert_one_line_error(fcmon("user", "add", "alice", "--role", "analyst", env=env), "already exists")


def test_tasking_lifecycle_and_its_rules(home):
    tmp_path, env = home
    assert_one_line_error(fcmon("tasking", "add", "--file", tasking_file(tmp_path), env=env), "no acting user", "--as")
    assert_one_line_error(fcmon("tasking", "add", "--file", tasking_file(tmp_path), "--as", "ada", env=env), "admin")
    added = fcmon("tasking", "add", "--file", tasking_file(tmp_path, approved_by="sam"), "--as", "alice", "--json", env=env, check=True)
    assert json.loads(added.stdout)["status"] == "pending" and "ignored approved_by" in added.stderr
    assert_one_line_error(fcmon("tasking", "approve", "T-1", "--as", "alice", env=env), "only a supervisor")
    assert_one_line_error(fcmon("tasking", "approve", "T-404", "--as", "sam", env=env), "unknown tasking")
    fcmon("tasking", "approve", "T-1", env=env | {"FCMON_USER": "sam"}, check=True)
    listed = json.loads(fcmon("tasking", "list", "--json", "--as", "alice", env=env, check=True).stdout)
    assert [(t["id"], t["status"], t["approved_by"]) for t in listed] == [("T-1", "active", "sam")]


def test_nobody_approves_their_own_tasking(home):
    tmp_path, env = home
    fcmon("tasking", "add", "--file", tasking_file(tmp_path, requested_by="sam"), "--as", "sam", env=env, check=True)
    assert_one_line_error(fcmon("tasking", "approve", "T-1", "--as", "sam", env=env), "cannot approve")
    fcmon("tasking", "approve", "T-1", "--as", "sue", env=env, check=True)


def test_invalid_tasking_files_are_explained(home):
    tmp_path, env = home
    assert_one_line_error(fcmon("tasking", "add", "--file", tasking_file(tmp_path, predicate=None), "--as", "alice", env=env),
                          "predicate", "28CFR23.20(c)")
    (tmp_path / "broken.json").write_text("{")
    assert_one_line_error(fcmon("tasking", "add", "--file", str(tmp_path / "broken.json"), "--as", "alice", env=env), "not a valid tasking")


def test_search_needs_a_known_active_tasking_and_a_role(home):
    tmp_path, env = home
    assert_one_line_error(fcmon("search", "converter", "--tasking", "T-404", "--as", "alice", env=env), "unknown tasking")
    fcmon("tasking", "add", "--file", tasking_file(tmp_path), "--as", "alice", env=env, check=True)
    assert_one_line_error(fcmon("search", "converter", "--tasking", "T-1", "--as", "alice", env=env), "pending")
    fcmon("tasking", "approve", "T-1", "--as", "sam", env=env, check=True)
    assert_one_line_error(fcmon("search", "converter", "--tasking", "T-1", "--as", "ada", env=env), "admin")
    result = json.loads(fcmon("search", "converter", "--tasking", "T-1", "--as", "alice", "--json", env=env, check=True).stdout)
    assert result["total"] == 0
    entries = json.loads(fcmon("audit", "list", "--kind", "query", "--json", "--as", "sam", env=env, check=True).stdout)
    # --as names the fcmon user; the entry also names the operating-system account that ran the command
    assert entries[-1]["payload"]["client"] == f"{pwd.getpwuid(os.getuid()).pw_name}@{socket.gethostname()}"
    assert_one_line_error(fcmon("search", '"unbalanced', "--tasking", "T-1", "--as", "alice", env=env), "invalid query")


def test_audit_verify_reports_ok_and_is_for_supervisors(home):
    _, env = home
    result = fcmon("audit", "verify", "--json", "--as", "sam", env=env, check=True)
    assert json.loads(result.stdout)["ok"] is True
    assert_one_line_error(fcmon("audit", "verify", "--as", "alice", env=env), "supervisor or admin")


def test_crawled_text_cannot_drive_the_terminal():
    from pipeline.cli import shown, shown_highlight
    hostile = "Title\x1b[2J\x1b]0;pwned\x07 end\x9b"
    assert "\x1b" not in shown(hostile) and "\x07" not in shown(hostile) and "\x9b" not in shown(hostile)
    assert shown("line one\nline two\ttab") == "line one\nline two\ttab"
    assert shown_highlight("a &lt;script&gt; <mark>converter</mark>\n\x1b[31m") == "a <script> [converter] \ufffd[31m"
