from __future__ import annotations

import click

from guards.chain import GuardChain
from pipeline.cli import app_options, cli, emit, get_app, progress
from pipeline.quarantine import purge_expired
from pipeline.watches import Watches
from pipeline.worker import Worker


@cli.command()
@app_options
@click.option("--until-idle", is_flag=True, help="Process everything pending, then exit (default: run until stopped).")
@click.option("--json", "as_json", is_flag=True, help="Print the final counts as JSON.")
@click.pass_context
def work(ctx: click.Context, data_dir: str | None, acting_user: str | None, until_idle: bool, as_json: bool) -> None:
    """Run the guard/index worker on fcm.collected (SIGTERM finishes the batch, commits and exits)."""
    app = get_app(ctx, data_dir, acting_user)
    chain = GuardChain.from_settings(app.settings)
    purge_expired(app)  # holds older than quarantine_days (pipeline/quarantine.py)
    progress(f"work: guards={','.join(g.rule for g in chain.guards)} bus={app.settings.bus} index={app.settings.index}")
    worker = Worker(app.settings, app.bus, app.index, app.state, chain, watches=Watches(app.state, app.audit, app.settings),
                    progress=lambda s: progress(
                        "work: consumed={consumed} indexed={indexed} quarantined={quarantined} rejected={rejected} "
                        "dead_lettered={dead_lettered} alerts={alerts} lag={lag} rate={items_per_s}/s".format(**s)))
    stats = worker.run(until_idle=until_idle).to_dict()
    emit(stats, as_json, lambda: click.echo(
        "processed {consumed}: indexed {indexed}, quarantined {quarantined}, rejected {rejected}, "
        "dead-lettered {dead_lettered}, alerts {alerts}".format(**stats)))
