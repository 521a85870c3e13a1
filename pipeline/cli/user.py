from __future__ import annotations

import click

from pipeline.cli import app_options, cli, emit, get_app
from pipeline.state import ROLES


@cli.group()
def user() -> None:
    """Accounts and roles (administered by whoever holds the data directory)."""


@user.command("add")
@app_options
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the user may do.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def add(ctx: click.Context, data_dir: str | None, acting_user: str | None, name: str, role: str, as_json: bool) -> None:
    """Add a user with a role."""
    app = get_app(ctx, data_dir, acting_user)
    created = app.state.add_user(name, role)
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
