"""The transparency report as HTML and PDF, through the real `fcmon` command: the figures and charts with their
numbers, the PDF read back with pypdf, what --format and --out refuse, and a PDF that fetches nothing."""
from __future__ import annotations

import calendar
import html
import json
import re
from http.server import BaseHTTPRequestHandler

import pytest
from pypdf import PdfReader

from pipeline.index import SearchQuery
from pipeline.models import GuardDecision, Reason
from pipeline.search import audited_search
from pipeline.pdf import html_to_pdf
from tests.datadirs import fcmon, make_app
from tests.factories import make_record
from tests.factories_gateway import LIVE, NOW
from tests.factories_pipeline import make_tasking
from tests.servers import serving

MONTH = NOW.strftime("%Y-%m")


@pytest.fixture
def root(tmp_path):
    """A month of activity: two taskings approved, two crawls (12 items), 3 records, 3 rejections, a query run and
    one refused, a dissemination and two purges."""
    app = make_app(tmp_path / "d", make_tasking(**LIVE), make_tasking(id="T-9", kind="public_safety", case_number=None,
                                                                      predicate=None, criminal_activity=None, **LIVE))
    app.index.upsert([make_record(url=f"https://forum.example/p/{i}") for i in range(3)])
    app.audit.append("crawl.end", "alice", {"tasking_id": "T-1", "items": 7})
    app.audit.append("crawl.end", "alice", {"tasking_id": "T-1", "items": 5})
    app.audit.append("quarantine.purge", "sam", {"item_id": "x"})
    app.audit.append("retention.purge", "sam", {"record_id": "r"})
    app.audit.append("packet.disseminate", "dana", {"packet_id": "P-1"})
    for n, rule in enumerate(("first_amendment", "first_amendment", "public_provenance")):
        app.state.reject(GuardDecision(item_id=f"item-{n}", decision="rejected",
                                       reasons=[Reason(rule=rule, clause="28CFR23.20(b)", message="m")]))
    audited_search(app.state, app.audit, app.index, app.state.user("alice"), SearchQuery(text="x", tasking_id="T-1"), "cli")
    with pytest.raises(Exception):
        audited_search(app.state, app.audit, app.index, app.state.user("dana"), SearchQuery(text="x", tasking_id="T-9"), "cli")
    app.close()
    return str(tmp_path / "d")


def report(root: str, *args: str):
    return fcmon("--data-dir", root, "--as", "sam", "report", "transparency", "--period", MONTH, *args)


def tables(document: str) -> dict[str, dict[str, list[str]]]:
    """Each chart's table by the chart's key: its rows by their heading, as text."""
    found = {}
    for key, figure in re.findall(r'<figure class="chart" id="([^"]+)">(.*?)</figure>', document, re.DOTALL):
        rows = {}
        for row in re.findall(r"<tr>(.*?)</tr>", figure.split("<table", 1)[1], re.DOTALL):
            cells = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.DOTALL)]
            rows[cells[0]] = cells[1:]
        found[key] = rows
    return found


def test_the_html_report_holds_the_figures_and_each_chart_with_its_numbers(root, tmp_path):
    out = tmp_path / "report.html"
    result = report(root, "--format", "html", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out} (transparency report {MONTH}, html,")
    document = out.read_text()
    assert document.count("<svg") == 6 and "<script" not in document and "default-src 'none'" in document
    assert "<th scope=\"row\">items collected</th><td>12</td>" in document  # the figures, named as the text report
    found = tables(document)
    assert found["taskings"]["criminal_predicate"] == ["1", "1"] and found["taskings"]["public_safety"] == ["1", "1"]
    assert found["collection"] == {"what": ["count"], "items collected": ["12"], "records indexed (now)": ["3"],
                                   "items quarantined (now)": ["0"], "items rejected": ["3"]}  # no sum of unlike things
    assert found["rejected-by-rule"]["first_amendment"] == ["2"] and found["rejected-by-rule"]["total"] == ["3"]
    assert found["queries"]["cli"] == ["1"] and found["queries"]["refused (any interface)"] == ["1"]
    assert found["collected-over-time"]["total"] == ["12"]
    activity = found["activity-over-time"]
    assert activity["day"] == ["queries", "refused queries", "disseminations", "records purged"]
    assert activity["total"] == ["1", "1", "1", "2"]
    assert len(activity) == calendar.monthrange(NOW.year, NOW.month)[1] + 2  # a month counts by day (+ header, total)


def test_the_pdf_report_reads_back_with_its_figures(root, tmp_path):
    out = tmp_path / "report.pdf"
    result = report(root, "--format", "pdf", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(b"%PDF-")
    pages = PdfReader(str(out)).pages
    text = "\n".join(page.extract_text() for page in pages)
    assert f"Transparency report {MONTH}" in text and f"page 1 of {len(pages)}" in text
    for line in ("items collected 12", "records indexed now 3", "rejected by rule first_amendment 2, public_provenance 1",
                 "queries by interface cli 1", "queries refused 1", "packets disseminated 1", "records purged 2",
                 "taskings approved by kind criminal_predicate 1, public_safety 1"):
        assert line in text, line
    assert "first_amendment 2" in text and "public_provenance 1" in text  # the chart's table
    assert "Rejected by rule: the numbers drawn" in text.replace("\n", " ")


def test_the_text_and_json_reports_are_as_before(root):
    as_json = json.loads(report(root, "--json").stdout)
    assert as_json["items_collected"] == 12 and as_json["records_purged"] == 2 and as_json["queries_refused"] == 1
    assert "format" not in as_json and "charts" not in as_json
    text = report(root)
    assert text.returncode == 0 and "  items collected: 12" in text.stdout and "<" not in text.stdout


@pytest.mark.parametrize("args,message", [
    (("--format", "html"), "--format html writes a file: --out is missing; add --out report.html"),
    (("--format", "pdf", "--out", "report.html"), "--out report.html does not end in .pdf, but --format is pdf"),
    (("--format", "html", "--out", "report.pdf"), "--out report.pdf does not end in .html, but --format is html"),
    (("--format", "html", "--out", "r.html", "--json"), "--json and --format html ask for two outputs"),
    (("--out", "report.pdf"), "--out is for --format html or pdf; add --format pdf"),
])
def test_a_document_needs_a_file_named_for_its_format(root, tmp_path, args, message):
    result = fcmon("--data-dir", root, "--as", "sam", "report", "transparency", "--period", MONTH, *args)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("report.*")) and not list(tmp_path.glob("r.*"))


def test_making_a_document_is_audited(root, tmp_path):
    assert report(root, "--format", "pdf", "--out", str(tmp_path / "r.pdf")).returncode == 0
    assert report(root, "--json").returncode == 0
    from pipeline.app import App
    from pipeline.settings import Settings
    app = App(Settings(data_dir=root))
    assert [e.payload for e in app.audit.entries(["report.transparency"])] == [
        {"period": MONTH, "format": "pdf", "file": "r.pdf"}, {"period": MONTH}]
    app.close()


def test_the_pdf_fetches_nothing():
    asked = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    with serving(Recorder) as url:
        document = (f'<html><head><link rel="stylesheet" href="{url}/style.css"><style>@import url("{url}/imported.css");'
                    f'body {{ background: url("{url}/bg.png") }} @font-face {{ font-family: x; src: url("{url}/f.woff") }}'
                    f'</style></head><body><p>figures</p><img src="{url}/pixel.png"><img src="file:///etc/passwd">'
                    f'<svg xmlns="http://www.w3.org/2000/svg"><image href="{url}/in-svg.png" width="5" height="5"/></svg>'
                    f'</body></html>')
        pdf = html_to_pdf(document)
    assert pdf.startswith(b"%PDF-") and asked == []
