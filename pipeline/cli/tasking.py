from __future__ import annotations

from pathlib import Path

import click
from pydantic import ValidationError

from pipeline.cli import app_options, cli, emit, get_app
from pipeline.errors import FcmonError
from pipeline.models import Tasking, utcnow
from pipeline.taskings import access, approve_tasking, request_tasking, revoke_tasking


@cli.group()
def tasking() -> None:
    """Taskings: the lawful purpose every collection and search runs under."""


def read_tasking(path: Path) -> Tasking:
    try:
        return Tasking.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise FcmonError(f"cannot read {path}: {exc.strerror}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "tasking"
        raise FcmonError(f"{path} is not a valid tasking: {where}: {first['msg']}",
                         "see config/schemas/tasking.schema.json and config/taskings/ for examples") from exc


def describe(t: Tasking) -> dict:
    return {**t.model_dump(mode="json"), "status": t.status(utcnow())}


@tasking.command("add")
@app_options
@click.option("--file", "file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A tasking in the interchange format (JSON).")
@click.option("--json", "as_json", is_flag=True, help="Print the stored tasking as JSON.")
@click.pass_context
def add(ctx: click.Context, data_dir: str | None, acting_user: str | None, file: Path, as_json: bool) -> None:
    """Request a tasking; it stays pending until a supervisor approves it."""
    app = get_app(ctx, data_dir, acting_user)
    user = app.acting_user()
    stored, dropped = request_tasking(app, user, read_tasking(file))
    if dropped:
        click.echo(f"note: ignored {', '.join(dropped)} from the file: approval is granted only by `fcmon tasking approve`", err=True)
    emit(describe(stored), as_json, lambda: click.echo(f"requested {stored.id} ({stored.kind}); a supervisor must approve it"))


@tasking.command("approve")
@app_options
@click.argument("tasking_id")
@click.option("--json", "as_json", is_flag=True, help="Print the approved tasking as JSON.")
@click.pass_context
def approve(ctx: click.Context, data_dir: str | None, acting_user: str | None, tasking_id: str, as_json: bool) -> None:
    """Approve a tasking (a supervisor other than its requester); prints who gets access (also audited)."""
    app = get_app(ctx, data_dir, acting_user)
    approved = approve_tasking(app, app.acting_user(), tasking_id)
    team = access(app, approved)
    emit(describe(approved) | {"access": team}, as_json, lambda: click.echo(
        f"approved {approved.id} by {approved.approved_by}; access: "
        + ", ".join(f"{m['name']} ({m['role']}, {m['as']})" for m in team)))


@tasking.command("revoke")
@app_options
@click.argument("tasking_id")
@click.option("--reason", required=True, help="Why it is revoked (audited).")
@click.option("--json", "as_json", is_flag=True, help="Print the revoked tasking as JSON.")
@click.pass_context
def revoke(ctx: click.Context, data_dir: str | None, acting_user: str | None, tasking_id: str, reason: str, as_json: bool) -> None:
    """Revoke a tasking: nothing more is stored or searched under it."""
    app = get_app(ctx, data_dir, acting_user)
    revoked = revoke_tasking(app, app.acting_user(), tasking_id, reason)
    emit(describe(revoked), as_json, lambda: click.echo(f"revoked {revoked.id}"))


@tasking.command("list")
@app_options
@click.option("--json", "as_json", is_flag=True, help="Print the taskings as JSON.")
@click.pass_context
def list_(ctx: click.Context, data_dir: str | None, acting_user: str | None, as_json: bool) -> None:
    """List taskings with their status (pending, active, expired, revoked)."""
    app = get_app(ctx, data_dir, acting_user)
    app.acting_user()
    taskings = [describe(t) for t in app.state.taskings()]

    def text() -> None:
        for t in taskings:
            click.echo(f"{t['id']:<22} {t['status']:<8} {t['kind']:<22} {t['case_number'] or '-':<16} "
                       f"requested_by={t['requested_by']} approved_by={t['approved_by'] or '-'} expires={t['expires_at'][:10]}")
        if not taskings:
            click.echo("no taskings yet: `fcmon tasking add --file tasking.json`")
    emit(taskings, as_json, text)
