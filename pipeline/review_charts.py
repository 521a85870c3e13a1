"""The supervisor's review page in charts (D1.VI.B.2, D3.IV.B.3): queries per day per user, off-hours and refused
queries per user, and the taskings used, over the period the page's filters choose (the last 30 days by default)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

from pipeline.charts import Chart, bars, buckets, count_by
from pipeline.review import ActivityCounts

DEFAULT_DAYS = 30
MAX_BUCKETS = 120


@dataclass(frozen=True)
class ReviewCharts:
    start: datetime
    end: datetime
    unit: str  # day | month
    charts: list[Chart]

    @property
    def label(self) -> str:
        last = self.end - timedelta(microseconds=1)
        return f"{self.start:%Y-%m-%d} to {last:%Y-%m-%d} (UTC, by {self.unit})"


def chart_period(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """What the charts cover: the filters' [start, end), never past today (UTC); without a start, the 30 days before
    the end."""
    tomorrow = datetime.combine(now.astimezone(timezone.utc).date() + timedelta(days=1), time(), timezone.utc)
    end = min(end, tomorrow) if end is not None else tomorrow
    start = start if start is not None else end - timedelta(days=DEFAULT_DAYS)
    return min(start, end), end


def review_charts(found: ActivityCounts, start: datetime, end: datetime) -> ReviewCharts:
    """The charts of these queries (the page's filtered rows, all of them, not one page) over [start, end)."""
    if found.counts and (end - start).days > 92:  # a long choice (from 1970) starts with the first query there is
        start = max(start, datetime.fromisoformat(found.first_at).astimezone(timezone.utc).replace(
            day=1, hour=0, minute=0, second=0, microsecond=0))
    unit, categories = buckets(start, end)
    if len(categories) > MAX_BUCKETS:  # ten years of months at most: the most recent
        categories = categories[-MAX_BUCKETS:]
        start = datetime.fromisoformat(f"{categories[0]}-01").replace(tzinfo=timezone.utc)
    span = f"from {start:%Y-%m-%d} to {end - timedelta(microseconds=1):%Y-%m-%d} (UTC)"
    groups = found.counts
    per_user = count_by(((a.user, a.day if unit == "day" else a.day[:7]) for a in groups), categories,
                        [a.queries for a in groups])
    per_user = dict(sorted(per_user.items())) or {"queries": [0] * len(categories)}
    users = sorted({a.user for a in groups})
    off, refused, per_tasking = Counter(), Counter(), Counter()
    for a in groups:
        off[a.user] += a.off_hours
        refused[a.user] += a.queries if a.outcome == "refused" else 0
        per_tasking[a.tasking_id, a.outcome] += a.queries
    flagged = {"off-hours": [off[u] for u in users], "refused": [refused[u] for u in users]}
    taskings = sorted({a.tasking_id for a in groups})
    used = {outcome: [per_tasking[t, outcome] for t in taskings] for outcome in ("run", "refused")}
    return ReviewCharts(start, end, unit, [
        bars("queries-per-day", f"Queries per {unit}, by user",
             f"Every query and refused query logged {span}, stacked by who made it.", unit, categories, per_user),
        bars("off-hours-refused", "Off-hours and refused queries, by user",
             f"Queries {span} made outside the user's duty hours, and queries refused.", "user", users, flagged,
             stacked=False),
        bars("taskings-used", "Taskings used",
             f"Queries {span} per tasking they named, run or refused (a refused query may name a tasking that does "
             "not exist).", "tasking", taskings, used, horizontal=True),
    ])
