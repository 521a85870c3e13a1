"""The audit mirror: with bus=kafka every audit entry, once appended to the local chain, is also produced to fcm.audit.

The local hash chain is the authority and is fail-closed (no entry, no action). The mirror is fail-open: a
Kafka failure is logged (event=audit_mirror_failed with the entry's seq) and the action goes on, because the
entry is already durable locally; the mirror's readers detect a gap from seq and prev_hash, and
`fcmon audit list --json` on the data directory has every entry to fill it.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Callable, Iterator

from pipeline.audit import AuditEntry, AuditLog, VerifyResult
from pipeline.bus import AUDIT, Bus

log = logging.getLogger(__name__)


class MirroredAuditLog:
    def __init__(self, local: AuditLog, bus: Callable[[], Bus]):
        self.local, self.bus = local, bus  # opened on first use, inside the fail-open path

    def append(self, kind: str, actor: str, payload: dict[str, Any], *, over_a_break: bool = False) -> AuditEntry:
        entry = self.local.append(kind, actor, payload, over_a_break=over_a_break)
        try:
            bus = self.bus()
            bus.produce(AUDIT, str(entry.seq), json.dumps(entry.to_dict(), default=str).encode())
            bus.flush()
        except Exception as exc:  # fail-open: the local chain already holds the entry
            log.error("event=audit_mirror_failed seq=%d kind=%s error=%r", entry.seq, kind, str(exc))
        return entry

    def entries(self, kinds: list[str] | None = None, after: int = 0) -> Iterator[AuditEntry]:
        return self.local.entries(kinds, after)

    def entries_at(self, seqs: list[int]) -> Iterator[AuditEntry]:
        return self.local.entries_at(seqs)

    def verify(self, anchor: tuple[int, str] | None = None) -> VerifyResult:
        return self.local.verify(anchor)

    def head(self) -> tuple[int, str] | None:
        return self.local.head()

    def __getattr__(self, name: str) -> Any:  # adapter-specific extras of the local log (e.g. queries by kind)
        return getattr(self.local, name)
