"""`fcmon packet request|approve|render`: reviewed records only, need and right to know stated, another supervisor
approves, and the DisseminationEvent is in the audit log before the packet exists (28CFR23.20(e)-(g), D3.IV.A.10)."""
from __future__ import annotations

import json
from datetime import date, timedelta
from html.parser import HTMLParser

import pytest

from pipeline.errors import AuditUnavailable, FcmonError, Forbidden, NotFound
from pipeline.models import utcnow
from pipeline.packets import decide, render, request
from pipeline.records import review
from pipeline.transparency import transparency_report
from tests.datadirs import fcmon, make_app
from tests.factories import make_record
from tests.factories_pipeline import make_tasking

NOW = utcnow()
LIVE = dict(approved_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=30))
HOSTILE = 'Converters for sale <script>alert("x")</script> <img src=x onerror=alert(1)> &amp; more'
NEED = "Detective Dana Ortiz investigates RD-4 (theft of converters); the posts name the seller's pickup spot."
RIGHT = "Sworn officer of the Example Police Department, bound by 28 CFR Part 23."


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path / "d", make_tasking(**LIVE, team=["dana"]),
                   make_tasking(id="T-2", requested_by="bob", approved_by="sam", **LIVE))
    app.state.add_user("bob", "analyst")
    app.index.upsert([make_record(url="https://forum.example/a", text=HOSTILE, non_subject_identifiers=["@bystander"]),
                      make_record(url="https://forum.example/b", text="Unreviewed post about converters."),
                      make_record(tasking_id="T-2", url="https://forum.example/c")])
    review(app, app.state.user("alice"), record("a"), "T-1", "usually_reliable", "probably_true", "photos match RD-4")
    return app


def record(name: str, tasking_id: str = "T-1") -> str:
    text = {"a": HOSTILE, "b": "Unreviewed post about converters."}.get(name, "Nothing to see here.")
    return make_record(tasking_id=tasking_id, url=f"https://forum.example/{name}", text=text).id


def ask(app, user: str = "dana", records: tuple[str, ...] | None = None, tasking: str = "T-1", **kw):
    return request(app, app.state.user(user), tasking, list(records or (record("a"),)), kw.get("recipient", "Det. Dana Ortiz"),
                   kw.get("agency", "Example PD, District 9"), kw.get("need", NEED), kw.get("right", RIGHT))


def approved(app):
    return decide(app, app.state.user("sam"), ask(app).id, True, "need and right to know are stated and fit RD-4")


class Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_an_approved_packet_is_disseminated_on_record_and_crawled_content_is_escaped(app, tmp_path):
    packet = approved(app)
    out = tmp_path / "packet.html"
    event = render(app, app.state.user("dana"), packet.id, out)
    [entry] = list(app.audit.entries(["packet.disseminate"]))
    assert entry.actor == "dana" and entry.payload["id"] == event.id and entry.payload["case_number"] == "2026-CR-1"
    assert (entry.payload["recipient"], entry.payload["recipient_agency"]) == ("Det. Dana Ortiz", "Example PD, District 9")
    assert (entry.payload["need_to_know"], entry.payload["right_to_know"]) == (NEED, RIGHT)
    assert entry.payload["record_ids"] == [record("a")] and entry.payload["approved_by"] == "sam"
    parsed = Text()
    parsed.feed(out.read_text())
    assert "script" not in parsed.tags and "img" not in parsed.tags  # the post's markup is text, not HTML
    body = "".join(parsed.text)
    assert HOSTILE in body and NEED in body and RIGHT in body and "@bystander" in body
    assert "Reasonable suspicion" in body and "usually_reliable" in body and "Example State Fusion Center" in body and "sgt.rivera" in body
    assert [e.kind for e in app.audit.entries(["packet.request", "packet.approve", "packet.disseminate"])] == [
        "packet.request", "packet.approve", "packet.disseminate"]
    assert app.audit.verify().ok
    period = transparency_report(app, "now", NOW - timedelta(days=1), NOW + timedelta(days=1))
    assert period["packets_disseminated"] == 1


def test_unreviewed_records_cannot_be_disseminated(app):
    with pytest.raises(Forbidden, match="is unreviewed"):
        ask(app, records=(record("a"), record("b")))
    [refused] = list(app.audit.entries(["packet.request.refused"]))
    assert refused.actor == "dana" and record("b") in refused.payload["refusal"]
    assert app.state.packets() == []


def test_nobody_approves_their_own_packet_and_only_supervisors_approve(app):
    own = request(app, app.state.user("sam"), "T-1", [record("a")], "Det. Dana Ortiz", "Example PD", NEED, RIGHT)
    with pytest.raises(Forbidden, match="another supervisor must decide"):
        decide(app, app.state.user("sam"), own.id, True, "fine")
    with pytest.raises(Forbidden, match="needs the role supervisor"):
        decide(app, app.state.user("alice"), own.id, True, "fine")
    assert [e.actor for e in app.audit.entries(["packet.approve.refused"])] == ["sam", "alice"]
    assert decide(app, app.state.user("sue"), own.id, True, "fits RD-4").status == "approved"


@pytest.mark.parametrize("state", ["requested", "denied"])
def test_only_an_approved_packet_is_rendered(app, tmp_path, state):
    packet = ask(app)
    if state == "denied":
        decide(app, app.state.user("sam"), packet.id, False, "the recipient has no case")
    out = tmp_path / "p.html"
    with pytest.raises(Forbidden, match=f"is {state}"):
        render(app, app.state.user("dana"), packet.id, out)
    assert not out.exists() and not list(app.audit.entries(["packet.disseminate"]))
    assert len(list(app.audit.entries(["packet.disseminate.refused"]))) == 1


def test_a_decided_packet_is_not_decided_again(app):
    packet = approved(app)
    with pytest.raises(FcmonError, match="already approved by sam"):
        decide(app, app.state.user("sue"), packet.id, False, "changed my mind")


def test_only_the_requester_or_a_supervisor_renders(app, tmp_path):
    packet = approved(app)
    with pytest.raises(Forbidden, match="neither requested"):
        render(app, app.state.user("alice"), packet.id, tmp_path / "p.html")
    assert render(app, app.state.user("sue"), packet.id, tmp_path / "p.html").disseminated_by == "sue"


def test_a_requester_taken_off_the_tasking_disseminates_nothing(app, tmp_path):
    packet = approved(app)
    app.state.put_tasking(make_tasking(**LIVE, team=[]))
    with pytest.raises(Forbidden, match="neither the requester nor on the team"):
        render(app, app.state.user("dana"), packet.id, tmp_path / "p.html")
    assert not (tmp_path / "p.html").exists() and not list(app.audit.entries(["packet.disseminate"]))


def test_a_tasking_that_expired_after_approval_disseminates_nothing(app, tmp_path):
    packet = approved(app)
    app.state.put_tasking(make_tasking(approved_at=NOW - timedelta(days=40), expires_at=NOW - timedelta(seconds=1), team=["dana"]))
    with pytest.raises(Forbidden, match="T-1 is expired"):
        render(app, app.state.user("dana"), packet.id, tmp_path / "p.html")
    assert not (tmp_path / "p.html").exists()


def test_a_record_past_its_purge_date_is_not_disseminated(app):
    stale = make_record(url="https://forum.example/old", label_overrides={"review_status": "reviewed", "purge_by": date(2026, 1, 1)})
    app.index.upsert([stale])
    with pytest.raises(Forbidden, match="due for purge"):
        ask(app, records=(stale.id,))


def test_requests_need_an_authorized_user_and_records_of_the_tasking(app):
    with pytest.raises(NotFound, match="no record"):
        ask(app, records=(record("c", "T-2"),))  # another tasking's record named under T-1
    with pytest.raises(Forbidden, match="neither the requester nor on the team"):
        ask(app, tasking="T-2", records=(record("c", "T-2"),))
    with pytest.raises(Forbidden, match="requesting a packet needs the role"):
        ask(app, user="ada")
    with pytest.raises(FcmonError, match="need-to-know is empty"):
        ask(app, need="  ")


def test_an_unwritable_destination_disseminates_nothing(app, tmp_path):
    packet = approved(app)
    with pytest.raises(FcmonError, match="not a writable folder"):
        render(app, app.state.user("dana"), packet.id, tmp_path / "no-such-folder" / "p.html")
    assert not list(app.audit.entries(["packet.disseminate"]))


def test_no_log_no_packet(app, tmp_path):
    packet = approved(app)
    head = tmp_path / "d" / "audit.head"
    head.unlink()
    head.mkdir()  # the log opens, but no entry can be completed
    out = tmp_path / "p.html"
    with pytest.raises(AuditUnavailable):
        render(app, app.state.user("dana"), packet.id, out)
    assert not out.exists()


def cli(data: str, user: str, *args: str):
    return fcmon("--data-dir", data, "--as", user, "packet", *args)


def test_the_whole_flow_through_the_cli(app, tmp_path):
    app.close()
    data = str(tmp_path / "d")
    asked = cli(data, "dana", "request", "--tasking", "T-1", "--record", record("a"), "--recipient", "Det. Dana Ortiz",
                "--agency", "Example PD", "--need-to-know", NEED, "--right-to-know", RIGHT, "--json")
    assert asked.returncode == 0, asked.stderr
    packet_id = json.loads(asked.stdout)["id"]
    assert cli(data, "dana", "approve", packet_id, "--note", "mine").returncode == 2  # a detective approves nothing
    assert json.loads(cli(data, "sam", "approve", packet_id, "--note", "fits RD-4", "--json").stdout)["status"] == "approved"
    out = tmp_path / "packet.html"
    rendered = cli(data, "dana", "render", packet_id, "--out", str(out), "--json")
    assert rendered.returncode == 0, rendered.stderr
    assert out.exists()
    assert json.loads(rendered.stdout)["packet_id"] == packet_id
    assert [p["id"] for p in json.loads(cli(data, "dana", "list", "--json").stdout)] == [packet_id]
    assert json.loads(cli(data, "alice", "list", "--json").stdout) == []  # not hers
    shown = cli(data, "alice", "show", packet_id)
    assert shown.returncode == 2 and "no packet" in shown.stderr
    ledger = json.loads(fcmon("--data-dir", data, "--as", "sam", "audit", "list", "--kind", "packet.disseminate", "--json").stdout)
    assert len(ledger) == 1


def test_a_crawled_url_that_is_not_http_is_shown_not_linked(app, tmp_path):
    hostile = make_record(url="javascript:alert(3)//forum.example/p/2", text="Converters, see the link.")
    app.index.upsert([hostile])
    review(app, app.state.user("alice"), hostile.id, "T-1", "usually_reliable", "probably_true", "photos match RD-4")
    packet = decide(app, app.state.user("sam"), ask(app, records=(hostile.id,)).id, True, "need and right to know fit RD-4")
    out = tmp_path / "packet.html"
    render(app, app.state.user("dana"), packet.id, out)
    page = out.read_text()
    assert "javascript:alert(3)//forum.example/p/2" in page and 'href="javascript:' not in page
    assert '<a href="https://' not in page  # and nothing else in it was a link to begin with
