"""The packet's document (one template for HTML and PDF) and its timeline's counts: pure, no I/O."""
from __future__ import annotations

from datetime import datetime, timezone


from pipeline.audit import AuditEntry
from pipeline.models import DisseminationEvent
from pipeline.packet_document import packet_html, sources, timeline
from pipeline.packets import Packet
from tests.factories import make_record
from tests.factories_pipeline import make_tasking

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


def test_a_packet_without_a_case_number_names_its_tasking_on_every_page():
    tasking = make_tasking(kind="information_gathering", case_number=None, predicate=None, criminal_activity=None,
                           title="Fair week crowd safety")
    record = make_record(published_at=None, fetched_at=datetime(2026, 11, 2, 1, tzinfo=timezone.utc), title='<b>"Tickets"</b>')
    at = datetime(2026, 11, 3, 9, tzinfo=timezone.utc)
    packet = Packet(id="P-1", tasking_id="T-1", record_ids=[record.id], recipient="Lt. Ruiz", recipient_agency="County EMS",
                    need_to_know="crowd plan", right_to_know="public-safety partner", requested_by="dana", requested_at=at,
                    status="approved", decided_by="sam", decided_at=at, decision_note="fits")
    event = DisseminationEvent(id="e1", at=at, packet_id="P-1", tasking_id="T-1", disseminated_by="dana", approved_by="sam",
                               recipient="Lt. Ruiz", recipient_agency="County EMS", need_to_know="crowd plan",
                               right_to_know="public-safety partner", record_ids=[record.id])
    entry = AuditEntry(7, at.isoformat(), "packet.disseminate", "dana", {}, "0" * 64, "f" * 64)
    page = packet_html(packet, tasking, [record], event, entry)
    assert page.count("Case none (information gathering tasking T-1)") >= 2  # the running header and the cover
    assert "Predicate" not in page and "Fair week crowd safety" in page
    assert "&lt;b&gt;&#34;Tickets&#34;&lt;/b&gt;" in page and "<b>" not in page
    assert "<tr><td>2026-11-02</td><td class=\"n\">1</td></tr>" in page  # collected, since nothing was published
    assert f"--anchor 7:{'f' * 64}" in page
