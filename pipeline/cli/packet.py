from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli import app_options, cli, emit, get_app, os_account, shown
from pipeline.errors import NotFound
from pipeline.packets import Packet, decide, packet as find_packet, render, request, visible_packets


@cli.group()
def packet() -> None:
    """Situational-awareness packets: requested with need and right to know, approved by another supervisor,
    disseminated on record (28CFR23.20(e)-(g))."""


def _line(p: Packet) -> str:
    decided = f" by {p.decided_by}" if p.decided_by else ""
    return (f"{p.id}  {p.status}{decided}  tasking={p.tasking_id}  records={len(p.record_ids)}  "
            f"to {shown(p.recipient)} ({shown(p.recipient_agency)})  requested by {p.requested_by}")


@packet.command("request")
@app_options
@click.option("--tasking", "tasking_id", required=True, help="The tasking the records were stored under.")
@click.option("--record", "record_ids", multiple=True, required=True, help="A reviewed record to include (repeat).")
@click.option("--recipient", required=True, help="Who receives the packet.")
@click.option("--agency", required=True, help="The recipient's agency.")
@click.option("--need-to-know", required=True, help="Why the recipient needs the information for a law enforcement activity.")
@click.option("--right-to-know", required=True, help="The recipient's authority to receive it.")
@click.option("--json", "as_json", is_flag=True, help="Print the packet as JSON.")
@click.pass_context
def request_(ctx: click.Context, data_dir: str | None, acting_user: str | None, tasking_id: str, record_ids: tuple[str, ...],
             recipient: str, agency: str, need_to_know: str, right_to_know: str, as_json: bool) -> None:
    """Ask for a packet of reviewed records (detectives, or analysts and supervisors on the tasking). Audited."""
    app = get_app(ctx, data_dir, acting_user)
    made = request(app, app.acting_user(), tasking_id, list(record_ids), recipient, agency, need_to_know, right_to_know)
    emit(made.model_dump(mode="json"), as_json, lambda: click.echo(
        f"requested {made.id}: {len(made.record_ids)} record(s) for {shown(recipient)}; a supervisor other than you approves it"))


@packet.command("approve")
@app_options
@click.argument("packet_id")
@click.option("--note", required=True, help="Why (audited).")
@click.option("--deny", is_flag=True, help="Deny the packet instead of approving it.")
@click.option("--json", "as_json", is_flag=True, help="Print the decided packet as JSON.")
@click.pass_context
def approve_(ctx: click.Context, data_dir: str | None, acting_user: str | None, packet_id: str, note: str, deny: bool,
             as_json: bool) -> None:
    """Approve (or --deny) a requested packet; supervisors other than its requester. Audited."""
    app = get_app(ctx, data_dir, acting_user)
    decided = decide(app, app.acting_user(), packet_id, not deny, note)  # role checked and refusals audited there
    emit(decided.model_dump(mode="json"), as_json, lambda: click.echo(f"{decided.id} {decided.status} by {decided.decided_by}"))


@packet.command("render")
@app_options
@click.argument("packet_id")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write; its suffix chooses the format: .pdf (PDF) or .html (HTML).")
@click.option("--json", "as_json", is_flag=True, help="Print the DisseminationEvent as JSON.")
@click.pass_context
def render_(ctx: click.Context, data_dir: str | None, acting_user: str | None, packet_id: str, out: Path, as_json: bool) -> None:
    """Disseminate an approved packet as PDF or HTML: its DisseminationEvent is written to the audit log first."""
    app = get_app(ctx, data_dir, acting_user)
    event = render(app, app.acting_user(), packet_id, out, client=os_account())
    emit(event.model_dump(mode="json"), as_json, lambda: click.echo(
        f"disseminated {packet_id} to {shown(event.recipient)} ({shown(event.recipient_agency)}): {out} "
        f"(dissemination {event.id}, in the audit log)"))


@packet.command("list")
@app_options
@click.option("--json", "as_json", is_flag=True, help="Print the packets as JSON.")
@click.pass_context
def list_(ctx: click.Context, data_dir: str | None, acting_user: str | None, as_json: bool) -> None:
    """Packets: every one for supervisors, your own requests for anyone else."""
    app = get_app(ctx, data_dir, acting_user)
    packets = visible_packets(app, app.acting_user())
    emit([p.model_dump(mode="json") for p in packets], as_json,
         lambda: click.echo("\n".join(_line(p) for p in packets) or "no packets"))


@packet.command("show")
@app_options
@click.argument("packet_id")
@click.option("--json", "as_json", is_flag=True, help="Print the packet as JSON.")
@click.pass_context
def show_(ctx: click.Context, data_dir: str | None, acting_user: str | None, packet_id: str, as_json: bool) -> None:
    """One packet with its need and right to know (its requester or a supervisor)."""
    app = get_app(ctx, data_dir, acting_user)
    user = app.acting_user()
    found = find_packet(app, packet_id)
    if found not in visible_packets(app, user):
        raise NotFound(f"no packet {packet_id!r}", "see `fcmon packet list` for the packets you may see")

    def text() -> None:
        click.echo(_line(found))
        click.echo(f"  need to know: {shown(found.need_to_know)}\n  right to know: {shown(found.right_to_know)}")
        click.echo(f"  records: {', '.join(found.record_ids)}")
        if found.decision_note:
            click.echo(f"  decision: {shown(found.decision_note)}")
    emit(found.model_dump(mode="json"), as_json, text)
