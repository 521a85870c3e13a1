"""Periods of time as commands take them: --from/--to dates, and report periods (2026, 2026-Q4, 2026-11)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from pipeline.errors import FcmonError

PERIOD = re.compile(r"^(\d{4})(?:-(?:Q([1-4])|(\d{2})))?$")
PERIOD_HINT = "use a year (2026), a quarter (2026-Q4) or a month (2026-11)"
DATE_HINT = "use ISO 8601, e.g. 2026-11-30 or 2026-11-30T17:00Z"
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(9000, 1, 2, tzinfo=timezone.utc)  # --to 8999-12-31


def parse_bound(value: str, option: str, *, end: bool = False) -> datetime:
    """A date or time in UTC unless it says otherwise; a bare date as --to means the end of that day. Between 1970
    and 9000: the index keeps no other times, and the years 1 and 9999 overflow in arithmetic."""
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        if end and "T" not in value and " " not in value.strip():
            parsed += timedelta(days=1)
        in_range = EARLIEST <= parsed.astimezone(timezone.utc) < LATEST
    except OverflowError as exc:
        raise FcmonError(f"{option} {value!r} is outside the years 1970 to 8999", DATE_HINT) from exc
    except ValueError as exc:
        raise FcmonError(f"{option} {value!r} is not a date or time", DATE_HINT) from exc
    if not in_range:
        raise FcmonError(f"{option} {value!r} is outside the years 1970 to 8999", DATE_HINT)
    return parsed


def date_range(start: str, end: str) -> tuple[datetime, datetime]:
    """[--from, --to): --to is inclusive of its whole day when it is a bare date."""
    low, high = parse_bound(start, "--from"), parse_bound(end, "--to", end=True)
    if high <= low:
        raise FcmonError(f"--to {end} is not after --from {start}", "give --from before --to")
    return low, high


def parse_period(text: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC of a year, a quarter or a month."""
    match = PERIOD.match(text.strip())
    if not match:
        raise FcmonError(f"bad period {text!r}", PERIOD_HINT)
    year, quarter, month = int(match.group(1)), match.group(2), match.group(3)
    if quarter:
        first, months = (int(quarter) - 1) * 3 + 1, 3
    elif month:
        first, months = int(month), 1
        if not 1 <= first <= 12:
            raise FcmonError(f"bad period {text!r}: no month {first}", PERIOD_HINT)
    else:
        first, months = 1, 12
    start = datetime(year, first, 1, tzinfo=timezone.utc)
    last = first + months
    end = datetime(year + (last - 1) // 12, (last - 1) % 12 + 1, 1, tzinfo=timezone.utc)
    return start, end
