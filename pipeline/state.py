"""State kept in the data directory's SQLite: users, taskings, quarantined items, rejection records.

Rejections hold no content: only the item id, its content hash and why it was refused.
"""
from __future__ import annotations

import functools
import re
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.errors import FcmonError, NotFound
from pipeline.models import CollectedItem, GuardDecision, Role, Tasking, utcnow
from pipeline.sqlite import Transaction, connect

ROLES: tuple[str, ...] = Role.__args__  # type: ignore[attr-defined]

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, role TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS taskings (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
    item_id TEXT PRIMARY KEY, tasking_id TEXT, item TEXT NOT NULL, decision TEXT NOT NULL,
    held_at TEXT NOT NULL, purge_after TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rejections (
    item_id TEXT PRIMARY KEY, tasking_id TEXT, content_sha256 TEXT, rule TEXT NOT NULL, clause TEXT NOT NULL,
    message TEXT NOT NULL, decided_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS packets (id TEXT PRIMARY KEY, tasking_id TEXT NOT NULL, body TEXT NOT NULL);
"""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    created_at: str
    duty_hours: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "role": self.role, "created_at": self.created_at, "duty_hours": self.duty_hours}


@functools.lru_cache(maxsize=1024)
def parsed_tasking(body: str) -> Tasking:
    """Taskings are read from the database on every lookup (a revocation counts at once); only the parse of the same
    stored text is shared, which the model being frozen makes safe (every audited search looks one up)."""
    return Tasking.model_validate_json(body)


USER_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
USER_COLUMNS = "name, role, created_at, duty_hours"
ADDED_USER_COLUMNS = {"duty_hours": "TEXT", "password_hash": "TEXT"}  # additive migration of older data directories


class State:
    def __init__(self, path: Path):
        self.conn = connect(path)
        self.conn.executescript(SCHEMA)
        self._add_user_columns()

    def _add_user_columns(self) -> None:
        with Transaction(self.conn) as tx:
            present = {row[1] for row in tx.execute("PRAGMA table_info(users)")}
            for column, kind in ADDED_USER_COLUMNS.items():
                if column not in present:
                    tx.execute(f"ALTER TABLE users ADD COLUMN {column} {kind}")

    # users
    def add_user(self, name: str, role: str, duty_hours: str | None = None) -> User:
        if role not in ROLES:
            raise FcmonError(f"unknown role {role!r}", f"choose one of {', '.join(ROLES)}")
        if not USER_NAME.fullmatch(name):  # names are printed in audit listings and headers: no controls, no spaces
            raise FcmonError(f"user name {name!r} is not allowed", "use 1-64 letters, digits, '.', '_', '-' or '@'")
        user = User(name, role, utcnow().isoformat(), duty_hours)
        with Transaction(self.conn) as tx:
            if tx.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise FcmonError(f"user {name!r} already exists", "pick another name, or `fcmon user list` to see who exists")
            tx.execute("INSERT INTO users (name, role, created_at, duty_hours) VALUES (?, ?, ?, ?)",
                       (user.name, user.role, user.created_at, user.duty_hours))
        return user

    def set_duty_hours(self, name: str, duty_hours: str | None) -> User:
        self.user(name)
        self.conn.execute("UPDATE users SET duty_hours = ? WHERE name = ?", (duty_hours, name))
        return self.user(name)

    def set_password_hash(self, name: str, password_hash: str) -> None:
        self.user(name)
        self.conn.execute("UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, name))

    def password_hash(self, name: str) -> str | None:
        row = self.conn.execute("SELECT password_hash FROM users WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def users(self) -> list[User]:
        return [User(*row) for row in self.conn.execute(f"SELECT {USER_COLUMNS} FROM users ORDER BY name")]

    def user(self, name: str) -> User:
        row = self.conn.execute(f"SELECT {USER_COLUMNS} FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"unknown user {name!r}", "an administrator adds users with `fcmon user add NAME --role ROLE`")
        return User(*row)

    def roles(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT name, role FROM users"))

    # taskings
    def put_tasking(self, tasking: Tasking, *, new: bool = False) -> None:
        with Transaction(self.conn) as tx:
            if new and tx.execute("SELECT 1 FROM taskings WHERE id = ?", (tasking.id,)).fetchone():
                raise FcmonError(f"tasking {tasking.id} already exists", "give the new tasking another id")
            tx.execute("INSERT INTO taskings VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                       (tasking.id, tasking.model_dump_json()))

    def tasking(self, tasking_id: str) -> Tasking:
        row = self.conn.execute("SELECT body FROM taskings WHERE id = ?", (tasking_id,)).fetchone()
        if row is None:
            raise NotFound(f"unknown tasking {tasking_id!r}", "see `fcmon tasking list` for the taskings that exist")
        return parsed_tasking(row[0])

    def taskings(self) -> list[Tasking]:
        return [parsed_tasking(body) for (body,) in self.conn.execute("SELECT body FROM taskings ORDER BY id")]

    # situational-awareness packets (pipeline/packets.py)
    def put_packet(self, packet_id: str, tasking_id: str, body: str) -> None:
        self.conn.execute("INSERT INTO packets VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                          (packet_id, tasking_id, body))

    def packet(self, packet_id: str) -> str:
        row = self.conn.execute("SELECT body FROM packets WHERE id = ?", (packet_id,)).fetchone()
        if row is None:
            raise NotFound(f"no packet {packet_id!r}", "see `fcmon packet list` for the packets you may see")
        return row[0]

    def packets(self) -> list[str]:
        return [body for (body,) in self.conn.execute("SELECT body FROM packets ORDER BY rowid")]

    # guard outcomes
    def hold(self, item: CollectedItem, decision: GuardDecision, quarantine_days: int) -> None:
        self.conn.execute(HOLD_SQL, _held_row(item, decision, quarantine_days, utcnow()))

    def reject(self, decision: GuardDecision) -> None:
        self.conn.execute(REJECT_SQL, _rejection_row(decision))

    def record_outcomes(self, held: list[tuple[CollectedItem, GuardDecision]], rejected: list[GuardDecision],
                        quarantine_days: int) -> None:
        """A worker batch's holds and rejections in one transaction (one commit per batch, not per item)."""
        if not held and not rejected:
            return
        now = utcnow()
        with Transaction(self.conn) as tx:
            tx.executemany(HOLD_SQL, [_held_row(item, decision, quarantine_days, now) for item, decision in held])
            tx.executemany(REJECT_SQL, [_rejection_row(decision) for decision in rejected])

    def quarantined(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT item_id, tasking_id, decision, held_at, purge_after FROM quarantine ORDER BY held_at")
        return [{"item_id": i, "tasking_id": t, "decision": json.loads(d), "held_at": h, "purge_after": p} for i, t, d, h, p in rows]

    def rejections_by_rule(self, since: str | None = None, until: str | None = None) -> dict[str, int]:
        """Rejection counts per rule, optionally for decisions in [since, until) (ISO 8601 UTC)."""
        return dict(self.conn.execute(
            "SELECT rule, count(*) FROM rejections WHERE decided_at >= ? AND decided_at < ? GROUP BY rule ORDER BY rule",
            (since or "", until or "\uffff")))

    def counts(self) -> dict[str, int]:
        (held,) = self.conn.execute("SELECT count(*) FROM quarantine").fetchone()
        (rejected,) = self.conn.execute("SELECT count(*) FROM rejections").fetchone()
        return {"quarantined": held, "rejected": rejected}

    # quarantine decisions (pipeline/quarantine.py)
    def held(self, item_id: str) -> tuple[CollectedItem, GuardDecision, str, str]:
        row = self.conn.execute("SELECT item, decision, held_at, purge_after FROM quarantine WHERE item_id = ?", (item_id,)).fetchone()
        if row is None:
            raise NotFound(f"no quarantined item {item_id!r}", "see `fcmon quarantine list` for the items held")
        return CollectedItem.model_validate_json(row[0]), GuardDecision.model_validate_json(row[1]), row[2], row[3]

    def release(self, item_id: str) -> None:
        """The held content leaves the quarantine (kept and indexed, or purged)."""
        self.conn.execute("DELETE FROM quarantine WHERE item_id = ?", (item_id,))

    def purge_held(self, decision: GuardDecision) -> None:
        """Drop the held content, keeping only id, hash and reason as a rejection record, in one transaction."""
        first = decision.reasons[0]
        with Transaction(self.conn) as tx:
            tx.execute("DELETE FROM quarantine WHERE item_id = ?", (decision.item_id,))
            tx.execute("INSERT INTO rejections VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (item_id) DO UPDATE SET rule = excluded.rule, "
                       "clause = excluded.clause, message = excluded.message, decided_at = excluded.decided_at",
                       (decision.item_id, decision.tasking_id, decision.content_sha256, first.rule, first.clause,
                        first.message, decision.decided_at.isoformat()))

    def expired_holds(self, now_iso: str) -> list[str]:
        return [i for (i,) in self.conn.execute("SELECT item_id FROM quarantine WHERE purge_after <= ? ORDER BY purge_after", (now_iso,))]


HOLD_SQL = "INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (item_id) DO NOTHING"
REJECT_SQL = "INSERT INTO rejections VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (item_id) DO NOTHING"


def _held_row(item: CollectedItem, decision: GuardDecision, quarantine_days: int, now: datetime) -> tuple:
    return (item.id, item.tasking_id, item.model_dump_json(), decision.model_dump_json(),
            now.isoformat(), (now + timedelta(days=quarantine_days)).isoformat())


def _rejection_row(decision: GuardDecision) -> tuple:
    first = decision.reasons[0]
    return (decision.item_id, decision.tasking_id, decision.content_sha256, first.rule, first.clause,
            first.message, decision.decided_at.isoformat())
