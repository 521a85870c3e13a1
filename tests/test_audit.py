"""The local audit log on real SQLite: append-only, hash-chained, tamper-evident, serialized across processes."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from pipeline.app import App
from pipeline.audit import LocalAuditLog, entries_sql
from pipeline.datadir import DataDir
from pipeline.settings import Settings
from pipeline.errors import AuditUnavailable


@pytest.fixture
def log(tmp_path):
    return LocalAuditLog(tmp_path / "audit.db", tmp_path / "audit.head")


def fill(log, n=5):
    for i in range(n):
        log.append("query", "alice", {"query": f"term {i}", "tasking_id": "T-1"})


def tamper(tmp_path, sql, *args):
    """What an intruder with the file could do: drop the append-only triggers and rewrite rows."""
    conn = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("DROP TRIGGER entries_no_delete")
    conn.execute(sql, args)
    conn.close()


def test_intact_chain_verifies(log):
    fill(log)
    result = log.verify()
    assert result.ok and result.entries == 5
    entries = list(log.entries())
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:]))


def test_updates_and_deletes_are_refused_by_the_database(log, tmp_path):
    fill(log, 2)
    conn = sqlite3.connect(tmp_path / "audit.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE entries SET actor = 'mallory'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM entries")


def test_an_edited_entry_is_named(log, tmp_path):
    fill(log)
    tamper(tmp_path, "UPDATE entries SET payload = ? WHERE seq = 3", '{"query":"something else","tasking_id":"T-1"}')
    result = log.verify()
    assert not result.ok and result.first_broken_seq == 3 and "altered" in result.problem


def test_a_deleted_entry_is_named(log, tmp_path):
    fill(log)
    tamper(tmp_path, "DELETE FROM entries WHERE seq = 2")
    result = log.verify()
    assert not result.ok and result.first_broken_seq == 2


def test_a_cut_off_tail_is_caught(log, tmp_path):
    fill(log)
    tamper(tmp_path, "DELETE FROM entries WHERE seq >= 4")
    result = log.verify()
    assert not result.ok and "removed" in result.problem


def test_a_rehashed_forgery_still_breaks_the_link(log, tmp_path):
    fill(log)
    tamper(tmp_path, "UPDATE entries SET hash = ? WHERE seq = 2", "f" * 64)
    result = log.verify()
    assert not result.ok and result.first_broken_seq == 2


@pytest.mark.parametrize("how", ["removed", "replaced by a wrong one", "entries cut off the end"])
def test_an_append_refuses_to_go_on_from_a_log_whose_end_is_not_its_heads(log, tmp_path, how):
    fill(log, 4)
    head = tmp_path / "audit.head"
    if how == "entries cut off the end":
        tamper(tmp_path, "DELETE FROM entries WHERE seq > 2")
    else:
        head.unlink()
        if how.startswith("replaced"):
            head.write_text(f"{4:020d} {'0' * 64}\n")
    with pytest.raises(AuditUnavailable, match="nothing is appended after a break"):
        log.append("query", "alice", {"query": "after"})  # it would overwrite the head that shows the break
    assert not log.verify().ok


def test_the_head_is_rewritten_where_the_verifier_reads_it_after_it_was_replaced(log, tmp_path):
    fill(log, 2)
    head = tmp_path / "audit.head"
    recorded = head.read_text()
    head.unlink()
    head.write_text(recorded)  # a new file at the same path, naming the same entry (e.g. restored from a backup)
    log.append("query", "alice", {"query": "after"})
    assert head.read_text().split()[0] == f"{3:020d}"
    assert log.verify().ok


def test_a_break_accepted_by_an_administrator_stays_in_the_log_and_appends_resume(tmp_path):
    from tests.datadirs import fcmon, make_app
    app = make_app(tmp_path / "d")
    fill(app.audit, 4)
    tamper(tmp_path / "d", "DELETE FROM entries WHERE seq > 2")
    verify = fcmon("--data-dir", str(tmp_path / "d"), "--as", "sam", "audit", "verify")
    assert verify.returncode == 1 and "BROKEN at entry 3" in verify.stdout  # scripts read the exit status
    assert fcmon("--data-dir", str(tmp_path / "d"), "--as", "sam", "audit", "accept-break", "--reason", "x").returncode == 2
    accepted = fcmon("--data-dir", str(tmp_path / "d"), "--as", "ada", "audit", "accept-break",
                     "--reason", "power loss during the nightly restore; two entries lost")
    assert accepted.returncode == 0, accepted.stderr
    (entry,) = app.audit.entries(["audit.break"])
    assert entry.seq == 3 and entry.actor == "ada" and entry.payload["head_was"].startswith("4:")
    app.audit.append("query", "alice", {"query": "resumed"})
    verify = fcmon("--data-dir", str(tmp_path / "d"), "--as", "sam", "audit", "verify")
    assert verify.returncode == 0 and "head 4:" in verify.stdout
    huge = fcmon("--data-dir", str(tmp_path / "d"), "--as", "sam", "audit", "verify", "--anchor", "9" * 23 + ":" + "a" * 64)
    assert huge.returncode == 2 and "is not SEQ:HASH" in huge.stderr


def test_a_head_recorded_elsewhere_catches_a_rewrite_of_the_whole_log(log, tmp_path):
    fill(log, 3)
    anchor = log.head()
    assert anchor[0] == 3 and log.verify(anchor).ok
    (tmp_path / "audit.db").unlink()
    (tmp_path / "audit.head").unlink()
    rewritten = LocalAuditLog(tmp_path / "audit.db", tmp_path / "audit.head")  # a fresh chain, every hash recomputed
    fill(rewritten, 3)
    assert rewritten.verify().ok  # consistent in itself
    result = rewritten.verify(anchor)
    assert not result.ok and "not the one recorded as the anchor" in result.problem


def test_durable_across_reopen(log, tmp_path):
    fill(log, 3)
    reopened = LocalAuditLog(tmp_path / "audit.db", tmp_path / "audit.head")
    reopened.append("query", "sam", {"query": "x"})
    assert reopened.verify().ok and reopened.verify().entries == 4


@pytest.mark.parametrize("fsync,synchronous,synced", [(False, 1, 0), (True, 2, 1)])
def test_with_fsync_an_entry_and_its_head_are_on_disk_before_append_returns(tmp_path, monkeypatch, fsync, synchronous, synced):
    heads = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: heads.append(os.readlink(f"/proc/self/fd/{fd}")) or real(fd))
    DataDir(tmp_path / "d").create()
    app = App(Settings(data_dir=tmp_path / "d", audit_fsync=fsync))
    fill(app.audit, 2)
    assert app.audit.conn.execute("PRAGMA synchronous").fetchone() == (synchronous,)  # FULL: SQLite syncs each commit
    assert heads == [str(app.data_dir.audit_head)] * 2 * synced and app.audit.verify().ok


def test_concurrent_appenders_make_one_chain(tmp_path):
    script = (
        "import sys; from pathlib import Path; from pipeline.audit import LocalAuditLog\n"
        "log = LocalAuditLog(Path(sys.argv[1]) / 'audit.db', Path(sys.argv[1]) / 'audit.head')\n"
        "for i in range(60): log.append('query', sys.argv[2], {'i': i})\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), f"user{n}"]) for n in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    result = LocalAuditLog(tmp_path / "audit.db", tmp_path / "audit.head").verify()
    assert result.ok and result.entries == 180


def test_an_unwritable_log_refuses(tmp_path):
    (tmp_path / "audit.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(AuditUnavailable, match="cannot be"):
        LocalAuditLog(tmp_path / "audit.db", tmp_path / "audit.head").append("query", "alice", {})


def test_entries_by_kind_come_back_in_chain_order_through_the_partial_index(tmp_path):
    old = sqlite3.connect(tmp_path / "audit.db")  # a log made before searches' entries were left out of the index
    old.executescript("CREATE TABLE entries (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL, actor TEXT "
                      "NOT NULL, payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
                      "CREATE INDEX entries_kind_at ON entries (kind, at);")
    old.close()
    log = LocalAuditLog(tmp_path / "audit.db", tmp_path / "audit.head")
    kinds = ["query", "retention.keep", "query.result", "record.read", "retention.keep", "query.refused"]
    for n, kind in enumerate(kinds):
        log.append(kind, "alice", {"n": n})
    assert [e.payload["n"] for e in log.entries(["retention.keep"])] == [1, 4]
    assert [e.payload["n"] for e in log.entries(["query", "query.refused"])] == [0, 5]
    assert [e.payload["n"] for e in log.entries(["record.read", "query.result", "retention.keep"])] == [1, 2, 3, 4]
    assert len(list(log.entries())) == 6 and log.verify().ok
    indices = [row[1] for row in log.conn.execute("PRAGMA index_list(entries)")]
    assert indices == ["entries_indexed_kind"]  # the old index, which every search's two entries updated, is gone
    plan = log.conn.execute("EXPLAIN QUERY PLAN " + entries_sql(["retention.keep"])[0], ["retention.keep"]).fetchall()
    assert "entries_indexed_kind" in str(plan)


def test_entries_at_returns_the_entries_asked_for_in_chain_order(log):
    fill(log, 1_200)
    wanted = list(range(1_200, 0, -2))  # more than one statement's worth, asked newest first
    assert [e.seq for e in log.entries_at(wanted)] == sorted(wanted)
    assert [e.payload["query"] for e in log.entries_at([3, 999_999])] == ["term 2"]  # an unknown seq is no entry


def test_verify_while_another_connection_appends_sees_no_break(log, tmp_path):
    import threading
    fill(log, 3)
    other = LocalAuditLog(tmp_path / "audit.db", tmp_path / "audit.head")  # another process's connection
    done = threading.Event()

    def append_until_done():
        while not done.is_set():
            other.append("query", "sam", {"query": "busy"})
    appender = threading.Thread(target=append_until_done)
    appender.start()
    try:
        results = [log.verify() for _ in range(30)]
    finally:
        done.set()
        appender.join()
    assert all(r.ok for r in results), [r.problem for r in results if not r.ok][:1]


def test_nothing_is_recorded_as_a_break_on_an_intact_log(log):
    from pipeline.errors import FcmonError
    fill(log, 2)
    with pytest.raises(FcmonError, match="there is no lost or replaced end to record"):
        log.append("audit.break", "ada", {"reason": "x"}, over_a_break=True)
    assert [e.kind for e in log.entries()] == ["query", "query"]


def test_every_string_of_an_entry_is_bounded_and_what_was_cut_is_recorded(log):
    import hashlib

    from pipeline.audit_bounds import MAX_AUDIT_STRING
    long = "x" * (MAX_AUDIT_STRING + 10)
    entry = log.append("probe", "y" * (MAX_AUDIT_STRING + 1), {"note": long, "short": "kept", "nested": {"list": ["ok", long]},
                                                              long: 1})
    stored = list(log.entries(["probe"]))[0]
    assert stored.payload == entry.payload and len(stored.actor) == MAX_AUDIT_STRING
    assert stored.payload["note"] == long[:MAX_AUDIT_STRING] and stored.payload["short"] == "kept"
    assert stored.payload["nested"]["list"] == ["ok", long[:MAX_AUDIT_STRING]]
    cut = stored.payload["cut"]
    assert cut["note"] == {"chars": len(long), "sha256": hashlib.sha256(long.encode()).hexdigest()}
    assert set(cut) == {"(actor)", "note", "nested.list[1]", long[:200] + " (name)"}
    assert log.verify().ok  # the cut entry is what the chain hashes
