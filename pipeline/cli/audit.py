from __future__ import annotations

import click

from pipeline.cli import app_options, cli, emit, get_app

AUDIT_READERS = ("supervisor", "admin")


@cli.group()
def audit() -> None:
    """The hash-chained audit log of queries, taskings and decisions."""


@audit.command("verify")
@app_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def verify(ctx: click.Context, data_dir: str | None, acting_user: str | None, as_json: bool) -> None:
    """Recompute the chain: `ok`, or the first entry that was altered, removed or inserted (exit 1)."""
    app = get_app(ctx, data_dir, acting_user)
    app.acting_user(*AUDIT_READERS)
    result = app.audit.verify()
    emit(result.to_dict(), as_json, lambda: click.echo(
        f"audit verify: ok ({result.entries} entries)" if result.ok
        else f"audit verify: BROKEN at entry {result.first_broken_seq}: {result.problem}"))
    if not result.ok:
        ctx.exit(1)


@audit.command("list")
@app_options
@click.option("--kind", "kinds", multiple=True, help="Only entries of this kind (query, query.result, tasking.approve, ...).")
@click.option("--user", "user_name", help="Only entries by this user.")
@click.option("--tasking", "tasking_id", help="Only entries about this tasking.")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@click.pass_context
def list_(ctx: click.Context, data_dir: str | None, acting_user: str | None, kinds: tuple[str, ...],
          user_name: str | None, tasking_id: str | None, as_json: bool) -> None:
    """List audit entries (supervisors and administrators)."""
    app = get_app(ctx, data_dir, acting_user)
    app.acting_user(*AUDIT_READERS)
    entries = [e for e in app.audit.entries(list(kinds) or None)
               if (user_name is None or e.actor == user_name)
               and (tasking_id is None or e.payload.get("tasking_id") == tasking_id)]

    def text() -> None:
        for e in entries:
            detail = e.payload.get("query") if e.kind == "query" else e.payload.get("tasking_id", "")
            click.echo(f"{e.seq:>6} {e.at[:19]} {e.kind:<16} {e.actor:<14} {detail}")
    emit([e.to_dict() for e in entries], as_json, text)
