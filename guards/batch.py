"""The guard chain over JSONL files, storing nothing (`fcmon guard-check`).

A malformed item line (not JSON, not UTF-8, not a valid item, or longer than LINE_LIMIT times the crawler's body
limit) yields a rejected decision with rule `schema`, keyed by the item's own id when one can be read; a
malformed tasking line, or an id on more than one line, makes the items under that id rejected with the reason;
neither stops the batch.
"""
from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from pydantic import ValidationError

from guards.base import GuardContext
from guards.chain import GuardChain, rejected_for_schema
from guards.purpose import LawfulPurpose
from pipeline.errors import FcmonError, first_error
from pipeline.models import SCHEMA_VERSION, CollectedItem, GuardDecision, Reason, Tasking, UserRole, utcnow
from pipeline.settings import Settings


LINE_LIMIT = 6  # JSON escapes a character in at most 6 bytes (\uXXXX): a longer line holds more than a body could


def jsonl_lines(path: Path) -> list[bytes]:
    """A JSONL file's lines as bytes (one that is not UTF-8 is one bad line), split on LF, CRLF or CR, without a BOM."""
    return path.read_bytes().removeprefix(codecs.BOM_UTF8).splitlines()


def read_taskings(path: Path) -> tuple[dict[str, Tasking], dict[str, str]]:
    """Valid taskings by id, and the error of each invalid line (by its id when it has one, else by line). An id on
    more than one line is invalid: which version holds is not for the chain to guess."""
    taskings: dict[str, Tasking] = {}
    invalid: dict[str, str] = {}
    lines_of: dict[str, list[int]] = {}
    for number, line in enumerate(jsonl_lines(path), start=1):
        if not line.strip():
            continue
        try:
            tasking = Tasking.model_validate_json(line)
            taskings[tasking.id] = tasking
            key = tasking.id
        except ValidationError as exc:
            try:
                key = str(json.loads(line).get("id") or f"line {number}")
            except (ValueError, AttributeError):
                key = f"line {number}"
            invalid[key] = f"{path.name} line {number}: {first_error(exc, 'tasking')}"
        lines_of.setdefault(key, []).append(number)
    for key, numbers in lines_of.items():
        if len(numbers) > 1:
            taskings.pop(key, None)
            invalid[key] = f"{path.name} lines {', '.join(map(str, numbers))}: tasking {key} is given more than once"
    return taskings, invalid


def read_roles(path: Path) -> dict[str, str]:
    roles = {}
    for number, line in enumerate(jsonl_lines(path), start=1):
        if not line.strip():
            continue
        try:
            user = UserRole.model_validate_json(line)
        except ValidationError as exc:
            raise FcmonError(f"{path} line {number}: {first_error(exc, 'user')}",
                             'each line is {"name": ..., "role": ...} (config/schemas/user-role.schema.json)') from exc
        roles[user.name] = user.role
    return roles


def check_items(lines: Iterable[bytes], taskings: Mapping[str, Tasking], invalid_taskings: Mapping[str, str],
                roles: Mapping[str, str] | None, settings: Settings) -> Iterator[GuardDecision]:
    """One decision per non-blank line; the lines are bytes, so that one that is not UTF-8 is one rejection."""
    chain = GuardChain.from_settings(settings)
    context = GuardContext(taskings=taskings, roles=roles, now=utcnow(), settings=settings)
    for line in lines:
        if not line.strip():
            continue
        if len(line) > LINE_LIMIT * settings.crawl_max_bytes:
            yield rejected_for_schema(line, f"the item line holds {len(line)} bytes, more than {LINE_LIMIT} x "
                                      "crawl_max_bytes: not read", context.now, read_id=False)
            continue
        try:
            item = CollectedItem.model_validate_json(line)
            if item.schema_version != SCHEMA_VERSION:
                raise ValueError(f"schema_version {item.schema_version} is not {SCHEMA_VERSION}")
        except (ValidationError, ValueError) as exc:
            yield rejected_for_schema(line, first_error(exc, "item"), context.now)
            continue
        if item.tasking_id in invalid_taskings and item.tasking_id not in taskings:
            yield GuardDecision(item_id=item.id, tasking_id=item.tasking_id, decision="rejected", content_sha256=item.content_sha256,
                                decided_at=context.now, reasons=[Reason(rule=LawfulPurpose.rule, clause=LawfulPurpose.clause,
                                message=f"tasking {item.tasking_id} is invalid: {invalid_taskings[item.tasking_id]}")])
            continue
        yield chain.decide(item, context)
