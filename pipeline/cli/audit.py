from __future__ import annotations

import json

import click

from pipeline.audit import AuditEntry
from pipeline.cli import app_options, cli, emit, get_app, shown
from pipeline.errors import FcmonError
from pipeline.periods import date_range, parse_bound
from pipeline.review import AUDIT_READERS, QUERY_OUTCOMES, QueryRow, in_period, ledger_csv, ledger_rows, log_listing, mark


@cli.group()
def audit() -> None:
    """The hash-chained audit log of queries, taskings and decisions."""


@audit.command("verify")
@app_options
@click.option("--anchor", metavar="SEQ:HASH", help="A head printed by an earlier verify and kept elsewhere: the log must "
              "still hold that entry (a rewrite of the whole log and its head is caught only this way, or by the Kafka mirror).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def verify(ctx: click.Context, data_dir: str | None, acting_user: str | None, anchor: str | None, as_json: bool) -> None:
    """Recompute the chain: `ok` and the head (SEQ:HASH, to keep elsewhere), or the first entry that was altered,
    removed or inserted (exit 1)."""
    app = get_app(ctx, data_dir, acting_user)
    app.acting_user(*AUDIT_READERS)
    result = app.audit.verify(parse_anchor(anchor) if anchor else None)
    head = app.audit.head()
    shown_head = f"{head[0]}:{head[1]}" if head else None
    emit({**result.to_dict(), "head": shown_head}, as_json, lambda: click.echo(
        f"audit verify: ok ({result.entries} entries; head {shown_head}: keep it elsewhere, and check later with --anchor)"
        if result.ok else f"audit verify: BROKEN at entry {result.first_broken_seq}: {result.problem}"))
    if not result.ok:
        ctx.exit(1)


def parse_anchor(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not (seq.isascii() and seq.isdigit() and len(seq) <= 18 and len(digest) == 64):
        raise FcmonError(f"--anchor {text!r} is not SEQ:HASH", "give the head an earlier `fcmon audit verify` printed")
    return int(seq), digest


@audit.command("accept-break")
@app_options
@click.option("--reason", required=True, help="What happened (a crash, a restore from backup, ...): kept in the log.")
@click.pass_context
def accept_break(ctx: click.Context, data_dir: str | None, acting_user: str | None, reason: str) -> None:
    """Record a break `audit verify` found (the head and the log's end disagree) in the log, so that appends resume
    (administrators). The break stays visible: an audit.break entry names what the head and the log held."""
    app = get_app(ctx, data_dir, acting_user)
    admin = app.acting_user("admin")
    result, head = app.audit.verify(), app.audit.head()
    if result.ok:
        raise FcmonError("the audit log is intact: there is no break to accept", "run `fcmon audit verify`")
    if not reason.strip():
        raise FcmonError("the reason is empty", "say what happened; it is kept in the log")
    entry = app.audit.append("audit.break", admin.name, {"problem": result.problem, "first_broken_seq": result.first_broken_seq,
                                                          "head_was": f"{head[0]}:{head[1]}" if head else None,
                                                          "reason": reason}, over_a_break=True)
    click.echo(f"audit accept-break: recorded as entry {entry.seq}; appends resume from it")


@audit.command("list")
@app_options
@click.option("--kind", "kinds", multiple=True, help="Only entries of this kind (query, query.refused, query.review, tasking.approve, ...).")
@click.option("--user", "user_name", help="Only entries by this user.")
@click.option("--tasking", "tasking_id", help="Only entries about this tasking.")
@click.option("--from", "time_from", metavar="DATE", help="Only entries at or after this date/time (UTC unless stated).")
@click.option("--to", "time_to", metavar="DATE", help="Only entries before this time, or during this date.")
@click.option("--unreviewed", is_flag=True, help="Only queries no supervisor has marked yet.")
@click.option("--flagged", is_flag=True, help="Only queries a supervisor flagged.")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@click.pass_context
def list_(ctx: click.Context, data_dir: str | None, acting_user: str | None, kinds: tuple[str, ...],
          user_name: str | None, tasking_id: str | None, time_from: str | None, time_to: str | None,
          unreviewed: bool, flagged: bool, as_json: bool) -> None:
    """List audit entries (supervisors and administrators; the listing is itself audited, audit.list).

    Queries carry their review: status, note, hits, and highlights OFF-HOURS (outside the member's duty
    hours), TASKING-ENDED (its tasking has since expired or been revoked), FLAGGED and REFUSED."""
    app = get_app(ctx, data_dir, acting_user)
    reader = app.acting_user(*AUDIT_READERS)
    start = parse_bound(time_from, "--from") if time_from else None
    end = parse_bound(time_to, "--to", end=True) if time_to else None
    wanted = [status for status, on in (("unreviewed", unreviewed), ("flagged", flagged)) if on]
    query_kinds = [k for k in kinds if k in QUERY_OUTCOMES] if kinds else list(QUERY_OUTCOMES)
    listed_rows: list[tuple[AuditEntry, QueryRow | None]]
    if wanted or (kinds and len(query_kinds) == len(kinds)):
        # only queries: the review view finds them on its indexes instead of reading the whole log
        rows, _ = app.query_reviews.page(user=user_name, tasking_id=tasking_id, statuses=wanted, start=start, end=end,
                                         outcomes=[QUERY_OUTCOMES[k] for k in query_kinds]) if query_kinds else ([], 0)
        by_seq = {row.seq: row for row in rows}
        listed_rows = [(e, by_seq[e.seq]) for e in app.audit.entries_at(list(by_seq))]
    else:
        listed = [e for e in app.audit.entries(list(kinds) or None)
                  if (user_name is None or e.actor == user_name)
                  and (tasking_id is None or e.payload.get("tasking_id") == tasking_id) and in_period(e.at, start, end)]
        reviews = app.query_reviews.rows(e.payload["id"] for e in listed if e.kind in QUERY_OUTCOMES)
        listed_rows = [(e, reviews.get(e.payload["id"]) if e.kind in QUERY_OUTCOMES else None) for e in listed]
    log_listing(app.audit, reader, "cli", {"kinds": list(kinds), "user": user_name, "tasking": tasking_id, "from": time_from,
                                           "to": time_to, "unreviewed": unreviewed, "flagged": flagged},
                [e.seq for e, _ in listed_rows], len(listed_rows))

    def review_dict(row: QueryRow | None) -> dict | None:
        if row is None:
            return None
        return {"status": row.review_status, "note": row.review_note, "by": row.reviewed_by, "hits_total": row.hits_total,
                "off_hours": row.off_hours, "tasking_expired": row.tasking_expired, "highlights": row.highlights}

    def text() -> None:
        for e, row in listed_rows:
            detail = e.payload.get("query") if e.kind in QUERY_OUTCOMES else e.payload.get("tasking_id", "")
            marks = (f" [{' '.join(row.highlights)}]" if row and row.highlights else "") + (f" ({row.review_status})" if row else "")
            click.echo(f"{e.seq:>6} {e.at[:19]} {shown(e.kind):<16} {shown(e.actor):<14} {shown(str(detail))}{marks}")
    emit([{**e.to_dict(), **({"review": review_dict(row)} if row else {})} for e, row in listed_rows], as_json, text)


@audit.command("review")
@app_options
@click.argument("query_id")
@click.option("--reviewed", "status", flag_value="reviewed", help="Mark the query reviewed.")
@click.option("--flag", "status", flag_value="flagged", help="Flag the query (needs --note).")
@click.option("--note", help="Why: required with --flag.")
@click.option("--json", "as_json", is_flag=True, help="Print the mark as JSON.")
@click.pass_context
def review(ctx: click.Context, data_dir: str | None, acting_user: str | None, query_id: str, status: str | None,
           note: str | None, as_json: bool) -> None:
    """Mark a query reviewed or flag it (supervisors; the mark is itself an audit entry, query.review)."""
    if status is None:
        raise FcmonError("say what to mark", "pass --reviewed, or --flag --note TEXT")
    app = get_app(ctx, data_dir, acting_user)
    reviewer = app.acting_user("supervisor")
    marked = mark(app.query_reviews, reviewer, query_id, status, note)
    emit(marked, as_json, lambda: click.echo(f"query {query_id}: {status} by {reviewer.name}"))


@audit.command("ledger")
@app_options
@click.option("--from", "time_from", required=True, metavar="DATE", help="First day (or time) of the period.")
@click.option("--to", "time_to", required=True, metavar="DATE", help="Last day of the period (inclusive), or an exclusive time.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.pass_context
def ledger(ctx: click.Context, data_dir: str | None, acting_user: str | None, time_from: str, time_to: str, fmt: str) -> None:
    """Export every search term entered in the period by any user through any interface (run or refused)."""
    app = get_app(ctx, data_dir, acting_user)
    user = app.acting_user(*AUDIT_READERS)
    start, end = date_range(time_from, time_to)
    rows = ledger_rows(app.audit.entries(list(QUERY_OUTCOMES)), start, end)
    app.audit.append("audit.ledger", user.name, {"from": start.isoformat(), "to": end.isoformat(), "rows": len(rows), "format": fmt})
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, default=str))
    else:
        click.echo(ledger_csv(rows), nl=False)
