"""The review page's charts count in SQLite (QueryReviews.activity): the same numbers as the straightforward
definition, query by query from the audit log, with duty hours as they stand, across DST changes of the duty zone,
refused queries and every filter. Real SQLite through the real QueryReviews and audit log; only the clock the log
stamps entries with is chosen (so queries fall where the test wants them)."""
from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline.charts import bucket_of, buckets, count_by
from pipeline.duty import off_hours, utc_offsets, zone
from pipeline.models import QueryEvent
from pipeline.review import QueryReviews, in_period
from pipeline.review_charts import MAX_BUCKETS, chart_period, review_charts
from tests.datadirs import make_app

UTC = timezone.utc
ORDINARY = datetime(2026, 11, 2, 0, tzinfo=UTC)
CHANGES = {  # each duty zone's UTC offset changes (DST, one of 30 minutes, two zones of :30 offsets), and a night of none
    "America/Chicago": ["2026-03-08T08:00", "2026-11-01T07:00"], "Europe/London": ["2026-03-29T01:00", "2026-10-25T01:00"],
    "Australia/Lord_Howe": ["2026-04-04T15:00", "2026-10-03T15:30"], "America/St_Johns": ["2026-03-08T05:30", "2026-11-01T04:30"],
    "Asia/Kolkata": [], "UTC": []}
ZONES = list(CHANGES)
USERS = ["alice", "dana", "ghost"]  # ghost: a user the state does not hold (the default window applies)

windows = st.one_of(st.none(), st.builds(lambda h1, m1, h2, m2: f"{h1:02}:{m1:02}-{h2:02}:{m2:02}",
                                         st.integers(0, 23), st.sampled_from([0, 30, 59]), st.integers(0, 23),
                                         st.sampled_from([0, 1, 30])).filter(lambda w: w[:5] != w[6:]))


@st.composite
def scenarios(draw):
    """A duty zone, and queries (at, user, tasking, refused, review mark) within a day and a half of its changes."""
    tz = draw(st.sampled_from(ZONES))
    anchors = [datetime.fromisoformat(f"{a}+00:00") for a in CHANGES[tz]] + [ORDINARY]
    seconds = st.one_of(st.integers(-36 * 3600, 36 * 3600),  # anywhere, or next to a half hour (a window's edge)
                        st.builds(lambda half_hours, near: half_hours * 1800 + near, st.integers(-72, 72),
                                  st.sampled_from([-61, -60, -1, 0, 1, 59, 60])))
    moments = st.builds(lambda anchor, s, micro: anchor + timedelta(seconds=s, microseconds=micro),
                        st.sampled_from(anchors), seconds, st.sampled_from([0, 0, 1, 500_000, 999_999]))
    queries = draw(st.lists(st.tuples(moments, st.sampled_from(USERS), st.sampled_from(["T-1", "T-2", "T-X"]), st.booleans(),
                                      st.sampled_from([None, None, "reviewed", "flagged"])), min_size=1, max_size=30))
    wanted = draw(st.fixed_dictionaries({"user": st.sampled_from([None, None, "alice", "ghost"]),
                                         "tasking_id": st.sampled_from([None, None, "T-1"]),
                                         "statuses": st.sampled_from([(), (), ("unreviewed",), ("flagged",)]),
                                         "start": st.one_of(st.none(), moments), "end": st.one_of(st.none(), moments)}))
    return tz, queries, wanted, draw(moments)


def per_query(log, reviews: QueryReviews, user, tasking_id, statuses, start, end) -> list[tuple[int, str, str, str, str, bool]]:
    """(seq, at, user, tasking, outcome, off-hours) of each query the filters select, read from the log one by one."""
    settings_, tz = reviews.settings, zone(reviews.settings.duty_timezone)
    windows = {u.name: u.duty_hours for u in reviews.state.users()}
    status = {e.payload["query_id"]: e.payload["status"] for e in log.entries(["query.review"])}
    rows = []
    for e in log.entries(["query", "query.refused"]):
        at = datetime.fromisoformat(e.at).astimezone(UTC)
        p = e.payload
        if ((user and p["user"] != user) or (tasking_id and p["tasking_id"] != tasking_id)
                or (statuses and status.get(p["id"], "unreviewed") not in statuses) or not in_period(at.isoformat(), start, end)):
            continue
        off = bool(off_hours(at, windows.get(p["user"]) or settings_.duty_hours_default, tz))
        rows.append((e.seq, at.isoformat(), p["user"], p["tasking_id"], "refused" if e.kind == "query.refused" else "run", off))
    return rows


def reference_charts(found, start: datetime, end: datetime) -> list:
    """The charts' numbers counted query by query (the page's counting before it moved into SQLite)."""
    if found and (end - start).days > 92:
        start = max(start, datetime.fromisoformat(found[0][1]).replace(day=1, hour=0, minute=0, second=0, microsecond=0))
    unit, categories = buckets(start, end)
    if len(categories) > MAX_BUCKETS:
        categories = categories[-MAX_BUCKETS:]
        start = datetime.fromisoformat(f"{categories[0]}-01").replace(tzinfo=UTC)
    per_user: dict[str, list[int]] = {}
    for _, at, user, _, _, _ in found:
        if bucket_of(at, unit) in categories:
            per_user.setdefault(user, [0] * len(categories))[categories.index(bucket_of(at, unit))] += 1
    per_user = dict(sorted(per_user.items())) or {"queries": [0] * len(categories)}
    users = sorted({r[2] for r in found})
    off, refused = Counter(r[2] for r in found if r[5]), Counter(r[2] for r in found if r[4] == "refused")
    taskings = sorted({r[3] for r in found})
    per_tasking = Counter((r[3], r[4]) for r in found)
    return [start, unit, (categories, per_user), (users, {"off-hours": [off[u] for u in users], "refused": [refused[u] for u in users]}),
            (taskings, {o: [per_tasking[t, o] for t in taskings] for o in ("run", "refused")})]


def numbers(charts) -> list:
    return [charts.start, charts.unit, *((list(c.categories), {name: list(v) for name, v in c.series}) for c in charts.charts)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), before=st.tuples(windows, windows), after=st.one_of(st.none(), st.tuples(windows, windows)),
       default=windows)
def test_the_counts_in_sqlite_are_the_counts_query_by_query(scenario, before, after, default):
    tz, queries, wanted, now = scenario
    root = Path(tempfile.mkdtemp(prefix="fcmon-review-activity-"))
    try:
        app = make_app(root / "d", duty_timezone=tz, duty_hours_default=default)
        for name, window in zip(("alice", "dana"), before):
            app.state.set_duty_hours(name, window)
        for i, (at, user, tasking, refused, status) in enumerate(queries):  # in log order, not time order
            event = QueryEvent(id=f"q{i}", at=at, user=user, role="analyst", tasking_id=tasking, query="x", interface="cli")
            with mock.patch("pipeline.audit.utcnow", return_value=at):
                payload = event.model_dump(mode="json")
                app.audit.append("query.refused" if refused else "query", user,
                                 {**payload, "refusal": "no"} if refused else payload)
                if status:
                    app.audit.append("query.review", "sam", {"query_id": event.id, "status": status, "note": "n",
                                                             "user": user, "tasking_id": tasking})
        reviews = QueryReviews(app.state, app.audit, app.settings)
        reviews.sync()
        for name, window in zip(("alice", "dana"), after or ()):  # duty hours changed after the queries
            app.state.set_duty_hours(name, window)

        for chosen in (wanted, {}):  # the filters drawn, and none (every query counted)
            counted = reviews.activity(**chosen)
            rows = per_query(app.audit, reviews, **{"user": None, "tasking_id": None, "statuses": (), "start": None,
                                                    "end": None, **chosen})
            assert counted.first_at == (rows[0][1] if rows else None)
            groups = {}
            for r in rows:
                queries, off = groups.get((r[1][:10], r[2], r[3], r[4]), (0, 0))
                groups[r[1][:10], r[2], r[3], r[4]] = (queries + 1, off + r[5])
            assert {(a.day, a.user, a.tasking_id, a.outcome): (a.queries, a.off_hours) for a in counted.counts} == groups

        start, end = chart_period(wanted["start"], wanted["end"], now)
        in_chart = {**wanted, "start": start, "end": end}
        with mock.patch("pipeline.charts._draw", return_value=""):  # the numbers, not the drawing
            assert numbers(review_charts(reviews.activity(**in_chart), start, end)) == \
                reference_charts(per_query(app.audit, reviews, **in_chart), start, end)
        app.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_count_by_counts_pairs_or_their_weights():
    pairs = [("alice", "d1"), ("dana", "d2"), ("alice", "d1"), ("alice", "d9")]  # d9: not a category, left out
    assert count_by(pairs, ["d1", "d2"]) == {"alice": [2, 0], "dana": [0, 1]}
    assert count_by(pairs, ["d1", "d2"], [3, 4, 5, 6]) == {"alice": [8, 0], "dana": [0, 4]}


@given(tz=st.sampled_from(ZONES + ["America/Sao_Paulo", "Europe/Dublin", "Pacific/Apia"]),
       first=st.datetimes(datetime(1990, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC)),
       hours=st.integers(0, 24 * 400), probes=st.lists(st.integers(0, 10 ** 9), max_size=20))
@settings(max_examples=50, deadline=None)
def test_utc_offsets_are_the_offsets_off_hours_reads(tz, first, hours, probes):
    last = first + timedelta(hours=hours)
    pieces = utc_offsets(first, last, zone(tz))
    assert pieces[0][0] <= first and all(a[0] < b[0] and a[1] != b[1] for a, b in zip(pieces, pieces[1:]))
    for since, offset in pieces[1:]:
        assert (since - timedelta(microseconds=1)).astimezone(zone(tz)).utcoffset() != since.astimezone(zone(tz)).utcoffset()
    for probe in probes:
        moment = first + (last - first) * (probe / 10 ** 9)
        expected = [o for since, o in pieces if since <= moment][-1]
        assert moment.astimezone(zone(tz)).utcoffset().total_seconds() == expected
