"""A disseminated packet as a document: one Jinja2 template (pipeline/templates/packet.html, autoescaped) for the HTML
and the PDF alike, filled from the packet, its tasking, its records, the DisseminationEvent and its audit entry.

The document is a function of those alone (no clock, no randomness), so the same dissemination renders to the same
HTML and the same PDF bytes. Crawled text is never markup here: every value is escaped by the template.
"""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from pipeline.audit import AuditEntry
from pipeline.charts import bar_chart
from pipeline.errors import FcmonError
from pipeline.markup import is_http_url
from pipeline.models import DisseminationEvent, IndexedRecord, Tasking

if TYPE_CHECKING:
    from pipeline.packets import Packet

FORMATS = {".html": "html", ".pdf": "pdf"}
CAVEAT = "Law enforcement sensitive. Disseminated under 28 CFR 23.20(e): need to know and right to know."
MAX_DAILY_BARS = 62  # a longer period is counted by month

ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                  autoescape=select_autoescape(["html"], default_for_string=True))
ENV.tests["http_url"] = is_http_url


def when(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if moment else "not recorded"


ENV.filters["when"] = when


def format_of(out: Path) -> str:
    """`html` or `pdf`, from the file's suffix; any other suffix is refused before anything is disseminated."""
    found = FORMATS.get(out.suffix.lower())
    if found is None:
        shown = f"the suffix {out.suffix!r}" if out.suffix else "no suffix"
        raise FcmonError(f"cannot tell the packet's format from {out.name!r} ({shown})",
                         "name the file .pdf for a PDF or .html for HTML; nothing was disseminated")
    return found


def _day(record: IndexedRecord) -> date:
    return record.timestamp.astimezone(timezone.utc).date()


def timeline(records: list[IndexedRecord]) -> tuple[str, list[tuple[str, int]]]:
    """Records per day from the first day to the last (days without records count 0), or per month past
    MAX_DAILY_BARS days."""
    days = Counter(_day(r) for r in records)
    first, last = min(days), max(days)
    if (last - first).days < MAX_DAILY_BARS:
        span = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        return "day", [(d.isoformat(), days[d]) for d in span]
    months = Counter(d.strftime("%Y-%m") for d in days.elements())
    labels, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        labels.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return "month", [(label, months[label]) for label in labels]


def sources(records: list[IndexedRecord]) -> list[dict[str, object]]:
    counted = Counter((r.source_kind, urlsplit(r.final_url).hostname or "no host") for r in records)
    return [{"kind": kind, "host": host, "count": n} for (kind, host), n in sorted(counted.items())]


def packet_html(packet: Packet, tasking: Tasking, records: list[IndexedRecord], event: DisseminationEvent,
                entry: AuditEntry) -> str:
    """The packet's one document (its HTML; the PDF is this HTML printed by WeasyPrint)."""
    unit, counts = timeline(records)
    title = f"Records per {unit}"
    chart = bar_chart("timeline", title, f"records of the packet per {unit}", unit, dict(counts), "records").svg
    days = sorted(_day(r) for r in records)
    case = tasking.case_number or f"none ({tasking.kind.replace('_', ' ')} tasking {tasking.id})"
    return ENV.get_template("packet.html").render(
        packet=packet, tasking=tasking, records=records, event=event, entry=entry, case=case, caveat=CAVEAT,
        purge_by=min(r.labels.purge_by for r in records), sources=sources(records), first_day=days[0], last_day=days[-1],
        timeline=counts, timeline_unit=unit, timeline_title=title, chart=Markup(chart))  # noqa: S704 (our own SVG)
