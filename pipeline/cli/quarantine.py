from __future__ import annotations

import click

from pipeline.cli import app_options, cli, emit, get_app, shown
from pipeline.errors import FcmonError
from pipeline.quarantine import keep, listed, purge, purge_expired, show


@cli.group()
def quarantine() -> None:
    """Items the guards held for a supervisor (protected activity with signs of crime); supervisors only."""


def supervisor_app(ctx: click.Context, data_dir: str | None, acting_user: str | None):
    app = get_app(ctx, data_dir, acting_user)
    user = app.acting_user("supervisor")
    purge_expired(app)
    return app, user


@quarantine.command("list")
@app_options
@click.option("--json", "as_json", is_flag=True, help="Print the held items as JSON.")
@click.pass_context
def list_(ctx: click.Context, data_dir: str | None, acting_user: str | None, as_json: bool) -> None:
    """List held items with why they were held and when they will be purged (the listing is audited)."""
    app, user = supervisor_app(ctx, data_dir, acting_user)
    held = listed(app, user)

    def text() -> None:
        for h in held:
            reason = h["decision"]["reasons"][0]
            click.echo(f"{h['item_id']}  tasking={h['tasking_id']}  purge_after={h['purge_after'][:10]}  "
                       f"{reason['rule']}: {', '.join(reason['signals'])}")
        if not held:
            click.echo("nothing held")
    emit(held, as_json, text)


@quarantine.command("show")
@app_options
@click.argument("item_id")
@click.option("--json", "as_json", is_flag=True, help="Print the held item and its decision as JSON.")
@click.pass_context
def show_(ctx: click.Context, data_dir: str | None, acting_user: str | None, item_id: str, as_json: bool) -> None:
    """Show a held item, the signals that held it and the tasking it came under (the reading is audited)."""
    app, user = supervisor_app(ctx, data_dir, acting_user)
    held = show(app, user, item_id)

    def text() -> None:
        item = held["item"]
        click.echo(f"{held['item']['id']}  tasking={item['tasking_id']}  url={item['final_url']}  purge_after={held['purge_after']}")
        for r in held["decision"]["reasons"]:
            click.echo(f"  {r['rule']} [{r['clause']}]: {r['message']} ({', '.join(r['signals'])})")
        click.echo(f"  title: {shown(item['title'])}\n  text: {shown(item['text'])}")
    emit(held, as_json, text)


@quarantine.command("decide")
@app_options
@click.argument("item_id")
@click.option("--keep", "choice", flag_value="keep", help="Index the item, with you recorded on it.")
@click.option("--purge", "choice", flag_value="purge", help="Delete the content, keeping only its id, hash and your reason.")
@click.option("--reason", required=True, help="Why (audited; kept on the record or the purge record).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
def decide(ctx: click.Context, data_dir: str | None, acting_user: str | None, item_id: str, choice: str | None,
           reason: str, as_json: bool) -> None:
    """Decide a held item: --keep or --purge, with --reason."""
    if choice is None:
        raise FcmonError("say what to do with the item", "pass --keep or --purge")
    if not reason.strip():
        raise FcmonError("the reason is empty", "say why in --reason; it is audited")
    app, user = supervisor_app(ctx, data_dir, acting_user)
    result = keep(app, user, item_id, reason) if choice == "keep" else purge(app, user.name, item_id, reason)
    emit(result, as_json, lambda: click.echo(f"{result['decision']} {item_id} by {user.name}"))


@quarantine.command("purge-expired")
@app_options
@click.option("--json", "as_json", is_flag=True, help="Print the purged item ids as JSON.")
@click.pass_context
def purge_expired_(ctx: click.Context, data_dir: str | None, acting_user: str | None, as_json: bool) -> None:
    """Purge items held longer than quarantine_days (also done before every quarantine command and `work`)."""
    app = get_app(ctx, data_dir, acting_user)
    app.acting_user("supervisor")
    purged = purge_expired(app)
    emit(purged, as_json, lambda: click.echo(f"purged {len(purged)} expired item(s)"))
