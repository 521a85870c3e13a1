"""The timeline chart (matplotlib, SVG) and the counts it draws: pure, no I/O."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import pytest

from pipeline.charts_timeline import bar_chart_svg
from pipeline.packet_document import sources, timeline
from tests.factories import make_record

SVG = "{http://www.w3.org/2000/svg}"


def test_the_same_numbers_give_the_same_bytes_and_an_inline_svg():
    chart = bar_chart_svg(["2026-11-01", "2026-11-02", "2026-11-03"], [2, 0, 5], "Records per day")
    assert chart == bar_chart_svg(["2026-11-01", "2026-11-02", "2026-11-03"], [2, 0, 5], "Records per day")
    assert chart != bar_chart_svg(["2026-11-01", "2026-11-02", "2026-11-03"], [2, 1, 5], "Records per day")
    assert chart.startswith("<svg ") and "<?xml" not in chart and "<!DOCTYPE" not in chart  # goes inline in HTML
    root = ET.fromstring(chart)
    assert root.get("role") == "img" and root.get("aria-label") == "Records per day"
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert {"Records per day", "2026-11-01", "2026-11-03"} <= texts  # text stays text
    assert "<dc:date>" not in chart and "<script" not in chart


def test_a_long_period_shows_at_most_a_dozen_labels_and_the_title_is_escaped():
    labels = [f"d{n}" for n in range(60)]
    root = ET.fromstring(bar_chart_svg(labels, list(range(60)), 'Records <per> "day" & more'))
    assert root.get("aria-label") == 'Records <per> "day" & more'
    assert len({t.text for t in root.iter(f"{SVG}text")} & set(labels)) <= 12


def test_labels_and_values_must_pair():
    with pytest.raises(ValueError, match="2 labels for 1 values"):
        bar_chart_svg(["a", "b"], [1], "x")


def at(day: int, month: int = 11):
    return make_record(url=f"https://forum.example/p/{month}-{day}", published_at=datetime(2026, month, day, 23, 30, tzinfo=timezone.utc))


def test_records_are_counted_per_day_with_the_empty_days_and_per_month_past_two_months():
    assert timeline([at(3), at(1), at(3)]) == ("day", [("2026-11-01", 1), ("2026-11-02", 0), ("2026-11-03", 2)])
    unit, months = timeline([at(1, 9), at(20, 9), at(2, 12)])
    assert unit == "month" and months == [("2026-09", 2), ("2026-10", 0), ("2026-11", 0), ("2026-12", 1)]


def test_sources_are_counted_by_kind_and_host():
    records = [at(1), at(2), make_record(source_kind="rss_item", url="https://news.example/a")]
    assert sources(records) == [{"kind": "forum_post", "host": "forum.example", "count": 2},
                                {"kind": "rss_item", "host": "news.example", "count": 1}]
