"""Duty hours (D1.VI.B.2, D3.IV.A.11.f): a daily HH:MM-HH:MM window in one time zone; queries outside it are highlighted."""
from __future__ import annotations

import functools
import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.errors import FcmonError

WINDOW = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
HINT = "write the window as HH:MM-HH:MM in 24-hour time, e.g. 08:00-16:00 (22:00-06:00 spans midnight)"


@functools.lru_cache(maxsize=1024)  # read once per window, not once per query listed
def parse_window(text: str) -> tuple[time, time]:
    match = WINDOW.match(text.strip())
    try:
        if not match:
            raise ValueError(text)
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = time(h1, m1), time(h2, m2)
    except ValueError as exc:
        raise FcmonError(f"bad duty hours {text!r}", HINT) from exc
    if start == end:
        raise FcmonError(f"bad duty hours {text!r}: the window is empty", HINT)
    return start, end


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise FcmonError(f"unknown time zone {name!r}", "set FCMON_DUTY_TIMEZONE to an IANA name, e.g. America/Chicago") from exc


def off_hours(moment: datetime, window: str | None, tz: ZoneInfo) -> bool | None:
    """True outside the window, False inside, None when the user has no duty hours (nothing to highlight)."""
    if not window:
        return None
    start, end = parse_window(window)
    local = moment.astimezone(tz).time()
    inside = start <= local < end if start < end else (local >= start or local < end)
    return not inside


SAMPLE = timedelta(hours=1)  # the zone's offset is read once an hour and between readings that differ, to the second


def utc_offsets(first: datetime, last: datetime, tz: ZoneInfo) -> list[tuple[datetime, int]]:
    """The zone's UTC offsets from `first` to `last` (aware): (since, seconds) pieces, the first since `first`, each
    until the next. Read as `off_hours` reads them (astimezone), once an hour and, where two readings differ, down to
    the second of each change (tz database changes fall on whole seconds and never change and change back within an
    hour)."""
    def offset(moment: datetime) -> int:
        return int(moment.astimezone(tz).utcoffset().total_seconds())

    def changes(low: datetime, high: datetime, before: int, after: int) -> list[tuple[datetime, int]]:
        if high - low <= timedelta(seconds=1):
            return [(high, after)]
        middle = low + (high - low) // 2
        middle = middle.replace(microsecond=0)
        between = offset(middle)
        return ((changes(low, middle, before, between) if between != before else [])
                + (changes(middle, high, between, after) if after != between else []))

    low = first.replace(microsecond=0)
    pieces = [(low, offset(low))]
    while low < last:
        high = min(low + SAMPLE, last.replace(microsecond=0) + timedelta(seconds=1))
        after = offset(high)
        if after != pieces[-1][1]:
            pieces += changes(low, high, pieces[-1][1], after)
        low = high
    return pieces
