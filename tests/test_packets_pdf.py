"""`fcmon packet render --out packet.pdf`: the PDF read back (pypdf) and drawn (pypdfium2) from a real data directory,
rendered by the real command; the suffix chooses; the same dissemination gives the same bytes; a packet fetches
nothing, whatever markup a crawled post carries; the console offers the PDF under the same rules and audit."""
from __future__ import annotations

import io
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler

import pypdf
import pypdfium2
import pytest

from pipeline.errors import AuditUnavailable
from pipeline.models import DisseminationEvent, utcnow
from pipeline.packet_document import packet_html, when
from pipeline.pdf import html_to_pdf
from pipeline.packets import as_format, decide, packet as find_packet, render, request
from pipeline.passwords import hash_password
from pipeline.records import review
from tests.datadirs import fcmon, make_app
from tests.factories import make_record
from tests.factories_pipeline import make_tasking
from tests.factories_web import WebClient, running_console
from tests.servers import serving

NOW = utcnow()
LIVE = dict(approved_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=30))
NEED = "Detective Dana Ortiz investigates RD-4 (theft of converters); the posts name the seller's pickup spot."
RIGHT = "Sworn officer of the Example Police Department, bound by 28 CFR Part 23."
CAVEAT = "Law enforcement sensitive. Disseminated under 28 CFR 23.20(e): need to know and right to know."
PASSWORD = "correct horse battery"


def posts(count: int = 3, text: str = "Six catalytic converters, $150 each, cash only, call [phone masked].") -> list:
    return [make_record(url=f"https://forum.example/p/{n}", title=f"Converters, lot {n}", text=f"{text} Lot {n}.",
                        published_at=datetime(2026, 11, 2 + 2 * n, 14, tzinfo=timezone.utc), pii_masked={"phone": 1},
                        non_subject_identifiers=["@bystander"] if n == 0 else []) for n in range(count)]


def approved_packet(app, records) -> str:
    app.index.upsert(records)
    for record in records:
        review(app, app.state.user("alice"), record.id, "T-1", "usually_reliable", "probably_true", "photos match RD-4")
    asked = request(app, app.state.user("dana"), "T-1", [r.id for r in records], "Det. Dana Ortiz", "Example PD, District 9",
                    NEED, RIGHT)
    return decide(app, app.state.user("sam"), asked.id, True, "need and right to know fit RD-4").id


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path / "d", make_tasking(**LIVE, team=["dana"]))
    yield app
    app.close()


def cli_render(tmp_path, packet_id: str, out, *extra: str):
    return fcmon("--data-dir", str(tmp_path / "d"), "--as", "dana", "packet", "render", packet_id, "--out", str(out), *extra)


def pages_text(path) -> list[str]:
    """Each page's text with its whitespace made single spaces (a PDF's line breaks fall where the layout puts them)."""
    return [" ".join(page.extract_text().split()) for page in pypdf.PdfReader(path).pages]


def disseminations(app):
    return list(app.audit.entries(["packet.disseminate"]))


def test_the_cli_renders_a_pdf_a_recipient_can_check(app, tmp_path):
    records = posts()
    packet_id = approved_packet(app, records)
    out = tmp_path / "packet.pdf"
    rendered = cli_render(tmp_path, packet_id, out, "--json")
    assert rendered.returncode == 0, rendered.stderr
    assert json.loads(rendered.stdout)["packet_id"] == packet_id and out.read_bytes().startswith(b"%PDF-")

    [entry] = disseminations(app)  # written before the file, and named in it
    assert entry.payload["format"] == "pdf" and entry.payload["out"] == str(out)
    pages = pages_text(out)
    assert len(pages) >= 3  # the cover, the summary, the records
    for number, page in enumerate(pages, 1):
        assert "Case 2026-CR-1" in page and f"packet {packet_id}" in page
        assert f"page {number} of {len(pages)}" in page
    cover, summary, body = pages[0], pages[1], " ".join(pages[1:])  # the records follow the summary
    purge_by = min(app.index.get(r.id).labels.purge_by for r in records)
    assert " ".join(CAVEAT.split()) in cover and f"Purge by {purge_by}" in cover
    assert "Requested by dana" in cover and "Approved by sam" in cover and "Det. Dana Ortiz, Example PD, District 9" in cover
    assert " ".join(NEED.split()) in cover and " ".join(RIGHT.split()) in cover and "Reasonable suspicion" in cover
    assert f"sequence {entry.seq} " in cover and entry.hash in cover and f"--anchor {entry.seq}:{entry.hash}" in cover
    assert entry.payload["id"] in cover
    assert "3 records from 1 source" in summary and "between 2026-11-02 and 2026-11-06" in summary
    assert "2026-11-03 0" in summary  # the timeline's table: a day without records counts 0
    for record in records:
        assert f"record {record.id}" in body and f"sha256 {record.content_sha256}" in body and record.final_url in body
    for label in ("law_enforcement_sensitive", "usually_reliable", "probably_true", "Criminal intelligence yes",
                  "Example State Fusion Center", "sgt.rivera", "Reviewed by alice", "photos match RD-4",
                  "[phone masked]", "1 phone (shown as [phone masked])", "@bystander"):
        assert label in body, label
    assert app.audit.verify(anchor=(entry.seq, entry.hash)).ok  # what the cover tells a recipient to ask for

    image = pypdfium2.PdfDocument(out)[0].render(scale=1).to_pil().convert("L")
    dark = sum(1 for value in image.tobytes() if value < 128)
    assert image.size[0] > 500 and 0.005 < dark / (image.size[0] * image.size[1]) < 0.5  # text on white, not a blank page


def test_rendering_the_same_dissemination_again_gives_the_same_bytes(app, tmp_path):
    packet_id = approved_packet(app, posts(2))
    first, second = tmp_path / "a.pdf", tmp_path / "b.pdf"
    for out in (first, second):
        assert cli_render(tmp_path, packet_id, out).returncode == 0
    entries = disseminations(app)
    assert len(entries) == 2  # each rendering is a dissemination on record

    def without_its_dissemination(path, entry) -> list[str]:
        text = pages_text(path)
        at = when(datetime.fromisoformat(entry.payload["at"].replace("Z", "+00:00")))
        for value in (entry.hash, entry.prev_hash, entry.payload["id"], entry.at, f"Disseminated by dana, {at}",
                      f"Disseminated {at} to"):
            text = [page.replace(value, "<dissemination>") for page in text]
        return [re.sub(rf"(sequence|audit entry|--anchor) {entry.seq}\b", r"\1 <seq>", page) for page in text]
    assert without_its_dissemination(first, entries[0]) == without_its_dissemination(second, entries[1])

    # the recorded dissemination, rendered again from the data directory, is the very file that went out
    found = find_packet(app, packet_id)
    tasking = app.state.tasking(found.tasking_id)
    records = [app.index.get(record_id) for record_id in found.record_ids]
    event = DisseminationEvent.model_validate({k: v for k, v in entries[0].payload.items() if k in DisseminationEvent.model_fields})
    document = packet_html(found, tasking, records, event, entries[0])
    assert as_format(document, "pdf") == first.read_bytes()
    assert packet_html(found, tasking, records, event, entries[0]) == document


def test_the_suffix_chooses_and_an_unknown_one_disseminates_nothing(app, tmp_path):
    packet_id = approved_packet(app, posts(1))
    out = tmp_path / "packet.docx"
    refused = cli_render(tmp_path, packet_id, out)
    assert refused.returncode == 2 and not out.exists()
    assert len(refused.stderr.strip().splitlines()) == 1 and ".pdf" in refused.stderr and ".html" in refused.stderr
    assert disseminations(app) == []
    html = tmp_path / "packet.html"
    render(app, app.state.user("dana"), packet_id, html)
    assert html.read_text().startswith("<!doctype html>") and "Case 2026-CR-1" in html.read_text()
    assert [e.payload["format"] for e in disseminations(app)] == ["html"]


def test_no_log_no_pdf(app, tmp_path):
    packet_id = approved_packet(app, posts(1))
    head = tmp_path / "d" / "audit.head"
    head.unlink()
    head.mkdir()  # the log opens, but no entry can be completed
    out = tmp_path / "packet.pdf"
    with pytest.raises(AuditUnavailable):
        render(app, app.state.user("dana"), packet_id, out)
    assert not out.exists() and not list(tmp_path.glob(".packet.pdf.*"))


class Counting(BaseHTTPRequestHandler):
    paths: list[str] = []

    def do_GET(self):  # noqa: N802
        Counting.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_packet_fetches_nothing_whatever_markup_a_post_carries(app, tmp_path):
    Counting.paths = []
    with serving(Counting) as base:
        markup = (f'<img src="{base}/img"><link rel="stylesheet" href="{base}/css">'
                  f'<div style="background: url({base}/bg)">x</div><svg><image href="{base}/svg"/></svg>')
        from weasyprint import HTML
        HTML(string=f"<p>{markup}</p>").write_pdf()
        assert "/img" in Counting.paths  # the server answers, and WeasyPrint left to itself fetches
        Counting.paths = []

        html_to_pdf(f"<!doctype html><p>{markup}</p>")  # markup that got through fetches nothing even so
        packet_id = approved_packet(app, posts(1, text=f"Converters {markup}"))
        out = tmp_path / "packet.pdf"
        render(app, app.state.user("dana"), packet_id, out)
        assert Counting.paths == []
    assert f'<img src="{base}/img">' in " ".join(pages_text(out))  # the post's markup is text in the packet


def test_the_console_offers_the_packet_as_pdf_under_the_same_rules(app):
    for name in ("alice", "dana"):
        app.state.set_password_hash(name, hash_password(PASSWORD))
    packet_id = approved_packet(app, posts(1))
    with running_console(app) as base:
        detective, analyst = WebClient(base), WebClient(base)
        assert detective.sign_in("dana", PASSWORD) == 303 and analyst.sign_in("alice", PASSWORD) == 303
        page = detective.request("GET", "/packets")[2]
        assert 'value="pdf">Disseminate (PDF)</button>' in page and "Disseminate (download)" in page
        form = {"csrf": detective.csrf(), "packet_id": packet_id, "format": "pdf"}
        with detective.opener.open(urllib.request.Request(base + "/packets/render", urllib.parse.urlencode(form).encode()),
                                   timeout=120) as answer:
            assert answer.headers["Content-Type"] == "application/pdf"
            assert answer.headers["Content-Disposition"] == f'attachment; filename="packet-{packet_id}.pdf"'
            pdf = answer.read()
        assert analyst.request("POST", "/packets/render", {"csrf": analyst.csrf(), "packet_id": packet_id, "format": "pdf"})[0] == 403
        assert detective.request("POST", "/packets/render", {"csrf": detective.csrf(), "packet_id": packet_id, "format": "docx"})[0] == 400
    [entry] = disseminations(app)
    assert (entry.actor, entry.payload["format"], entry.payload["client"]) == ("dana", "pdf", "127.0.0.1")
    assert entry.hash in " ".join(" ".join(p.extract_text().split()) for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    refused = [e.payload for e in app.audit.entries(["packet.disseminate.refused"])]
    assert [(p["user"], p["format"]) for p in refused] == [("alice", "pdf"), ("dana", "docx")]
