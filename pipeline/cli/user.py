from __future__ import annotations

import click

from pipeline.cli import app_options, cli, emit, get_app
from pipeline.duty import parse_window
from pipeline.errors import FcmonError
from pipeline.passwords import MIN_LENGTH, hash_password
from pipeline.state import ROLES


@cli.group()
def user() -> None:
    """Accounts and roles (administered by whoever holds the data directory)."""


@user.command("add")
@app_options
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the user may do.")
@click.option("--duty-hours", metavar="HH:MM-HH:MM", help="Daily duty window (in FCMON_DUTY_TIMEZONE); queries outside it are highlighted for review.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def add(ctx: click.Context, data_dir: str | None, acting_user: str | None, name: str, role: str,
        duty_hours: str | None, as_json: bool) -> None:
    """Add a user with a role."""
    app = get_app(ctx, data_dir, acting_user)
    if duty_hours:
        parse_window(duty_hours)
    created = app.state.add_user(name, role, duty_hours)
    app.audit.append("user.add", "(data-dir)", created.to_dict())
    emit(created.to_dict(), as_json, lambda: click.echo(f"added {created.name} ({created.role})"))


@user.command("list")
@app_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def list_(ctx: click.Context, data_dir: str | None, acting_user: str | None, as_json: bool) -> None:
    """List users and their roles."""
    users = get_app(ctx, data_dir, acting_user).state.users()

    def text() -> None:
        for u in users:
            click.echo(f"{u.name:<20} {u.role:<11} {u.created_at}")
        if not users:
            click.echo("no users yet: `fcmon user add NAME --role ROLE`")
    emit([u.to_dict() for u in users], as_json, text)


@user.command("set-duty-hours")
@app_options
@click.argument("name")
@click.argument("window", metavar="HH:MM-HH:MM|none")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def set_duty_hours(ctx: click.Context, data_dir: str | None, acting_user: str | None, name: str, window: str, as_json: bool) -> None:
    """Set (or with `none` clear) a user's daily duty window."""
    app = get_app(ctx, data_dir, acting_user)
    hours = None if window.lower() == "none" else window
    if hours:
        parse_window(hours)
    changed = app.state.set_duty_hours(name, hours)
    app.audit.append("user.duty_hours", "(data-dir)", {"name": name, "duty_hours": hours})
    emit(changed.to_dict(), as_json, lambda: click.echo(f"{name}: duty hours {hours or 'none'}"))


@user.command("set-password")
@app_options
@click.argument("name")
@click.pass_context
def set_password(ctx: click.Context, data_dir: str | None, acting_user: str | None, name: str) -> None:
    """Set the password NAME gives Kibana (checked by `fcmon gateway`), read from the first line of stdin."""
    app = get_app(ctx, data_dir, acting_user)
    app.state.user(name)
    line = click.get_text_stream("stdin").readline().rstrip("\r\n")
    if len(line) < MIN_LENGTH:
        raise FcmonError(f"the password must have at least {MIN_LENGTH} characters",
                         f"pipe it in: `printf '%s\\n' \"$PASSWORD\" | fcmon user set-password {name}`")
    app.state.set_password_hash(name, hash_password(line))
    app.audit.append("user.password", "(data-dir)", {"name": name})
    click.echo(f"{name}: password set")
