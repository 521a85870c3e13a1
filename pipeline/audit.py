"""The AuditLog port and its local adapter: an append-only, hash-chained SQLite log.

Each entry's hash covers its own fields and the previous entry's hash, so editing or deleting any
entry breaks every link after it. The tail is anchored in a head file written under the same write
lock, so cutting entries off the end is caught too, and an append refuses to go on from a log whose
end is not the head's (the next entry would otherwise overwrite the evidence): `fcmon audit verify`
names the break, and `fcmon audit accept-break` records it in the log before appends resume.
Appends are serialized by SQLite's write lock (BEGIN IMMEDIATE), so several processes appending at
once still make one unbroken chain. What the chain cannot show on its own is a rewrite of the whole
log and its head by someone who can write the data directory: compare with a head recorded
elsewhere (`fcmon audit verify --anchor SEQ:HASH`) or with the Kafka mirror.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Protocol

from pipeline.audit_bounds import bounded
from pipeline.errors import AuditUnavailable, FcmonError
from pipeline.models import sha256_hex, utcnow
from pipeline.sqlite import Transaction, connect

log = logging.getLogger(__name__)

GENESIS = "0" * 64
HEAD_SEQ_WIDTH = 20  # every head line has the same length, so an in-place overwrite leaves no stale tail
# Every search appends these two and they are read back by scanning; indexing every entry's kind cost each search
# a fifth of its audit time (bench/bench_audit_steps.py), so only the other kinds are indexed, and a lookup of those
# names the index's condition so that SQLite uses it.
UNINDEXED_KINDS = ("query", "query.result")
INDEXED_KINDS = f"kind NOT IN ({', '.join(repr(k) for k in UNINDEXED_KINDS)})"

ENTRY_COLUMNS = "SELECT seq, at, kind, actor, payload, prev_hash, hash FROM entries"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL,
    payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
DROP INDEX IF EXISTS entries_kind_at;
CREATE INDEX IF NOT EXISTS entries_indexed_kind ON entries (kind) WHERE {INDEXED_KINDS};
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    kind: str
    actor: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "kind": self.kind, "actor": self.actor,
                "payload": self.payload, "prev_hash": self.prev_hash, "hash": self.hash}


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    first_broken_seq: int | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "first_broken_seq": self.first_broken_seq, "problem": self.problem}


class AuditLog(Protocol):
    def append(self, kind: str, actor: str, payload: dict[str, Any], *, over_a_break: bool = False) -> AuditEntry:
        """Durably append one entry, or raise AuditUnavailable (also when the log's end is not its head's, unless
        `over_a_break`: the audit.break entry that records such a break)."""

    def entries(self, kinds: list[str] | None = None, after: int = 0) -> Iterator[AuditEntry]:
        """Entries in chain order, optionally only of the given kinds and only those after seq `after`."""

    def entries_at(self, seqs: list[int]) -> Iterator[AuditEntry]:
        """The entries with these seqs, in chain order."""

    def verify(self, anchor: tuple[int, str] | None = None) -> VerifyResult:
        """Recompute the chain and name the first entry that does not fit; with `anchor` (seq, hash recorded
        elsewhere), also check that the log still holds that entry."""

    def head(self) -> tuple[int, str] | None:
        """(seq, hash) the head records."""


def entry_hash(seq: int, at: str, kind: str, actor: str, payload_json: str, prev_hash: str) -> str:
    return sha256_hex(json.dumps([seq, at, kind, actor, payload_json, prev_hash], separators=(",", ":")))


def canonical_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


class HeadMismatch(Exception):
    """The head does not name the log's last entry."""


class LocalAuditLog:
    """`fsync=False`: an entry is committed to SQLite's write-ahead log before append returns, which survives the
    process crashing but not the machine losing power in the next seconds (synchronous=NORMAL). `fsync=True`: the
    entry and the head are on disk before append returns (synchronous=FULL and an fdatasync of the head)."""

    def __init__(self, path: Path, head_path: Path, *, fsync: bool = False):
        self.head_path = head_path
        self.fsync = fsync
        self._head_fd: int | None = None
        self._head_identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file _head_fd holds open
        try:
            self.conn = connect(path, busy_timeout_ms=5000)
            self.conn.executescript(SCHEMA)
            if fsync:
                self.conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise AuditUnavailable(f"audit log {path} cannot be opened ({exc})",
                                   "restore the audit log or ask an administrator; nothing that needs auditing will run") from exc

    def append(self, kind: str, actor: str, payload: dict[str, Any], *, over_a_break: bool = False) -> AuditEntry:
        """Every string of the entry is first cut to MAX_AUDIT_STRING characters, what was cut recorded in it
        (pipeline/audit_bounds.py); the entry returned carries that payload (what is stored and hashed is its canonical
        JSON). Refused when the head does not name the log's last entry, unless `over_a_break` (audit.break, which
        records it)."""
        actor, payload = bounded(actor, payload)
        payload_json = canonical_json(payload)
        at = utcnow().isoformat()
        try:
            with Transaction(self.conn) as tx:
                row = tx.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
                head, end = self._current_head(), (tuple(row) if row else None)
                if head != end and not over_a_break:
                    raise HeadMismatch(f"the audit log ends at entry {row[0] if row else 0} but its head records "
                                       f"{'entry ' + str(head[0]) if head else 'none'}: entries were removed, replaced or "
                                       "lost; nothing is appended after a break")
                if head == end and over_a_break:
                    raise FcmonError("the log's end and its head agree: there is no lost or replaced end to record",
                                     "a break inside the log stays for `fcmon audit verify` to report: it is evidence")
                seq, prev_hash = (row[0] + 1, row[1]) if row else (1, GENESIS)
                digest = entry_hash(seq, at, kind, actor, payload_json, prev_hash)
                tx.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)", (seq, at, kind, actor, payload_json, prev_hash, digest))
                try:
                    self._write_head(seq, digest)
                    tx.execute("COMMIT")  # here, so that a commit that fails (a full disk) puts the head back
                except BaseException:
                    self._restore_head(head)
                    raise
                tx.execute("BEGIN")  # Transaction's own COMMIT closes this empty one
        except HeadMismatch as exc:
            raise AuditUnavailable(f"audit log cannot be written: {exc}",
                                   "the action was refused; run `fcmon audit verify`, and once the break is understood an "
                                   "administrator records it with `fcmon audit accept-break --reason TEXT`") from exc
        except (sqlite3.Error, OSError) as exc:
            raise AuditUnavailable(f"audit log cannot be written ({exc})",
                                   "the action was refused; fix the data directory's audit log and try again") from exc
        return AuditEntry(seq, at, kind, actor, payload, prev_hash, digest)

    def _open_head(self) -> int:
        """The head file's descriptor, reopened if the file was replaced or removed (where the verifier will look)."""
        if self._head_fd is not None and _identity(self.head_path) != self._head_identity:
            self.close()
        if self._head_fd is None:
            self._head_fd = os.open(self.head_path, os.O_RDWR | os.O_CREAT, 0o644)
            stat = os.fstat(self._head_fd)
            self._head_identity = (stat.st_dev, stat.st_ino)
        return self._head_fd

    def _current_head(self) -> tuple[int, str] | None:
        """(seq, hash) the head records, None when it records nothing (a new log); an unreadable head matches no
        entry."""
        return parsed_head(os.pread(self._open_head(), HEAD_SEQ_WIDTH + 66, 0))

    def _restore_head(self, head: tuple[int, str] | None) -> None:
        """Put back what the head recorded before a failed append (best effort: the append fails either way)."""
        try:
            if head is None:
                os.ftruncate(self._open_head(), 0)
            elif head[0] >= 0:
                self._write_head(*head)
        except OSError:
            log.error("event=audit_head_not_restored head=%s", head)

    def _write_head(self, seq: int, digest: str) -> None:
        """Overwrite the head in place: fixed width, one pwrite (a temp file and rename cost 3x the SQLite append)."""
        self._open_head()
        line = f"{seq:0{HEAD_SEQ_WIDTH}d} {digest}\n".encode()
        if os.pwrite(self._head_fd, line, 0) != len(line):
            raise OSError(f"short write to {self.head_path}")
        if self.fsync:  # before the entry's commit: after a power loss the head may name one entry more, never fewer
            os.fdatasync(self._head_fd)

    def close(self) -> None:
        if self._head_fd is not None:
            os.close(self._head_fd)
            self._head_fd = None

    def entries(self, kinds: list[str] | None = None, after: int = 0) -> Iterator[AuditEntry]:
        for seq, at, kind, actor, payload, prev_hash, digest in self.conn.execute(*entries_sql(kinds, after)):
            yield AuditEntry(seq, at, kind, actor, json.loads(payload), prev_hash, digest)

    def entries_at(self, seqs: list[int]) -> Iterator[AuditEntry]:
        ordered = sorted(set(seqs))
        for start in range(0, len(ordered), 500):
            chunk = ordered[start:start + 500]
            sql = f"{ENTRY_COLUMNS} WHERE seq IN ({','.join('?' * len(chunk))}) ORDER BY seq"
            for seq, at, kind, actor, payload, prev_hash, digest in self.conn.execute(sql, chunk):
                yield AuditEntry(seq, at, kind, actor, json.loads(payload), prev_hash, digest)

    def head(self) -> tuple[int, str] | None:
        """What the head file records: (seq, hash) of the last entry, to record elsewhere as an anchor."""
        return self._read_head()

    def verify(self, anchor: tuple[int, str] | None = None) -> VerifyResult:
        """The chain recomputed; with `anchor` (a head recorded elsewhere), also that the log still holds that entry."""
        result = self._verify_chain()
        if anchor is None or not result.ok:
            return result
        seq, digest = anchor
        found = self.conn.execute("SELECT hash FROM entries WHERE seq = ?", (seq,)).fetchone()
        if found is None or found[0] != digest:
            return VerifyResult(False, result.entries, seq, f"entry {seq} is not the one recorded as the anchor "
                                f"({'missing' if found is None else 'another hash'}): the log was rewritten or replaced")
        return result

    def _verify_chain(self) -> VerifyResult:
        # The head and the last entry read together under the write lock (appends write both under it), and the chain
        # checked up to that entry: entries appended meanwhile are not a break.
        try:
            with Transaction(self.conn) as tx:
                last = tx.execute("SELECT max(seq) FROM entries").fetchone()[0] or 0
                head = self._read_head()
        except sqlite3.OperationalError:  # a copy on read-only media: nobody appends to it
            last = self.conn.execute("SELECT max(seq) FROM entries").fetchone()[0] or 0
            head = self._read_head()
        expected_prev, count = GENESIS, 0
        rows = self.conn.execute(f"{ENTRY_COLUMNS} WHERE seq <= ? ORDER BY seq", (last,))
        for count, (seq, at, kind, actor, payload, prev_hash, digest) in enumerate(rows, start=1):
            if seq != count:
                return VerifyResult(False, count - 1, count, f"entry {count} is missing (next present is {seq})")
            if prev_hash != expected_prev:
                return VerifyResult(False, count, seq, f"entry {seq} does not link to entry {seq - 1}")
            if entry_hash(seq, at, kind, actor, payload, prev_hash) != digest:
                return VerifyResult(False, count, seq, f"entry {seq} was altered after it was written")
            expected_prev = digest
        if head is not None and head != (count, expected_prev):
            return VerifyResult(False, count, count + 1 if head[0] > count else head[0],
                                f"the log ends at entry {count} but its head records entry {head[0]}: entries were removed or replaced")
        if head is None and count:
            return VerifyResult(False, count, count, "the head file is missing")
        return VerifyResult(True, count)

    def _read_head(self) -> tuple[int, str] | None:
        try:
            return parsed_head(self.head_path.read_bytes())
        except FileNotFoundError:
            return None


def parsed_head(raw: bytes) -> tuple[int, str] | None:
    """A head line as (seq, hash); None when it records nothing (a new log), (-1, "unreadable") when it cannot be read."""
    if not raw.strip():
        return None
    try:
        seq, digest = raw.decode().split()
        return int(seq), digest
    except ValueError:
        return (-1, "unreadable")


def entries_sql(kinds: list[str] | None, after: int = 0) -> tuple[str, list[str | int]]:
    where: list[str] = ["seq > ?"] if after else []
    args: list[str | int] = [after] if after else []
    if kinds:
        where.append(f"kind IN ({','.join('?' * len(kinds))})")
        args += kinds
        if not set(UNINDEXED_KINDS) & set(kinds):
            where.append(INDEXED_KINDS)
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    return f"{ENTRY_COLUMNS}{condition} ORDER BY seq", args


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino)


def parse_at(entry: AuditEntry) -> datetime:
    return datetime.fromisoformat(entry.at)
